"""A ladder never loses finished work: every rung checked before the first trains, a rung that fails at run time is a
failed row while the others go on, `--resume` keeps finished rungs and folds, and `--time-limit` shares a budget."""

from __future__ import annotations

import io
import json
import time

import pandas as pd
import pytest
import yaml
from rich.console import Console

import modelladder.verbs.cv as cv_verb
import modelladder.verbs.ladder as ladder_verb
from modelladder.config import parse_duration, validate_ladder
from modelladder.errors import InputError
from modelladder.report import write_report
from modelladder.report.leaderboard import leaderboard_table
from modelladder.verbs.ladder import run_ladder
from modelladder.verbs.resilience import duration, one_line

DATA = {"dataset": "digits", "limit": 200}
TRAIN = {"epochs": 1, "batch_size": 32, "progress": False, "threads": 1}
MLP = {"name": "mlp", "model": {"name": "mlp", "hidden": [16]}}
COMPARED = ("test", "p_value", "p_adj", "significant", "best")


def quiet() -> dict:
    return {"console": Console(file=io.StringIO(), width=200)}


def ladder(rungs: list, **kw) -> object:
    return validate_ladder({"name": "lad", "data": DATA, "train": TRAIN, "rungs": rungs, **kw})


def failing(names: set[str], real):
    """train_run that raises for the rungs in `names` (the rung's folder, or a fold folder under it)."""
    def train_run(cfg, run_dir, **kw):
        if cfg.name in names:
            raise RuntimeError(f"injected failure\nin {cfg.name}")
        return real(cfg, run_dir, **kw)
    return train_run


def mtimes(folder) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- pre-check


def test_every_rung_problem_is_reported_at_once_and_no_folder_is_made(tmp_path):
    from sklearn.datasets import load_wine

    load_wine(as_frame=True).frame.to_csv(tmp_path / "wine.csv", index=False)
    lad = validate_ladder({"name": "wine", "data": {"dataset": "csv", "path": str(tmp_path / "wine.csv"),
                                                    "label": "target"},
                           "rungs": ["logreg", "mlp", "cnn", {"name": "lstm", "model": {"name": "rnn"}},
                                     {"name": "svm", "model": {"name": "tfidf_svm"}}]})
    with pytest.raises(InputError) as err:
        run_ladder(lad, tmp_path / "runs", **quiet())
    problems = err.value.problems
    assert problems[0] == "rung 'cnn' (model cnn): model cnn needs images shaped (C, H, W), got input shape (13,)"
    assert problems[1].startswith("rung 'lstm' (model rnn): model.name 'rnn' needs text data, but data.dataset 'csv'")
    assert problems[2].startswith("rung 'svm' (model tfidf_svm): model.name 'tfidf_svm' needs text data")
    assert len(problems) == 3
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "wine").mkdir(parents=True)
    (tmp_path / "runs" / "wine" / "keep.txt").write_text("x")
    with pytest.raises(InputError):  # --overwrite: the old folder is not replaced before the rungs are known good
        run_ladder(lad, tmp_path / "runs", overwrite=True, **quiet())
    assert (tmp_path / "runs" / "wine" / "keep.txt").is_file()


def test_a_missing_hf_model_folder_is_found_before_anything_trains(tmp_path):
    pd.DataFrame({"text": ["good film", "bad film", "great fun", "awful plot"] * 10,
                  "label": ["pos", "neg", "pos", "neg"] * 10}).to_csv(tmp_path / "reviews.csv", index=False)
    lad = validate_ladder({"name": "t", "data": {"dataset": "text", "path": str(tmp_path / "reviews.csv")},
                           "rungs": ["tfidf_logreg", {"name": "minilm", "model": {"name": "hf", "model": "nope-dir/x"}},
                                     "cnn"]})
    with pytest.raises(InputError) as err:
        run_ladder(lad, tmp_path / "runs", **quiet())
    problems = err.value.problems
    assert [p.split(":")[0] for p in problems] == ["rung 'minilm' (model hf)", "rung 'cnn' (model cnn)"]
    assert "nope-dir/x" in problems[0]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- failed rows


def test_a_rung_failing_at_run_time_is_a_failed_row_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder_verb, "train_run", failing({"mlp"}, ladder_verb.train_run))
    rows = run_ladder(ladder(["logreg", MLP, {"name": "lr2", "model": {"name": "logreg", "C": 0.1}}]), tmp_path,
                      **quiet())
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"]
    assert rows[1] == {"rung": "mlp", "model": "mlp", "family": "neural", "status": "failed",
                       "error": "RuntimeError: injected failure in mlp"}
    assert list(rows[0])[:4] == ["rung", "model", "family", "status"]
    assert sum(bool(r.get("best")) for r in rows) == 1 and rows[2]["test"] == "mcnemar-exact"  # compared, ok rows only
    root = tmp_path / "lad"
    assert json.loads((root / "leaderboard.json").read_text()) == rows
    csv = pd.read_csv(root / "leaderboard.csv")
    assert list(csv["status"]) == ["ok", "failed", "ok"] and csv["error"][1] == rows[1]["error"]
    assert "injected failure" in (root / "mlp" / "error.txt").read_text()
    console = Console(file=io.StringIO(), width=250)
    console.print(leaderboard_table(rows, "lad"))
    printed = console.file.getvalue()
    assert "failed: RuntimeError: injected failure in mlp" in printed and "Not finished: mlp failed: RuntimeError" in printed


@pytest.mark.slow  # the report's plots: about 10 s on a loaded 2-core machine
def test_ladder_run_exits_1_naming_the_failed_rungs_after_writing_leaderboard_and_report(tmp_path, monkeypatch,
                                                                                          capsys):
    from modelladder.cli import main

    monkeypatch.setattr(ladder_verb, "train_run", failing({"mlp"}, ladder_verb.train_run))
    config = tmp_path / "lad.yaml"
    config.write_text(yaml.safe_dump({"name": "lad", "data": DATA, "train": TRAIN,
                                      "rungs": ["logreg", MLP, {"name": "lr2", "model": {"name": "logreg", "C": 0.1}}]}))
    assert main(["run", str(config), "--runs-dir", str(tmp_path / "runs")]) == 1
    out, err = capsys.readouterr()
    assert "error: 1 of 3 rungs failed: mlp (RuntimeError: injected failure in mlp)" in err
    assert "failed: RuntimeError: injected failure in mlp" in out  # the printed leaderboard's row
    root = tmp_path / "runs" / "lad"
    rows = json.loads((root / "leaderboard.json").read_text())
    assert [r["status"] for r in rows] == ["ok", "failed", "ok"] and (root / "leaderboard.csv").is_file()
    html = (root / "report.html").read_text()
    assert "failed: RuntimeError: injected failure in mlp" in html and "frontier" in html
    assert main(["run", str(config), "--runs-dir", str(tmp_path / "runs"), "--time-limit", "ten"]) == 2
    assert "error: --time-limit must be a duration such as 600, 90s, 10m or 1h, got 'ten'" in capsys.readouterr().err


def test_every_rung_failing_still_writes_the_leaderboard(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder_verb, "train_run", failing({"logreg", "mlp"}, ladder_verb.train_run))
    rows = run_ladder(ladder(["logreg", MLP]), tmp_path, **quiet())
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert (tmp_path / "lad" / "leaderboard.csv").is_file() and write_report(tmp_path / "lad").is_file()
    console = Console(file=io.StringIO(), width=200)
    console.print(leaderboard_table(rows, "lad"))
    assert "failed: RuntimeError" in console.file.getvalue()


def test_ctrl_c_still_stops_the_ladder(tmp_path, monkeypatch):
    def interrupted(cfg, run_dir, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(ladder_verb, "train_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ladder(ladder(["logreg", MLP]), tmp_path, **quiet())
    assert not (tmp_path / "lad" / "leaderboard.json").exists()


def test_one_line_errors():
    assert one_line(InputError(["a is bad", "b is\nworse"])) == "a is bad; b is worse"
    assert one_line(ValueError("x" * 400)).endswith("...") and len(one_line(ValueError("x" * 400))) == 300


# ---------------------------------------------------------------- --resume


def test_resume_keeps_finished_rungs_and_finishes_the_rest(tmp_path, monkeypatch):
    lad = ladder(["logreg", MLP])
    real = ladder_verb.train_run
    monkeypatch.setattr(ladder_verb, "train_run", failing({"mlp"}, real))
    first = run_ladder(lad, tmp_path, **quiet())
    root = tmp_path / "lad"
    (root / "mlp" / "checkpoints").mkdir(exist_ok=True)  # a half-written rung folder: replaced
    kept = mtimes(root / "logreg")
    monkeypatch.setattr(ladder_verb, "train_run", real)
    console = Console(file=io.StringIO(), width=200)
    rows = run_ladder(lad, tmp_path, resume=True, console=console)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert mtimes(root / "logreg") == kept  # not trained again
    # read back as it was written; the comparison with the best is recomputed over all the rungs
    assert {k: v for k, v in rows[0].items() if k not in COMPARED} == {k: v for k, v in first[0].items() if k not in COMPARED}
    assert sum(bool(r.get("best")) for r in rows) == 1 and all("p_adj" in r for r in rows)
    assert not (root / "mlp" / "error.txt").exists() and (root / "mlp" / "eval_test.json").is_file()
    assert "1 finished, kept" in console.file.getvalue()
    assert json.loads((root / "leaderboard.json").read_text()) == rows
    # nothing left to do: a second resume keeps everything and gives the same leaderboard
    assert run_ladder(lad, tmp_path, resume=True, **quiet()) == rows


def test_resume_continues_a_network_rung_from_its_checkpoint(tmp_path):
    lad = ladder([{"name": "mlp", "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 2}}])
    first = run_ladder(lad, tmp_path, **quiet())
    run_dir = tmp_path / "lad" / "mlp"
    (run_dir / "eval_test.json").unlink()  # stopped after training, before its evaluation was written
    metrics = (run_dir / "metrics.jsonl").read_text()
    console = Console(file=io.StringIO(), width=200)
    rows = run_ladder(lad, tmp_path, resume=True, console=console)
    assert "continued from" in console.file.getvalue()
    assert (run_dir / "metrics.jsonl").read_text() == metrics and (run_dir / "eval_test.json").is_file()
    assert rows[0]["test_accuracy"] == first[0]["test_accuracy"] and rows[0]["status"] == "ok"


def test_resume_refuses_another_ladder_and_allows_added_rungs(tmp_path, monkeypatch):
    monkeypatch.setattr(ladder_verb, "train_run", failing({"mlp"}, ladder_verb.train_run))
    run_ladder(ladder(["logreg", MLP]), tmp_path, **quiet())
    with pytest.raises(InputError, match=r"^--resume keeps .* --overwrite deletes them"):
        run_ladder(ladder(["logreg"]), tmp_path, resume=True, overwrite=True, **quiet())
    changed = validate_ladder({"name": "lad", "data": {**DATA, "limit": 150}, "train": TRAIN, "rungs": ["logreg"]})
    with pytest.raises(InputError) as err:
        run_ladder(changed, tmp_path, resume=True, **quiet())
    assert err.value.problems[0].startswith("cannot resume ") and "in data.limit (200 there, 150 now)" in \
        err.value.problems[0]
    other_rung = ladder(["logreg", {"name": "mlp", "model": {"name": "mlp", "hidden": [8]}}])
    with pytest.raises(InputError, match=r"rungs 'mlp'.model.hidden \(\[16\] there, \[8\] now\)"):
        run_ladder(other_rung, tmp_path, resume=True, **quiet())
    with pytest.raises(InputError, match=r"cannot resume: ladder folder .*elsewhere.*lad does not exist"):
        run_ladder(ladder(["logreg"]), tmp_path / "elsewhere", resume=True, **quiet())
    monkeypatch.setattr(ladder_verb, "train_run", failing(set(), ladder_verb.train_run))
    rows = run_ladder(ladder(["logreg", {"name": "lr2", "model": {"name": "logreg", "C": 0.1}}],
                             time_limit_s=600), tmp_path, resume=True, **quiet())  # mlp left out, lr2 added
    assert [(r["rung"], r["status"]) for r in rows] == [("logreg", "ok"), ("lr2", "ok")]


def test_kfold_resume_keeps_finished_folds(tmp_path, monkeypatch):
    lad = ladder(["logreg", {"name": "lr2", "model": {"name": "logreg", "C": 0.1}}],
                 protocol={"kind": "kfold", "folds": 2}, time_limit_s=600)  # 4 runs: about 150 s each
    real = cv_verb.train_run

    def fold_1_fails(cfg, run_dir, **kw):
        if cfg.name == "lr2" and run_dir.name == "fold-0-1":
            raise RuntimeError("injected")
        return real(cfg, run_dir, **kw)

    monkeypatch.setattr(cv_verb, "train_run", fold_1_fails)
    rows = run_ladder(lad, tmp_path, **quiet())
    assert rows[1] == {"rung": "lr2", "model": "logreg", "family": "classic", "status": "failed",
                       "error": "fold-0-1: RuntimeError: injected"}
    assert rows[0]["status"] == "ok" and rows[0]["best"] is True and "cv_accuracy_mean" in rows[0]
    root = tmp_path / "lad"
    assert 149 < yaml.safe_load((root / "logreg" / "fold-0-0" / "config.yaml").read_text())["train"]["max_seconds"] <= 150
    kept = mtimes(root / "logreg") | {f"lr2/{k}": v for k, v in mtimes(root / "lr2" / "fold-0-0").items()}
    monkeypatch.setattr(cv_verb, "train_run", real)
    rows = run_ladder(lad, tmp_path, resume=True, **quiet())
    assert [r["status"] for r in rows] == ["ok", "ok"] and sorted(str(r["test"]) for r in rows) == ["None", "corrected-t"]
    after = {k: v for k, v in mtimes(root / "logreg").items() if k != "cv.json"}
    assert after == {k: v for k, v in kept.items() if not k.startswith("lr2/") and k != "cv.json"}
    assert {f"lr2/{k}": v for k, v in mtimes(root / "lr2" / "fold-0-0").items()} == \
        {k: v for k, v in kept.items() if k.startswith("lr2/")}
    assert (root / "lr2" / "fold-0-1" / "eval_test.json").is_file() and (root / "lr2" / "cv.json").is_file()


# ---------------------------------------------------------------- --time-limit


def test_durations():
    assert [parse_duration(t) for t in ("600", "90s", "10m", "1.5h", " 2 m", 30)] == [600, 90, 600, 5400, 120, 30]
    for bad in ("ten minutes", "-5", "10d", ""):
        with pytest.raises(ValueError, match="must be a duration such as 600, 90s, 10m or 1h"):
            parse_duration(bad)
    assert validate_ladder({"rungs": ["logreg"], "time_limit_s": "10m"}).time_limit_s == 600
    with pytest.raises(InputError, match=r"time_limit_s must be > 0, got 0"):
        validate_ladder({"rungs": ["logreg"], "time_limit_s": 0})
    assert [duration(s) for s in (45, 150, 5400)] == ["45s", "2.5m", "1.5h"]


def test_the_time_limit_is_shared_by_the_rungs_as_they_start(tmp_path):
    console = Console(file=io.StringIO(), width=200)
    rows = run_ladder(ladder(["logreg", MLP], time_limit_s=600), tmp_path, console=console)
    limits = [yaml.safe_load((tmp_path / "lad" / r / "config.yaml").read_text())["train"]["max_seconds"]
              for r in ("logreg", "mlp")]
    assert 299 < limits[0] <= 300 and limits[0] < limits[1] < 600  # half of it, then what is left
    assert "time limit 10m: about 5m per run" in console.file.getvalue()
    assert all(r["status"] == "ok" and "stopped" not in r for r in rows)


def test_rungs_that_find_the_budget_spent_are_skipped_and_a_cut_rung_says_so(tmp_path, monkeypatch):
    real = ladder_verb.train_run

    def overrunning(cfg, run_dir, **kw):  # the rung's evaluation takes long: nothing is left for the next rungs
        result = real(cfg, run_dir, **kw)
        time.sleep(2)
        return result

    monkeypatch.setattr(ladder_verb, "train_run", overrunning)
    mlp = {"name": "mlp", "model": {"name": "mlp", "hidden": [16]}, "train": {"epochs": 10_000}}
    rows = run_ladder(ladder([mlp, "logreg", "random_forest"], time_limit_s=1.5), tmp_path, **quiet())
    assert rows[0]["status"] == "ok" and rows[0]["stopped"] == "time_limit"  # cut after about 0.5 s
    assert rows[0]["train_seconds"] < 1.5
    assert rows[1] == {"rung": "logreg", "model": "logreg", "family": "classic", "status": "skipped",
                       "error": "time limit reached"}
    assert rows[2]["error"] == "time limit reached" and not (tmp_path / "lad" / "logreg").exists()
