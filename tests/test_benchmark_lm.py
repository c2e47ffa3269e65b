"""The language-model pretraining benchmark runs, and in a tenth of the steps ours learns at least as fast
as the nanoGPT re-creation (speed is the benchmark's job, not CI's)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO, require_data


@pytest.mark.slow
def test_lm_pretrain_quick_runs_and_reaches_the_peers_loss():
    require_data("tinyshakespeare")
    result = subprocess.run([sys.executable, "-m", "benchmarks", "lm_pretrain", "--quick"], cwd=REPO,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "round 1/1 ours" in result.stdout and "round 1/1 nanogpt-baby" in result.stdout
    assert "GFLOP/s | nanogpt-baby" in result.stdout
