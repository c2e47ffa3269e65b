"""The fine-tuning benchmark runs and our rung learns (speed is the benchmark's job, not CI's); its quality
verdict weighs the accuracy gap against the seeds' noise."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from benchmarks.finetune import ONE_SEED_ALLOWANCE, QUICK_FLOOR, allowance, quality_verdict, spread
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
    assert "ours       dev accuracy by seed" in result.stdout  # --quick trains on --seed alone
    assert 0 <= float(summary.group(5)) <= 1  # the peer's accuracy is measured and printed too
    assert result.stdout.count("round 1/1") == 2  # one timed round each


def test_spread_gives_median_mean_and_sample_std():
    assert spread([0.84, 0.86, 0.85]) == {"median": 0.85, "mean": 0.85, "std": 0.01}
    assert spread([0.8452]) == {"median": 0.8452, "mean": 0.8452, "std": 0.0}


def test_allowance_is_one_standard_error_of_the_difference_of_means():
    # variances 1e-4 and 4e-4 over 3 seeds each: sqrt(1e-4 / 3 + 4e-4 / 3) = 0.0129
    assert allowance([0.84, 0.85, 0.86], [0.84, 0.86, 0.88]) == pytest.approx(0.012910, abs=1e-6)
    assert allowance([0.8452], [0.8567]) == ONE_SEED_ALLOWANCE  # one seed: no spread to measure


def test_quality_verdict_passes_a_gap_within_the_seeds_noise_only(capsys):
    theirs = [0.84, 0.86, 0.88]  # mean 0.86
    assert quality_verdict([0.84, 0.85, 0.86], theirs, quick=False) == 0  # 0.01 below, allowance 0.0129
    assert capsys.readouterr().out == ""
    assert quality_verdict([0.83, 0.84, 0.85], theirs, quick=False) == 1  # 0.02 below
    assert "our mean dev accuracy is 0.0200 below the peer's, more than the 0.0129" in capsys.readouterr().out
    assert quality_verdict([0.8452], [0.8567], quick=False) == 1  # one seed, 1.15 points: more than one point
    assert quality_verdict([0.8502], [0.8567], quick=False) == 0
    assert quality_verdict([0.87, 0.88], [0.80, 0.81], quick=False) == 0  # better is always fine


def test_quick_verdict_asks_only_that_our_rung_learnt():
    assert quality_verdict([0.63], [0.49], quick=True) == 0
    assert quality_verdict([QUICK_FLOOR - 0.01], [0.90], quick=True) == 1
