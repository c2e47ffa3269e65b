"""The Adult recipe, shrunk: every rung trains, is audited and lands in the leaderboard with its gaps.
(The full run and its figures: README, "Fairness ladder".)"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from modelladder.config import load_ladder_config
from modelladder.verbs.ladder import run_ladder
from tests.conftest import require_data

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "ladders" / "adult.yaml"


@pytest.mark.slow
def test_the_adult_recipe_runs_small(tmp_path):
    require_data("adult")
    # mitigation off: 400 validation rows leave race groups with a single label, which ThresholdOptimizer refuses
    ladder = load_ladder_config(RECIPE, ["data.limit=6000", "train.epochs=5", "train.optimizer.lr=0.005",
                                         "audit.mitigate=false"])
    rows = run_ladder(ladder, tmp_path, console=Console(file=io.StringIO()))
    assert [r["rung"] for r in rows] == ["logreg", "hist_gb", "mlp", "mlp_dp"]
    assert all(r["test_accuracy"] > 0.82 for r in rows[:3])  # on the full 16,281-row test split
    assert rows[3]["test_accuracy"] > 0.75  # 115 noisy steps: DP needs the recipe's full data and epochs
    assert all(0 < r["parity_gap_sex"] < 0.4 and r["odds_gap_race"] is not None for r in rows)
    assert 0 < rows[3]["dp_epsilon"] <= 1.0 and "dp_epsilon" not in rows[2]
    assert (tmp_path / "adult" / "hist_gb" / "audit.json").is_file()
