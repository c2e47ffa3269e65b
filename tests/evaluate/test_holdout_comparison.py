"""Every rung against the best: exact McNemar on paired right / wrong answers, a paired bootstrap for other
metrics, Holm's correction over the comparisons; on a k-fold ladder, Wilcoxon only where it can reach 0.05."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from modelladder.config import validate_ladder
from modelladder.evaluate.significance import (
    compare_holdout,
    compare_to_best,
    holm,
    mcnemar_p,
    paired_bootstrap_p,
)
from modelladder.report.leaderboard import leaderboard_table, p_text, table_console
from modelladder.verbs.ladder import run_ladder

FIELDS = ("test", "p_value", "p_adj", "significant", "best")


def answers(right_both: int, only_a: int, only_b: int, wrong_both: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([True] * right_both + [True] * only_a + [False] * only_b + [False] * wrong_both)
    b = np.array([True] * right_both + [False] * only_a + [True] * only_b + [False] * wrong_both)
    return a, b


def probabilities(correct: np.ndarray, y: np.ndarray, k: int = 3) -> np.ndarray:
    """Class probabilities that put the top score on the true class exactly where `correct`."""
    predicted = np.where(correct, y, (y + 1) % k)
    proba = np.full((len(y), k), 0.1)
    proba[np.arange(len(y)), predicted] = 0.8
    return proba


def test_exact_mcnemar_is_the_binomial_test_on_the_discordant_pairs():
    a, b = answers(100, 10, 2, 8)
    # two-sided exact: 2 * P(X <= 2) for X ~ Binomial(12, 1/2) = 2 * (1 + 12 + 66) / 4096
    assert mcnemar_p(a, b) == pytest.approx(2 * 79 / 4096, rel=1e-12)
    assert mcnemar_p(b, a) == mcnemar_p(a, b)
    assert mcnemar_p(*answers(50, 3, 3, 4)) == 1.0  # as many discordant pairs each way


def test_holm_steps_down_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 3 * 0.01; 2 * 0.03; max(0.06, 0.04)
    assert holm([0.5]) == [0.5] and holm([]) == []
    assert holm([0.9, 0.8]) == [1.0, 1.0]  # 2 * 0.8 capped at 1, and no later p below an earlier one


def test_compare_holdout_flags_each_rung_against_the_best():
    y = np.arange(240) % 3
    best = np.arange(240) < 230  # 230 right
    close = best.copy()
    close[:8], close[230:233] = False, True  # 225 right: 8 against 3 discordant pairs, p = 0.23
    poor = np.arange(240) < 150  # 150 right
    rows = [{"rung": name, "test_accuracy": round(float(c.mean()), 4)}
            for name, c in (("poor", poor), ("best", best), ("close", close))]
    compare_holdout(rows, y, [probabilities(c, y) for c in (poor, best, close)], "accuracy", "max", split="test",
                    classification=True, seed=0)
    poor_row, best_row, close_row = rows
    assert [best_row[k] for k in FIELDS] == [None, None, None, None, True]
    raw = {"poor": mcnemar_p(best, poor), "close": mcnemar_p(best, close)}
    adjusted = holm([raw["poor"], raw["close"]])
    for row, p, p_adj in ((poor_row, raw["poor"], adjusted[0]), (close_row, raw["close"], adjusted[1])):
        assert row["test"] == "mcnemar-exact" and row["best"] is False
        assert row["p_value"] == pytest.approx(p, rel=1e-3) and row["p_adj"] == pytest.approx(p_adj, rel=1e-3)
    assert poor_row["significant"] is True and close_row["significant"] is False


def test_a_regression_ladder_gets_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    good, bad = y + rng.normal(scale=0.3, size=300), y + rng.normal(scale=1.0, size=300)
    assert paired_bootstrap_p("mse", y, good, good.copy(), classification=False, seed=0) == 1.0  # identical: no difference
    p = paired_bootstrap_p("mse", y, good, bad, classification=False, seed=0)
    assert p == pytest.approx(1 / 1001)  # no resample comes near
    assert paired_bootstrap_p("mse", y, good, bad, classification=False, seed=0) == p  # seeded
    rows = [{"rung": r, "test_mse": round(float(np.mean((y - s) ** 2)), 4)} for r, s in (("bad", bad), ("good", good))]
    compare_holdout(rows, y, [bad, good], "mse", "min", split="test", classification=False, seed=0)
    assert rows[1]["best"] is True and rows[0]["test"] == "paired-bootstrap" and rows[0]["significant"] is True


def kfold_records(scores: list[list[float]], repeats: int = 1) -> list[list[dict]]:
    folds = len(scores[0]) // repeats
    return [[{"repeat": j // folds, "fold": j % folds, "n_train": 80, "n_test": 20, "metrics": {"accuracy": v}}
             for j, v in enumerate(values)] for values in scores]


@pytest.mark.parametrize("folds, repeats, wilcoxon", [(6, 1, True), (5, 1, False), (6, 2, False)])
def test_kfold_wilcoxon_only_where_it_can_reach_the_level(folds, repeats, wilcoxon):
    n = folds * repeats
    best = [0.95 + 0.001 * j for j in range(n)]
    scores = [best, [v - 0.05 - 0.002 * j for j, v in enumerate(best)], [v - 0.01 for v in best]]
    rows = [{"rung": f"r{i}", "cv_accuracy_mean": float(np.mean(s))} for i, s in enumerate(scores)]
    compare_to_best(rows, kfold_records(scores, repeats), "accuracy", "max")
    assert rows[0]["best"] is True and rows[0]["wilcoxon_p"] is None and rows[0]["test"] is None
    assert [r["test"] for r in rows[1:]] == ["corrected-t"] * 2
    assert [r["p_adj"] for r in rows[1:]] == pytest.approx(holm([r["p_value"] for r in rows[1:]]), rel=1e-3)
    if wilcoxon:  # 6 folds of one repeat, all one sign: 2 / 2**6
        assert rows[1]["wilcoxon_p"] == pytest.approx(2 / 2**6, rel=1e-3)
    else:
        assert rows[1]["wilcoxon_p"] is None and rows[2]["wilcoxon_p"] is None


@pytest.fixture(scope="module")
def holdout_ladder(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(tmp_path_factory.mktemp("cache")))
        ladder = validate_ladder({
            "name": "cmp", "data": {"dataset": "digits", "limit": 400},
            "train": {"epochs": 2, "batch_size": 32, "progress": False, "threads": 1},
            "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                      {"name": "small_mlp", "model": {"name": "mlp", "hidden": [16]}},
                      {"name": "forest", "model": {"name": "random_forest"}}],
        })
        runs = tmp_path_factory.mktemp("runs")
        rows = run_ladder(ladder, runs, console=Console(file=io.StringIO()))
        return runs / "cmp", rows


def test_holdout_ladder_rows_carry_intervals_and_the_comparison(holdout_ladder):
    root, rows = holdout_ladder
    assert [r["best"] for r in rows].count(True) == 1
    best = next(r for r in rows if r["best"])
    assert best["test_accuracy"] == max(r["test_accuracy"] for r in rows)
    for row in rows:
        evaluation = json.loads((root / row["rung"] / "eval_test.json").read_text())
        assert set(evaluation["intervals"]) == set(evaluation["metrics"]) == set(evaluation["interval_method"])
        assert evaluation["interval_method"]["accuracy"] == "wilson"
        assert evaluation["interval_method"]["f1_macro"] == evaluation["interval_method"]["log_loss"] == "bootstrap"
        for metric, (low, high) in evaluation["intervals"].items():
            assert (row[f"test_{metric}_low"], row[f"test_{metric}_high"]) == (round(low, 4), round(high, 4))
            assert row[f"test_{metric}_low"] <= row[f"test_{metric}"] <= row[f"test_{metric}_high"]
        if not row["best"]:
            assert row["test"] == "mcnemar-exact" and 0 < row["p_value"] <= row["p_adj"] <= 1
    assert json.loads((root / "leaderboard.json").read_text()) == rows


def test_the_table_shows_interval_p_adj_and_verdict(holdout_ladder):
    _, rows = holdout_ladder
    table = leaderboard_table(rows, "cmp leaderboard")
    console = table_console(table)  # as wide as the columns need (ladder run prints with it), at least 120
    console.file = out = io.StringIO()
    console.print(table)
    text = out.getvalue()
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert list(lines) == ["logreg", "small_mlp", "forest"]  # one line per rung, nothing cut
    cells = {rung: [c.strip() for c in line.split("│")[2:-1]] for rung, line in lines.items()}
    for row in rows:
        interval = f"{row['test_accuracy']:.4f} [{row['test_accuracy_low']:.3f}, {row['test_accuracy_high']:.3f}]"
        verdict = "best" if row["best"] else ("worse" if row["significant"] else "n.s.") + f" ({p_text(row['p_adj'])})"
        assert cells[row["rung"]][:3] == [row["model"], interval, verdict]  # small_mlp: a model column
        assert "…" not in lines[row["rung"]]
    caption = " ".join(text.split())
    assert "exact McNemar test" in caption and "Holm-adjusted over 2 comparisons" in caption
    assert "the best was chosen on these same data" in caption and "Wilson" in caption


def test_p_values_read_as_three_decimals():
    assert [p_text(p) for p in (None, 0.0004, 0.001, 0.04321, 1.0)] == ["-", "<0.001", "0.001", "0.043", "1.000"]
