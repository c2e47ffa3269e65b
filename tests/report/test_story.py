"""The report's story on contract-shaped ladder folders (tests/report/contract_ladder.py): the Pareto frontier,
the step-up table's numbers, the budget's parse errors and verdict, and folders from before the new fields."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from modelladder.cli import main
from modelladder.errors import InputError
from modelladder.evaluate.paired import corrected_t_interval, paired_bootstrap
from modelladder.report import write_report
from modelladder.report.budget import parse_budget, verdict
from modelladder.report.pareto import frontier_points, headline, on_frontier
from modelladder.report.steps import step_table
from tests.report.contract_ladder import contract_ladder
from tests.report.test_report import Page


@pytest.fixture(scope="module")
def holdout(tmp_path_factory):
    return contract_ladder(tmp_path_factory.mktemp("ladders") / "contract")


@pytest.fixture
def holdout_copy(holdout, tmp_path):
    return shutil.copytree(holdout, tmp_path / "contract")


def rows_of(folder):
    return json.loads((folder / "leaderboard.json").read_text())


# ---------------------------------------------------------------- pareto


def test_dominated_points_are_those_beaten_on_both_axes():
    # cost lower is better, metric higher is better: (3, 0.93) is beaten by (2, 0.95)
    assert on_frontier([1, 2, 3, 4], [0.90, 0.95, 0.93, 0.97]) == [True, True, False, True]
    # a tie on both axes dominates neither; equal cost and a better metric dominates
    assert on_frontier([1, 1], [0.9, 0.9]) == [True, True]
    assert on_frontier([1, 1], [0.9, 0.8]) == [True, False]
    # throughput: more is better; mse: less is better
    assert on_frontier([100, 50], [0.9, 0.95], cost_lower_better=False) == [True, True]
    assert on_frontier([100, 50], [0.95, 0.9], cost_lower_better=False) == [True, False]
    assert on_frontier([1, 2], [0.5, 0.2], value_higher_better=False) == [True, True]
    assert on_frontier([1, 2], [0.2, 0.5], value_higher_better=False) == [True, False]


def test_frontier_points_leave_out_rungs_without_the_cost(holdout):
    rows = rows_of(holdout)
    head = headline(rows)
    assert (head.metric, head.column, head.kfold, head.higher_better) == ("accuracy", "test_accuracy", False, True)
    points = frontier_points(rows, head, "params")
    assert points["names"] == ["logreg", "mlp", "cnn"] and points["left_out"] == ["random_forest"]
    latency = frontier_points(rows, head, "latency_ms_p50")
    # random forest: slower than the cnn and less accurate
    assert dict(zip(latency["names"], latency["frontier"])) == {
        "logreg": True, "random_forest": False, "mlp": True, "cnn": True}
    assert latency["intervals"][0] == (rows[0]["test_accuracy_low"], rows[0]["test_accuracy_high"])


def test_headline_reads_cv_and_val_prefixes_and_regression():
    assert headline([{"rung": "a", "cv_accuracy_mean": 0.9}]).column == "cv_accuracy"
    old = headline([{"rung": "a", "val_accuracy_mean": 0.9, "val_accuracy_std": 0.01}])
    assert old.column == "val_accuracy" and old.kfold and old.value({"val_accuracy_mean": 0.9}) == 0.9
    reg = headline([{"rung": "a", "test_r2": 0.5, "test_mse": 2.0}])
    assert reg.metric == "mse" and not reg.higher_better
    assert headline([{"rung": "a", "params": 3}]) is None


# ---------------------------------------------------------------- paired differences


def test_paired_bootstrap_is_seeded_and_brackets_the_difference():
    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.9).astype(float)
    b = np.where(rng.random(300) < 0.5, 1.0, a)
    first = paired_bootstrap(a, b, seed=3)
    assert first == paired_bootstrap(a, b, seed=3)
    assert first.value == pytest.approx(b.mean() - a.mean())
    assert first.low <= first.value <= first.high and first.low > 0  # b is never worse than a
    same = paired_bootstrap(a, a, seed=3)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero
    with pytest.raises(ValueError, match="same non-zero number of rows"):
        paired_bootstrap(a, b[:10], seed=0)


def test_corrected_t_interval_matches_the_formula():
    from scipy import stats

    a, b = [0.90, 0.92, 0.91, 0.93, 0.90], [0.93, 0.94, 0.92, 0.96, 0.92]
    d = np.subtract(b, a)
    half = stats.t.ppf(0.975, 4) * math.sqrt((1 / 5 + 300 / 1200) * d.var(ddof=1))
    diff = corrected_t_interval(a, b, n_train=1200, n_test=300)
    assert diff.value == pytest.approx(d.mean())
    assert (diff.low, diff.high) == pytest.approx((d.mean() - half, d.mean() + half))


# ---------------------------------------------------------------- the step table


def test_step_table_pairs_each_rung_with_the_one_below(holdout):
    rows = rows_of(holdout)
    table = step_table(holdout, rows, headline(rows), seed=0)
    assert [r["step"] for r in table["rows"]] == ["logreg → random_forest", "random_forest → mlp", "mlp → cnn"]
    assert table["unit"] == "percentage points" and table["methods"] == ["paired bootstrap, 1000 resamples"]
    for lower, upper, step in zip(rows, rows[1:], table["rows"]):
        gained = 100 * (upper["test_accuracy"] - lower["test_accuracy"])
        assert float(step["change"]) == pytest.approx(gained, abs=0.06)
        low, high = (float(x) for x in step["interval"].split(" to "))
        assert low <= float(step["change"]) <= high
        assert step["verdict"] in ("better", "worse", "no clear difference")
    ratios = dict(zip(table["ratio_columns"], table["rows"][2]["ratios"]))
    assert ratios["training time ×"] == f"×{14.2 / 3.8:.3g}" and ratios["parameters ×"] == f"×{61000 / 50250:.3g}"
    assert table["rows"][0]["ratios"][2] == "-"  # a random forest has no params


def test_step_table_without_predictions_uses_the_leaderboard(holdout_copy):
    (holdout_copy / "mlp" / "predictions_test.csv").unlink()
    rows = rows_of(holdout_copy)
    step = step_table(holdout_copy, rows, headline(rows))["rows"][2]
    assert step["interval"] == "-" and step["verdict"] == "no interval: per-example predictions missing"
    assert float(step["change"]) == pytest.approx(100 * (rows[3]["test_accuracy"] - rows[2]["test_accuracy"]), abs=0.06)


def test_step_table_under_kfold_uses_the_fold_scores(tmp_path):
    folder = contract_ladder(tmp_path / "cv", kfold=True)
    rows = rows_of(folder)
    table = step_table(folder, rows, headline(rows))
    assert table["methods"] == ["corrected resampled t, 5 folds"]
    a = [f["metrics"]["accuracy"] for f in json.loads((folder / "mlp" / "cv.json").read_text())["folds"]]
    b = [f["metrics"]["accuracy"] for f in json.loads((folder / "cnn" / "cv.json").read_text())["folds"]]
    expected = corrected_t_interval(a, b, n_train=1293, n_test=324)
    assert table["rows"][2]["interval"] == f"{100 * expected.low:+.1f} to {100 * expected.high:+.1f}"


# ---------------------------------------------------------------- budget


def test_parse_budget_reads_one_or_several_limits():
    assert parse_budget(None) == {}
    assert parse_budget("latency_ms=5") == {"latency_ms_p50": 5.0}
    assert parse_budget("train_seconds<=60, energy_kwh=1e-4,throughput_per_s>=1000") == {
        "train_seconds": 60.0, "energy_kwh": 1e-4, "throughput_per_s": 1000.0}


@pytest.mark.parametrize("text, message", [
    ("latency=5", r"^--budget: unknown cost 'latency' \(did you mean 'latency_ms'\?\); allowed: params, nodes, "),
    ("latency_ms_p50>=5", r"^--budget: latency_ms_p50 takes latency_ms_p50<=VALUE or latency_ms_p50=VALUE"),
    ("throughput_per_s<=5", r"^--budget: throughput_per_s takes throughput_per_s>=VALUE"),
    ("train_seconds=-1", r"^--budget: train_seconds must be a number >= 0, got '-1'$"),
    ("train_seconds=fast", r"^--budget: train_seconds must be a number >= 0, got 'fast'$"),
    ("train_seconds", r"^--budget: 'train_seconds' is not a limit; write COST=VALUE or COST<=VALUE"),
    ("params=5,", r"^--budget: '' is not a limit"),
])
def test_a_bad_budget_names_the_flag_and_what_is_allowed(text, message):
    with pytest.raises(InputError, match=message):
        parse_budget(text)


def test_verdict_names_the_best_rung_that_fits(holdout):
    rows = rows_of(holdout)
    fast = verdict(rows, {"latency_ms_p50": 0.2})
    assert fast["rung"] == "mlp" and fast["best_overall"] == "cnn" and fast["fits"] == ["logreg", "mlp"]
    assert fast["left_out"] == {"random_forest": "latency_ms_p50 12.4 ms > 0.2 ms",
                                "cnn": "latency_ms_p50 0.41 ms > 0.2 ms"}
    assert fast["text"].startswith("Best rung within latency_ms_p50 <= 0.2 ms: mlp, test_accuracy 0.9778 (95% "
                                   "interval")
    assert "mlp is not significantly worse than it (mcnemar-exact, adjusted p 1)" in fast["text"]
    assert verdict(rows, {"latency_ms_p50": 1})["text"].endswith("It is also the best rung overall.")
    none = verdict(rows, {"params": 100})
    assert none["rung"] is None and "random_forest: no params measured" in none["text"]
    assert none["text"].startswith("No rung fits within params <= 100 (logreg: params 650 > 100;")


def test_budget_on_the_command_line_writes_budget_json_and_the_report(holdout_copy, capsys):
    assert main(["report", str(holdout_copy), "--budget", "latency_ms=0.2"]) == 0
    assert json.loads((holdout_copy / "budget.json").read_text())["rung"] == "mlp"
    assert capsys.readouterr().out.startswith("Best rung within latency_ms_p50 <= 0.2 ms: mlp")
    page = Page((holdout_copy / "report.html").read_text())
    assert page.ids[:2] == ["budget", "leaderboard"]  # the verdict comes first
    assert main(["report", str(holdout_copy), "--budget", "latency=5"]) == 2
    assert "error: --budget: unknown cost 'latency'" in capsys.readouterr().err
    assert main(["report", str(holdout_copy / "mlp"), "--budget", "params=5"]) == 2
    assert "--budget needs a ladder folder" in capsys.readouterr().err


# ---------------------------------------------------------------- the whole report


def test_contract_report_has_every_story_section(holdout_copy):
    page = Page(write_report(holdout_copy).read_text())
    assert {"leaderboard", "frontier", "steps", "calibration", "measured"} <= set(page.ids)
    assert "budget" not in page.ids  # no --budget given
    assert [p for p in page.plots() if p.startswith(("frontier/", "calibration/"))] == [
        "frontier/train_seconds", "frontier/latency_ms_p50", "frontier/energy_kwh", "frontier/params",
        "frontier/throughput_per_s", "calibration/reliability"]
    header, *body = page.tables["leaderboard"]
    assert "test_accuracy_low" not in header and "best" not in header and "significant" not in header
    assert body[3][header.index("test_accuracy")] == f"{rows_of(holdout_copy)[3]['test_accuracy']:.4g} (best)" + \
        f"[{rows_of(holdout_copy)[3]['test_accuracy_low']:.4g}, {rows_of(holdout_copy)[3]['test_accuracy_high']:.4g}]"
    calibration = {r[0]: r for r in page.tables["calibration"][1:]}
    assert set(calibration) == {"logreg", "random_forest", "mlp", "cnn"}
    assert float(calibration["random_forest"][1]) > 0.15  # the forest's under-confidence shows
    assert [r[0] for r in page.tables["steps"][1:]] == ["logreg → random_forest", "random_forest → mlp", "mlp → cnn"]
    html = (holdout_copy / "report.html").read_text()
    for text in ["Intel(R) Xeon(R) Platinum 8375C", "batch 1, 1 thread(s), n_jobs=1", "batch 256",
                 "0.42 0.3 0.2 at the start", "grid intensity of FRA", "energy_modelled_kwh"]:
        assert text in html


def test_a_folder_from_before_the_new_fields_still_gets_its_report(holdout_copy):
    old = [{k: v for k, v in row.items() if not k.endswith(("_low", "_high")) and k not in (
        "test", "p_value", "p_adj", "significant", "best", "test_ece", "throughput_per_s", "co2_country",
        "energy_modelled_kwh", "energy_cpu_kwh", "nodes", "calibration")} for row in rows_of(holdout_copy)]
    (holdout_copy / "leaderboard.json").write_text(json.dumps(old))
    (holdout_copy / "env.json").unlink()
    for rung in ("logreg", "mlp"):
        record = json.loads((holdout_copy / rung / "eval_test.json").read_text())
        del record["latency"]
        (holdout_copy / rung / "eval_test.json").write_text(json.dumps(record))
    for rung in ("random_forest", "cnn"):
        (holdout_copy / rung / "eval_test.json").unlink()
    page = Page(write_report(holdout_copy).read_text())
    assert {"frontier", "steps", "calibration", "measured"} <= set(page.ids)
    assert "frontier/throughput_per_s" not in page.plots()
    html = (holdout_copy / "report.html").read_text()
    assert "measured before the threads and batch sizes were recorded" in html and "Load average: not recorded" in html


def test_regression_rows_rank_on_mse(tmp_path):
    folder = tmp_path / "reg"
    folder.mkdir()
    rng = np.random.default_rng(0)
    true = rng.normal(size=200)
    for rung, noise in (("ridge", 1.0), ("mlp", 0.5)):
        (folder / rung).mkdir()
        pd.DataFrame({"true": true, "predicted": true + rng.normal(scale=noise, size=200)}).to_csv(
            folder / rung / "predictions_test.csv", index_label="row")
    rows = [{"rung": "ridge", "model": "ridge", "test_mse": 1.0, "test_r2": 0.0, "train_seconds": 0.1},
            {"rung": "mlp", "model": "mlp", "test_mse": 0.25, "test_r2": 0.75, "train_seconds": 2.0}]
    (folder / "leaderboard.json").write_text(json.dumps(rows))
    table = step_table(folder, rows, headline(rows))
    assert table["unit"] == "mse units" and table["rows"][0]["verdict"] == "better"  # lower mse is better
    assert verdict(rows, {"train_seconds": 1})["rung"] == "ridge"
    page = Page(write_report(folder).read_text())
    assert "frontier/train_seconds" in page.plots() and "calibration" not in page.ids


def test_frontier_labels_do_not_overlap_and_stay_inside(holdout):
    """Crowded points (mlp and cnn a few pixels apart on the params axis): adjustText keeps the labels apart."""
    from matplotlib.transforms import Bbox

    from modelladder.report.plots import frontier_drawing

    rows = rows_of(holdout)
    head = headline(rows)
    for cost in ("params", "latency_ms_p50", "throughput_per_s"):
        fig, texts = frontier_drawing(frontier_points(rows, head, cost), head.label)
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in texts]
        inside = fig.axes[0].get_window_extent(renderer)
        for i, box in enumerate(boxes):
            assert inside.x0 - 1 <= box.x0 and box.x1 <= inside.x1 + 1, (cost, texts[i].get_text())
            assert inside.y0 - 1 <= box.y0 and box.y1 <= inside.y1 + 1, (cost, texts[i].get_text())
            for other in boxes[i + 1:]:
                assert not box.overlaps(other), (cost, texts[i].get_text())
        points = frontier_points(rows, head, cost)
        for x, interval in zip(points["costs"], points["intervals"]):  # nor does a label cross an error bar
            (x0, y0), (x1, y1) = fig.axes[0].transData.transform([(x, interval[0]), (x, interval[1])])
            bar = Bbox([[x0 - 1, y0], [x1 + 1, y1]])
            assert not [t.get_text() for t, box in zip(texts, boxes) if box.overlaps(bar)], (cost, x)


def test_ladder_run_budget_prints_the_verdict_after_the_leaderboard(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text("name: tiny\ndata: {dataset: digits, limit: 200}\ntrain: {epochs: 1, progress: false}\n"
                      "rungs:\n  - {name: logreg, model: {name: logreg}}\n  - {name: mlp, model: {name: mlp, hidden: [8]}}\n")
    runs = tmp_path / "runs"
    assert main(["run", str(config), "--runs-dir", str(runs), "--budget", "latency_ms_p50<=x"]) == 2
    assert not runs.exists()  # refused before anything was trained
    assert "--budget: latency_ms_p50 must be a number >= 0, got 'x'" in capsys.readouterr().err
    assert main(["run", str(config), "--runs-dir", str(runs), "--budget", "train_seconds<=1000"]) == 0
    out = capsys.readouterr().out
    assert out.index("leaderboard") < out.index("Best rung within train_seconds <= 1,000 s:") < out.index("written:")
    assert json.loads((runs / "tiny" / "budget.json").read_text())["budget"] == {"train_seconds": 1000.0}
    assert Page((runs / "tiny" / "report.html").read_text()).ids[0] == "budget"


def test_kfold_contract_report_draws_cv_intervals_and_fold_steps(tmp_path):
    folder = contract_ladder(tmp_path / "cv", kfold=True)
    page = Page(write_report(folder).read_text())
    assert {"frontier", "steps", "measured"} <= set(page.ids) and "calibration" not in page.ids
    header, *body = page.tables["leaderboard"]
    assert "cv_accuracy" in header and "cv_accuracy_low" not in header
    cell = body[0][header.index("cv_accuracy")]
    assert " ± " in cell and "[" in cell and "†" not in cell  # logreg: significantly worse than the best
    assert "†" in body[1][header.index("cv_accuracy")]  # random_forest: adjusted p 0.63
    assert page.tables["steps"][1][3] in ("better", "worse", "no clear difference")
    assert "compared with the best on cv_accuracy by corrected-t, p adjusted with Holm's method" in \
        page.paragraphs["legend"][0]
