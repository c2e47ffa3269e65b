"""The benchmarks run and reach the same quality as their peers (speed is the benchmark's job, not CI's)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, require_data


def test_train_overhead_quick_runs_and_matches_peer_accuracy():
    require_data("mnist")
    result = subprocess.run([sys.executable, "-m", "benchmarks", "train_overhead", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for peer in ["tutorial-dataloader-loop", "hand-loop-in-memory"]:
        assert result.stdout.count(f"vs {peer}") == 2  # batch 64 and 256
