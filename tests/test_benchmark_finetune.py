"""The fine-tuning benchmark runs and our rung learns (speed is the benchmark's job, not CI's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from benchmarks.finetune import QUICK_FLOOR
from tests.conftest import REPO, require_data

SUMMARY = re.compile(r"ours ([\d,.]+) vs hf-trainer ([\d,.]+) samples/s: ([\d.]+)x  "
                     r"\(dev accuracy ([\d.]+) vs ([\d.]+)\)")


@pytest.mark.slow
def test_finetune_quick_runs_and_our_rung_learns():
    require_data("sst")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # MiniLM comes from its package folder, never the hub
    result = subprocess.run([sys.executable, "-m", "benchmarks", "finetune", "--quick"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    assert float(summary.group(4)) >= QUICK_FLOOR, summary.group(0)
    assert 0 <= float(summary.group(5)) <= 1  # the peer's accuracy is measured and printed too
    assert result.stdout.count("round 1/1") == 2  # one timed round each
