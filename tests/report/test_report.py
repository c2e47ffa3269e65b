"""`write_report`: one self-contained HTML file from a real ladder, a single run, a regression ladder."""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from modelladder.config import validate_ladder
from modelladder.errors import InputError
from modelladder.report import plots, write_report
from modelladder.report.html import cost_columns, table_columns
from modelladder.report.pareto import FRONTIER_COSTS
from modelladder.verbs.ladder import run_ladder

PNG = b"\x89PNG\r\n\x1a\n"


def story_plots(folder: Path, classification: bool = True) -> list[str]:
    """The frontier plots (one per frontier cost the rows have), the reliability grid (or the predicted-vs-true grid
    of a regression), then the other costs."""
    rows = json.loads((folder / "leaderboard.json").read_text())
    frontier = [f"frontier/{c}" for c in FRONTIER_COSTS if all(isinstance(r.get(c), (int, float)) for r in rows)]
    others = [f"cost/{c}" for c in cost_columns(rows, table_columns(rows)) if c not in FRONTIER_COSTS]
    return frontier + (["calibration/reliability"] if classification else ["predictions/predicted-vs-true"]) + others


def tiny_ladder(runs_dir: Path, task: str = "classification") -> Path:
    """logreg and a 2-epoch MLP on 300 digits, with the real run_ladder."""
    ladder = validate_ladder({
        "name": f"tiny-{task}",
        "data": {"dataset": "digits", "limit": 300},
        "task": {"name": task},
        "train": {"epochs": 2, "batch_size": 32, "progress": False},
        "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                  {"name": "mlp", "model": {"name": "mlp", "hidden": [32]}}],
    })
    run_ladder(ladder, runs_dir, console=Console(file=io.StringIO()))
    return runs_dir / ladder.name


@pytest.fixture(scope="module")
def ladder_dir(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(tmp_path_factory.mktemp("cache")))
        return tiny_ladder(tmp_path_factory.mktemp("runs"))


@pytest.fixture
def ladder_copy(ladder_dir, tmp_path) -> Path:
    return Path(shutil.copytree(ladder_dir, tmp_path / ladder_dir.name))


class Page(HTMLParser):
    """The parts of a report the tests look at: ids, images, table cells, text of notes and <pre>."""

    def __init__(self, html: str):
        super().__init__()
        self.ids, self.images, self.tables, self.pre, self.paragraphs = [], [], {}, [], {}
        self._table, self._row, self._text, self._class = None, None, None, None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("class", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th", "pre", "p"):
            self._text, self._class = [], attrs.get("class", "")

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        text = "".join(self._text or [])
        if tag in ("td", "th") and self._row is not None:
            self._row.append(text)
        elif tag == "pre":
            self.pre.append(text)
        elif tag == "p":
            self.paragraphs.setdefault(self._class, []).append(text)
        elif tag == "table":
            self._table = None
        if tag in ("td", "th", "pre", "p"):
            self._text = None

    def plots(self) -> list[str]:
        return [img["data-plot"] for img in self.images if img.get("class") == "plot"]


def page_of(path: Path) -> Page:
    return Page(path.read_text())


def assert_inline_png(src: str) -> None:
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)


def test_ladder_report_holds_every_section_plot_and_table(ladder_copy):
    path = write_report(ladder_copy)
    assert path == ladder_copy / "report.html"
    assert not list(ladder_copy.glob(".*.tmp"))  # written to a temporary name, then renamed
    html = path.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    page = Page(html)
    assert {"leaderboard", "frontier", "steps", "calibration", "measured", "ladder-config", "run-logreg",
            "run-mlp"} <= set(page.ids)
    assert page.plots() == story_plots(ladder_copy) + [
        "logreg/confusion", "logreg/roc", "mlp/learning-curves", "mlp/confusion", "mlp/roc"]
    for img in page.images:
        assert_inline_png(img["src"])

    rows = json.loads((ladder_copy / "leaderboard.json").read_text())
    header, *body = page.tables["leaderboard"]
    assert header == table_columns(rows)  # every column the rows carry, in order (intervals in their metric's cell)
    assert [cells[0] for cells in body] == ["logreg", "mlp"]
    assert body[1][header.index("test_accuracy")].startswith(f"{rows[1]['test_accuracy']:.4g}")
    assert body[1][header.index("params")] == f"{rows[1]['params']:,}"

    per_class = page.tables["per-class"]  # both rungs' tables, 1 header + 10 digits + 2 averages each
    assert len(per_class) == 2 * 13
    assert [r[0] for r in per_class[1:11]] == [str(d) for d in range(10)]
    assert sum(int(r[4]) for r in per_class[1:11]) == 360  # the digits test split
    assert page.paragraphs["note"] == ["no learning curves: this run has no metrics.jsonl (scikit-learn rungs fit in one call)"]
    assert page.pre == [(ladder_copy / name).read_text()  # ladder.yaml, then each rung's resolved config
                        for name in ["ladder.yaml", "logreg/config.yaml", "mlp/config.yaml"]]
    env = {r[0]: r[1] for r in page.tables["environment"]}
    assert {"seed", "git_sha", "versions.torch", "versions.scikit-learn", "hardware.cpu_count"} <= set(env)


def test_per_class_table_matches_scikit_learn(ladder_copy):
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    frame = pd.read_csv(ladder_copy / "mlp" / "predictions_test.csv", dtype={"true": str, "predicted": str})
    precision, recall, f1, support = precision_recall_fscore_support(
        frame["true"], frame["predicted"], labels=[str(d) for d in range(10)], zero_division=0)
    page = page_of(write_report(ladder_copy / "mlp"))
    rows = page.tables["per-class"][1:11]
    assert [float(r[1]) for r in rows] == pytest.approx(precision, abs=5e-4)
    assert [float(r[2]) for r in rows] == pytest.approx(recall, abs=5e-4)
    assert [float(r[3]) for r in rows] == pytest.approx(f1, abs=5e-4)
    assert [int(r[4]) for r in rows] == list(support)


def test_single_run_report_and_its_pictures(ladder_copy):
    run = ladder_copy / "mlp"
    (run / "pictures").mkdir()
    (run / "pictures" / "notes.txt").write_text("not a picture")
    for picture in [run / "attributions.png", run / "pictures" / "samples.png"]:
        Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(picture)
    page = page_of(write_report(run))
    assert "leaderboard" not in page.ids and page.ids.count("run-mlp") == 1
    assert page.plots() == ["mlp/learning-curves", "mlp/confusion", "mlp/roc"]
    pictures = [img for img in page.images if img.get("class") == "picture"]
    assert [p["alt"] for p in pictures] == ["attributions.png", "pictures/samples.png"]  # not notes.txt
    for picture in pictures:
        assert_inline_png(picture["src"])
    summary = {r[0]: r[1] for r in page.tables["summary"][1:]}
    assert summary["model"] == "mlp" and summary["epochs"] == "2"
    assert "accuracy" in {r[0] for r in page.tables["metrics"][1:]}


def test_cross_validation_columns_show_mean_std_and_significance(ladder_copy):
    board = ladder_copy / "leaderboard.json"
    board.write_text(json.dumps([
        {"rung": "logreg", "model": "logreg", "cv_accuracy_mean": 0.91, "cv_accuracy_std": 0.02,
         "significant": False, "params": 650, "train_seconds": 0.0, "folds": 5},
        {"rung": "mlp", "model": "mlp", "cv_accuracy_mean": 0.95, "cv_accuracy_std": 0.01,
         "significant": None, "params": 2410, "train_seconds": 1.5, "folds": 5, "flops": 4800,
         "energy_kwh": 1e-6},
    ]))
    page = page_of(write_report(ladder_copy))
    header, logreg, mlp = page.tables["leaderboard"]
    assert header == ["rung", "model", "cv_accuracy", "params", "train_seconds", "folds", "flops", "energy_kwh"]
    assert logreg[2] == "0.91 ± 0.02 †" and mlp[2] == "0.95 ± 0.01"
    assert logreg[6] == "-"
    assert page.paragraphs["legend"] == [
        "† not significantly different from the best rung (the row's `significant` value is false)."]
    # folds is not a cost; a cost of 0 s still gets a (symmetric) log axis; one rung's energy is no frontier
    assert [p for p in page.plots() if p.startswith(("cost/", "frontier/"))] == [
        "frontier/train_seconds", "frontier/params", "cost/flops"]


def test_regression_ladder_report_has_scatter_not_confusion(tmp_path):
    folder = tiny_ladder(tmp_path / "runs", task="regression")
    page = page_of(write_report(folder))
    assert page.plots() == story_plots(folder, classification=False) + [
        "logreg/predicted-vs-true", "mlp/learning-curves", "mlp/predicted-vs-true"]
    assert "per-class" not in page.tables
    assert "test_r2" in page.tables["leaderboard"][0]
    assert "test_rmse vs params" in [img["alt"] for img in page.images]  # rmse: what regression rungs rank on


def test_missing_or_foreign_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=(
            rf"^report: folder {tmp_path / 'nope'} does not exist; expected a ladder folder \(with "
            r"leaderboard.json\) or a run folder \(with config.yaml and summary.json\)$")):
        write_report(tmp_path / "nope")
    (tmp_path / "config.yaml").write_text("name: x\n")  # a run folder needs summary.json too
    with pytest.raises(InputError, match=rf"^report: {tmp_path} is neither a ladder folder \(no "
                                         r"leaderboard.json\), a run folder .* nor a cross-validation "
                                         r"folder \(cv.json\)"):
        write_report(tmp_path)
    with pytest.raises(InputError, match=r"is neither a ladder folder"):
        write_report(tmp_path / "config.yaml")
    assert not (tmp_path / "report.html").exists()


def test_a_report_that_cannot_be_written_is_an_input_error(ladder_copy):
    (ladder_copy / "mlp" / "report.html" / "x").mkdir(parents=True)  # a folder where the file belongs
    with pytest.raises(InputError, match=rf"^report: {ladder_copy / 'mlp' / 'report.html'}: Is a directory$"):
        write_report(ladder_copy / "mlp")


def test_a_rung_without_its_folder_keeps_its_row_and_says_so(ladder_copy):
    shutil.rmtree(ladder_copy / "mlp")
    page = page_of(write_report(ladder_copy))
    assert [row[0] for row in page.tables["leaderboard"][1:]] == ["logreg", "mlp"]
    assert "run-mlp" in page.ids and not [p for p in page.plots() if p.startswith("mlp/")]
    assert page.paragraphs["note"][-1] == (f"no run folder {ladder_copy / 'mlp'} with config.yaml and "
                                           "summary.json: only its leaderboard row is known")


def test_broken_leaderboard_is_named(ladder_copy):
    (ladder_copy / "leaderboard.json").write_text("[]")
    with pytest.raises(InputError, match=r"leaderboard.json must hold a non-empty list of rows, each with a 'rung' key$"):
        write_report(ladder_copy)
    (ladder_copy / "leaderboard.json").write_text("{not json")
    with pytest.raises(InputError, match=r"leaderboard.json line 1 is not valid JSON"):
        write_report(ladder_copy)


def test_broken_metrics_and_predictions_are_named(ladder_copy):
    run = ladder_copy / "mlp"
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "split": "tr\n')
    lines = len((run / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(InputError, match=rf"metrics.jsonl line {lines} is not valid JSON"):
        write_report(run)
    (run / "metrics.jsonl").unlink()
    (run / "predictions_test.csv").write_text("row,label\n0,1\n")
    with pytest.raises(InputError, match=r"predictions_test.csv is not a predictions table written by "
                                         r"ModelLadder: it needs the columns 'true' and 'predicted'"):
        write_report(run)


def test_roc_binary_draws_the_positive_class_and_skips_undefined_curves():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    assert plots.roc_curves(np.array(["no", "yes", "no", "yes"]), proba, ["no", "yes"]).startswith("data:image/png")
    assert plots.roc_curves(np.array(["no"] * 4), proba, ["no", "yes"]) is None  # one class: no curve
