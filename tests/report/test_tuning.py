"""The tuning report (report/tuning.py): a small Optuna study made here in tune/study.db, and a trials.csv in the
contract's columns, give a run's optimisation history, parameter importances and best parameters, and one small
panel per tuned rung in a ladder report. Independent of the tuning engine: no training."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import optuna
import pandas as pd
import pytest

from modelladder.report import write_report
from modelladder.report.tuning import importances, load_trials, tuning_context

PNG = b"\x89PNG\r\n\x1a\n"


def toy_study(run_dir: Path, n: int = 8, pruned: tuple[int, ...] = (3, 6)) -> optuna.Study:
    """A study named after the run, in run_dir/tune/study.db: accuracy peaks at lr 1e-2, hidden does little;
    trials in `pruned` report one value and are pruned."""
    (run_dir / "tune").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=run_dir.name, storage=f"sqlite:///{run_dir / 'tune' / 'study.db'}",
                                direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n):
        trial = study.ask()
        lr = trial.suggest_float("train.optimizer.lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_categorical("model.hidden", ['[64]', '[128, 64]'])
        value = 0.95 - 0.05 * abs(math.log10(lr) + 2) + (0.001 if hidden == "[64]" else 0)
        if i in pruned:
            trial.report(value - 0.2, step=0)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return study


def fake_run(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text("name: tuned\nmodel: {name: mlp}\n")
    (run_dir / "summary.json").write_text(json.dumps({"model": "mlp", "family": "neural"}))
    return run_dir


def mini_ladder(folder: Path, kfold: bool = False) -> Path:
    """A ladder folder with three untrained rungs (leaderboard rows and run folders, or cv.json per rung)."""
    rungs = ("logreg", "mlp", "cnn")
    folder.mkdir(parents=True)
    (folder / "leaderboard.json").write_text(json.dumps([{"rung": r, "model": r, "family": "x"} for r in rungs]))
    for rung in rungs:
        if kfold:
            (folder / rung).mkdir()
            (folder / rung / "cv.json").write_text(json.dumps({"summary": {}, "folds": []}))
        else:
            fake_run(folder / rung)
    return folder


def plots_of(html: str) -> list[str]:
    return re.findall(r'data-plot="([^"]+)"', html)


def image(html: str, plot: str) -> bytes:
    uri = re.search(rf'data-plot="{re.escape(plot)}" src="data:image/png;base64,([^"]+)"', html).group(1)
    return base64.b64decode(uri)


def test_run_report_shows_history_importances_and_best_params(tmp_path):
    run = fake_run(tmp_path / "tuned")
    study = toy_study(run)
    (run / "tune.json").write_text(json.dumps({"metric": "val_accuracy", "direction": "maximize", "budget": "8 trials",
                                               "best_params": {"train.optimizer.lr": study.best_params[
                                                   "train.optimizer.lr"], "model.hidden": [64]}}))
    html = write_report(run).read_text()
    assert {"tuned/tuning-history", "tuned/tuning-importances"} <= set(plots_of(html))
    assert image(html, "tuned/tuning-history").startswith(PNG)
    assert image(html, "tuned/tuning-importances").startswith(PNG)
    assert "6 complete and 2 pruned trials, budget 8 trials" in html and "val_accuracy" in html
    table = html.split('class="best-params"')[1].split("</table>")[0]
    assert "train.optimizer.lr" in table and "[64]" in table


def test_pruned_trials_carry_their_last_reported_value(tmp_path):
    run = fake_run(tmp_path / "tuned")
    toy_study(run, n=5, pruned=(1,))
    trials, study, source = load_trials(run)
    assert source == "tune/study.db" and study is not None
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert len(pruned) == 1 and pruned[0]["value"] is not None


def test_fewer_than_two_complete_trials_say_importances_are_impossible(tmp_path):
    run = fake_run(tmp_path / "tuned")
    toy_study(run, n=3, pruned=(0, 1))
    context = tuning_context(run, str)
    assert [f["title"] for f in context["figures"]] == ["optimisation history"]
    assert any("need at least 2 complete trials, this study has 1" in n for n in context["notes"])
    html = write_report(run).read_text()
    assert "need at least 2 complete trials" in html and "tuned/tuning-importances" not in plots_of(html)


def test_trials_csv_alone_is_enough(tmp_path):
    run = fake_run(tmp_path / "tuned")
    (run / "tune").mkdir()
    rows = [{"number": i, "state": "PRUNED" if i == 2 else "COMPLETE", "value": None if i == 2 else 0.8 + 0.02 * i,
             "duration_s": 1.5, "param_model.C": 10.0 ** (i - 2), "param_model.hidden": json.dumps([64] * (1 + i % 2))}
            for i in range(5)]
    pd.DataFrame(rows).to_csv(run / "tune" / "trials.csv", index=False)
    trials, study, source = load_trials(run)
    assert source == "tune/trials.csv" and study is None
    assert trials[1]["params"] == {"model.C": 0.1, "model.hidden": [64, 64]} and trials[2]["value"] is None
    found, why = importances(trials, None, "maximize")
    assert why is None and set(found) == {"model.C", "model.hidden"} and sum(found.values()) == pytest.approx(1)
    html = write_report(run).read_text()
    assert {"tuned/tuning-history", "tuned/tuning-importances"} <= set(plots_of(html))
    assert "from tune/trials.csv" in html


def test_untuned_run_has_no_tuning_section(tmp_path):
    html = write_report(fake_run(tmp_path / "plain")).read_text()
    assert "Tuning" not in html and not any("tuning" in p for p in plots_of(html))


def test_ladder_report_has_one_small_panel_per_tuned_rung(tmp_path):
    folder = mini_ladder(tmp_path / "ladder")
    for rung in ("logreg", "mlp"):
        toy_study(folder / rung, n=4, pruned=())
    html = write_report(folder).read_text()
    assert [p for p in plots_of(html) if p.startswith("tuning/")] == ["tuning/logreg", "tuning/mlp"]
    assert image(html, "tuning/mlp").startswith(PNG)
    assert 'href="#tuning"' in html and "mlp: 4 complete, 0 pruned trials" in html
    assert "mlp/tuning-history" in plots_of(html) and "cnn/tuning-history" not in plots_of(html)


def test_kfold_rung_shows_every_folds_study_on_one_plot(tmp_path):
    folder = mini_ladder(tmp_path / "ladder", kfold=True)
    for k in range(3):
        fold = fake_run(folder / "mlp" / f"fold-0-{k}")
        toy_study(fold, n=4, pruned=())
        (fold / "tune.json").write_text(json.dumps({"metric": "accuracy", "direction": "maximize",
                                                    "best_params": {"model.hidden": [64]}}))
    html = write_report(folder).read_text()
    plots = plots_of(html)
    assert "tuning/mlp" in plots and "mlp/tuning-history" in plots and "tuning/cnn" not in plots
    assert image(html, "mlp/tuning-history").startswith(PNG)
    assert "3 folds tuned" in html and "fold-0-2: model.hidden" in html


def test_an_unreadable_study_db_is_said_not_a_crash(tmp_path):
    run = fake_run(tmp_path / "tuned")
    (run / "tune").mkdir()
    (run / "tune" / "study.db").write_bytes(b"not a database")
    html = write_report(run).read_text()
    assert "no study could be read" in html and "no trial has a validation value yet" in html
