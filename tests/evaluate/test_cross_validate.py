"""k-fold cross-validation: the same folds for every rung, each fold run scored on its fold (its test split),
fold metrics that the saved predictions reproduce, mean / std / interval rows, and the corrected resampled
t-test against the best rung (Holm-adjusted; no Wilcoxon at 3 folds). tests/evaluate/test_kfold_leakage.py
shows that the scored fold reaches no choice."""

from __future__ import annotations

import io
import json
import math
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from modelladder.config import validate_ladder, validate_run
from modelladder.errors import InputError
from modelladder.evaluate.significance import corrected_ttest, wilcoxon_p
from modelladder.report import write_report
from modelladder.report.leaderboard import leaderboard_table, p_text
from modelladder.verbs.build import load_run_data
from modelladder.verbs.cv import cross_validate, fold_config
from modelladder.verbs.ladder import run_ladder

QUIET = {"console": Console(file=io.StringIO())}
DATA = {"dataset": "digits", "limit": 300}
TRAIN = {"epochs": 2, "batch_size": 32, "progress": False, "threads": 1}
FOLDS = [f"fold-0-{k}" for k in range(3)]


def test_corrected_ttest_gives_the_hand_computed_answer():
    a, b = [0.90, 0.92, 0.94], [0.88, 0.91, 0.90]
    d = [0.02, 0.01, 0.04]
    mean = sum(d) / 3
    var = sum((x - mean) ** 2 for x in d) / 2
    t = mean / math.sqrt((1 / 3 + 100 / 200) * var)  # Nadeau & Bengio: 1/J + n_test/n_train
    p = 1 - t / math.sqrt(2 + t * t)  # two-sided p of Student's t with 2 degrees of freedom, closed form
    assert (round(t, 4), round(p, 4)) == (1.6733, 0.2362)
    got_t, got_p = corrected_ttest(a, b, n_train=200, n_test=100)
    assert got_t == pytest.approx(t, rel=1e-9) and got_p == pytest.approx(p, rel=1e-9)
    plain_p = 1 - (mean / math.sqrt(var / 3)) / math.sqrt(2 + mean**2 / (var / 3))
    assert plain_p < 0.12 < got_p  # the uncorrected test is much more eager
    assert corrected_ttest(b, a, n_train=200, n_test=100) == pytest.approx((-t, p))


def test_corrected_ttest_edge_cases():
    assert corrected_ttest([0.5, 0.6], [0.5, 0.6], n_train=8, n_test=2) == (0.0, 1.0)
    assert corrected_ttest([0.6, 0.7], [0.5, 0.6], n_train=8, n_test=2) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="at least 2 paired scores, got 1"):
        corrected_ttest([0.5], [0.4], n_train=8, n_test=2)


def test_wilcoxon_exact_p_values():
    assert wilcoxon_p([0.9, 0.92, 0.94], [0.88, 0.91, 0.90]) == pytest.approx(2 / 2**3)  # all 3 signs agree
    assert wilcoxon_p([1, 2, 3, 4, 5], [0, 1, 2.5, 3, 3]) == pytest.approx(2 / 2**5)
    assert wilcoxon_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0


def test_fold_config_sets_the_fold_and_scores_it_as_the_test_split():
    cfg = validate_run({"model": {"name": "logreg"}, "data": DATA})
    fold = fold_config(cfg, 5, 3, 1)
    assert (fold.data.split.folds, fold.data.split.fold, fold.data.split.repeat) == (5, 3, 1)
    assert fold.eval.split == "test" and fold.data.limit == 300 and cfg.data.split.folds is None


@pytest.fixture(scope="module")
def kfold_ladder(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(tmp_path_factory.mktemp("cache")))
        ladder = validate_ladder({
            "name": "cv", "protocol": {"kind": "kfold", "folds": 3}, "data": DATA, "train": TRAIN,
            "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                      {"name": "mlp", "model": {"name": "mlp", "hidden": [32]}}],
        })
        runs = tmp_path_factory.mktemp("runs")
        rows = run_ladder(ladder, runs, **QUIET)
        return runs / "cv", rows


def test_kfold_rows_hold_mean_std_interval_and_significance(kfold_ladder):
    root, rows = kfold_ladder
    assert [r["rung"] for r in rows] == ["logreg", "mlp"]
    assert json.loads((root / "leaderboard.json").read_text()) == rows
    assert list(pd.read_csv(root / "leaderboard.csv")["rung"]) == ["logreg", "mlp"]
    logreg, mlp = rows
    for row in rows:
        assert row["folds"] == 3 and not any(k.startswith("val_") for k in row)
        assert 0 < row["cv_accuracy_mean"] <= 1 and row["cv_accuracy_std"] > 0
        assert 0 <= row["cv_accuracy_low"] < row["cv_accuracy_mean"] < row["cv_accuracy_high"] <= 1
        assert {"cv_f1_macro_mean", "cv_log_loss_std", "cv_log_loss_low", "params", "train_seconds",
                "latency_ms_p50"} <= set(row)
    # logreg learns 300 digits far better than a 2-epoch MLP: it is the best rung, and the gap is significant
    assert logreg["cv_accuracy_mean"] > 0.9 > mlp["cv_accuracy_mean"]
    assert [logreg[k] for k in ("test", "p_value", "p_adj", "significant", "wilcoxon_p", "best")] == [None] * 5 + [True]
    assert mlp["test"] == "corrected-t" and mlp["best"] is False
    assert 0 < mlp["p_value"] == mlp["p_adj"] < 0.05 and mlp["significant"] is True  # Holm over one comparison
    assert mlp["wilcoxon_p"] is None  # 3 folds: the signed-rank test cannot go below p = 0.25
    assert sorted(p.name for p in (root / "mlp").iterdir()) == ["cv.json", *FOLDS]


def test_every_rung_sees_the_same_folds(kfold_ladder, tmp_path, monkeypatch):
    root, _ = kfold_ladder
    plan = json.loads((root / "folds.json").read_text())
    assert (plan["folds"], plan["repeats"], plan["n_pool"], plan["stratified"]) == (3, 1, 300, True)
    test = {name: np.array(idx) for name, idx in plan["test_indices"].items()}
    assert list(test) == list(plan["val_indices"]) == FOLDS
    assert np.array_equal(np.sort(np.concatenate(list(test.values()))), np.arange(300))  # a partition
    for name in FOLDS:  # the inner validation split: 10% of the other folds
        assert len(plan["val_indices"][name]) == 20 and not set(plan["val_indices"][name]) & set(test[name])
    monkeypatch.setenv("MODELLADDER_CACHE", str(tmp_path))
    pool = load_run_data(validate_run({"model": {"name": "logreg"}, "data": {**DATA, "split": {"val": 0}}}))
    classes = np.array(pool.classes)
    for name in FOLDS:
        truths = [pd.read_csv(root / rung / name / "predictions_test.csv", dtype={"true": str})["true"]
                  for rung in ("logreg", "mlp")]
        assert list(truths[0]) == list(truths[1]) == list(classes[pool.y_train[test[name]]])


def test_fold_metrics_match_the_saved_predictions(kfold_ladder):
    root, rows = kfold_ladder
    for row in rows:
        cv = json.loads((root / row["rung"] / "cv.json").read_text())
        assert cv["summary"] == row
        accuracies = []
        for record, name in zip(cv["folds"], FOLDS):
            frame = pd.read_csv(root / row["rung"] / name / "predictions_test.csv",
                                dtype={"true": str, "predicted": str})
            accuracy = float((frame["true"] == frame["predicted"]).mean())
            assert (record["repeat"], record["fold"], record["n_test"]) == (0, int(name[-1]), len(frame))
            assert record["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
            evaluation = json.loads((root / row["rung"] / name / "eval_test.json").read_text())
            assert evaluation["metrics"] == record["metrics"]
            assert not (root / row["rung"] / name / "eval_val.json").exists()
            accuracies.append(accuracy)
        assert row["cv_accuracy_mean"] == pytest.approx(np.mean(accuracies), abs=5e-5)
        assert row["cv_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1), abs=5e-5)
        n_train, n_test = np.mean([r["n_train"] for r in cv["folds"]]), np.mean([r["n_test"] for r in cv["folds"]])
        half = 4.302653 * math.sqrt((1 / 3 + n_test / n_train) * np.var(accuracies, ddof=1))  # t(2) 97.5% point
        assert row["cv_accuracy_low"] == pytest.approx(max(0.0, np.mean(accuracies) - half), abs=5e-5)
        assert row["cv_accuracy_high"] == pytest.approx(min(1.0, np.mean(accuracies) + half), abs=5e-5)


def test_ladder_rows_carry_training_costs(kfold_ladder):
    _, (logreg, mlp) = kfold_ladder
    assert logreg["flops_train"] is None  # scikit-learn: no made-up number
    assert isinstance(mlp["flops_train"], int) and mlp["flops_train"] > 0
    assert mlp["params"] > logreg["params"] > 0
    for row in (logreg, mlp):
        assert row["train_seconds"] > 0 and row["cpu_s"] > 0 and row["peak_mem_mb"] >= 0
        assert row["energy_kwh"] > 0 and row["co2_kg"] > 0 and row["latency_ms_p50"] > 0


def test_leaderboard_table_shows_mean_interval_and_the_test(kfold_ladder):
    _, rows = kfold_ladder
    out = io.StringIO()
    Console(file=out, width=120).print(leaderboard_table(rows, "cv leaderboard"))
    text = out.getvalue()
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert list(lines) == ["logreg", "mlp"]  # one line per rung: nothing wraps at 120 columns
    cells = {rung: [c.strip() for c in line.split("│")[2:-1]] for rung, line in lines.items()}
    logreg, mlp = rows
    interval = f"{logreg['cv_accuracy_mean']:.4f} [{logreg['cv_accuracy_low']:.3f}, {logreg['cv_accuracy_high']:.3f}]"
    assert cells["logreg"][:2] == [interval, "best"]  # no model column: every rung is named after its model
    assert cells["mlp"][1] == f"worse ({p_text(mlp['p_adj'])})"
    assert cells["mlp"][-1] == f"{mlp['latency_ms_p50']:.3g}"
    caption = " ".join(text.split())
    assert "corrected resampled t-test" in caption and "Holm-adjusted over 1 comparison;" in caption
    assert "the best was chosen on these same data" in caption


def test_kfold_report_shows_every_fold_and_pools_the_out_of_fold_predictions(kfold_ladder, tmp_path):
    root = shutil.copytree(kfold_ladder[0], tmp_path / "cv")
    html = write_report(root).read_text()
    plots = re.findall(r'data-plot="([^"]+)"', html)
    assert {"logreg/confusion", "logreg/roc", "mlp/learning-curves", "mlp/confusion", "mlp/roc"} <= set(plots)
    assert html.count("pool the out-of-fold predictions of 3 folds") == 2
    assert "fold 0-2 accuracy" in html
    # the pooled confusion matrix counts every pooled example once: the 300 training digits
    write_report(root / "mlp")  # a rung's own cross-validation folder has a report too
    section = (root / "mlp" / "report.html").read_text()
    supports = re.findall(r'<td class="number">(\d+)</td></tr>', section.split('class="per-class"')[1].split("</table>")[0])
    assert sum(int(n) for n in supports[:10]) == 300


def test_cross_validate_one_model_over_repeats(tmp_path):
    cfg = validate_run({"name": "lr", "model": {"name": "logreg"}, "data": DATA})
    row = cross_validate(cfg, 2, 2, tmp_path, **QUIET)
    root = tmp_path / "lr"
    assert sorted(p.name for p in root.iterdir()) == ["config.yaml", "cv.json", "fold-0-0", "fold-0-1", "fold-1-0",
                                                       "fold-1-1", "folds.json"]
    assert row["folds"] == 4 and row["cv_accuracy_mean"] > 0.85 and "p_value" not in row
    test = json.loads((root / "folds.json").read_text())["test_indices"]
    assert len(test["fold-0-0"]) == len(test["fold-1-0"]) == 150 and test["fold-0-0"] != test["fold-1-0"]
    with pytest.raises(InputError, match="already exists; pass --overwrite"):
        cross_validate(cfg, 2, 1, tmp_path, **QUIET)


def test_bad_fold_counts_are_input_errors(tmp_path):
    cfg = validate_run({"name": "lr", "model": {"name": "logreg"}, "data": DATA})
    with pytest.raises(InputError, match=r"^folds must be an int >= 2, got 1$"):
        cross_validate(cfg, 1, 1, tmp_path, **QUIET)
    with pytest.raises(InputError, match=r"^repeats must be an int >= 1, got 0$"):
        cross_validate(cfg, 2, 0, tmp_path, **QUIET)
    with pytest.raises(InputError, match=r"stratified 40-fold splitting needs at least 40 examples per class"):
        cross_validate(cfg, 40, 1, tmp_path, **QUIET)
    assert not (tmp_path / "lr").exists()  # nothing is created before the folds are known to be good


@pytest.mark.parametrize("protocol", ["holdout", "kfold"])
def test_a_rung_that_does_not_fit_the_data_fails_before_any_folder(tmp_path, protocol):
    ladder = validate_ladder({"name": "mixed", "protocol": {"kind": protocol, "folds": 3}, "data": DATA,
                              "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                                        {"name": "lstm", "model": {"name": "rnn"}}]})
    with pytest.raises(InputError, match=r"^rung 'lstm' \(model rnn\): model.name 'rnn' needs text data, but data.dataset 'digits' is image"):
        run_ladder(ladder, tmp_path, **QUIET)
    assert not (tmp_path / "mixed").exists()


def test_cross_validated_calibration_is_fitted_inside_the_folds_and_summarised(tmp_path):
    """eval.calibrate under k-fold: temperature fitted on each fold's inner validation split; the row says the
    method and the mean ECE before calibration beside the calibrated cv_ece_*."""
    cfg = validate_run({"name": "rf", "model": {"name": "random_forest", "n_jobs": 1}, "seed": 0,
                        "data": DATA | {"split": {"val": 0.2}}, "eval": {"calibrate": "temperature"}})
    row = cross_validate(cfg, 2, 1, tmp_path, **QUIET)
    assert row["calibration"] == "temperature"
    assert row["cv_ece_uncalibrated_mean"] > row["cv_ece_mean"]  # the forest is underconfident: calibration helps
    fold = json.loads((tmp_path / "rf" / "fold-0-0" / "calibration.json").read_text())
    assert fold["fitted_on"] == "val"
    indices = json.loads((tmp_path / "rf" / "folds.json").read_text())
    assert fold["n"] == len(indices["val_indices"]["fold-0-0"])  # the inner split, never the scored fold
