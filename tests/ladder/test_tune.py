"""Tuning (verbs/tune.py): trials scored on validation only, a resumable study, stale trials failed, pruning, the
same budget for every rung of a ladder, and clear errors for a bad tune config. Tiny digits, 2-4 trials."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from modelladder.config import LadderConfig, validate_run
from modelladder.errors import InputError
from modelladder.report.leaderboard import leaderboard_table
from modelladder.verbs import train as train_verb
from modelladder.verbs.build import load_run_data
from modelladder.verbs.ladder import run_ladder
from modelladder.verbs.tune import check_tune, default_storage, tune_run

DATA = {"dataset": "digits", "limit": 200}
TRAIN = {"epochs": 2, "progress": False, "batch_size": 32}


def run_cfg(model: str = "logreg", **tune):
    return validate_run({"name": "t", "data": DATA, "model": {"name": model}, "train": TRAIN,
                         "tune": {"trials": 2, **tune}})


@pytest.fixture
def scored(monkeypatch):
    """Every evaluate_run call of train_run: (split scored, test rows the run's data held)."""
    calls = []
    real = train_verb.evaluate_run

    def spy(run_dir, *, split, data, predictor):
        calls.append((split, len(data.y_test)))
        return real(run_dir, split=split, data=data, predictor=predictor)

    monkeypatch.setattr(train_verb, "evaluate_run", spy)
    return calls


def test_trials_are_scored_on_validation_and_never_see_the_test_split(tmp_path, scored):
    cfg = run_cfg(trials=3)
    result = tune_run(cfg, tmp_path / "run")
    assert scored[:3] == [("val", 0)] * 3  # the trials: validation, and no test rows at all
    assert scored[3][0] == "test" and scored[3][1] > 0  # the single retrain, scored like train_run
    assert len(scored) == 4
    tuning = result["tuning"]
    assert tuning["trials"] == 3 and tuning["metric"] == "accuracy" and tuning["budget"] == "3 trials"
    assert set(tuning["best_params"]) == {"model.C"}
    assert result["split"] == "test"
    trials = pd.read_csv(tmp_path / "run" / "tune" / "trials.csv")
    assert list(trials["state"]) == ["COMPLETE"] * 3 and "param_model.C" in trials
    assert json.loads((tmp_path / "run" / "tune.json").read_text())["trials"] == 3
    assert not (tmp_path / "run" / "tune" / "trial-0" / "model.skops").exists()  # a trial's model is deleted


def test_a_resumed_study_does_not_redo_finished_trials(tmp_path, scored):
    run_dir = tmp_path / "run"
    tune_run(run_cfg(trials=2), run_dir)
    scored.clear()
    result = tune_run(run_cfg(trials=4), run_dir)
    assert [split for split, _ in scored] == ["val", "val", "test"]  # 2 new trials, then the retrain
    assert result["tuning"]["trials"] == 4
    study = optuna.load_study(study_name="t", storage=default_storage(run_dir))
    assert [t.number for t in study.trials] == [0, 1, 2, 3]


def test_a_trial_left_running_by_a_dead_process_is_failed_and_not_counted(tmp_path, scored):
    run_dir = tmp_path / "run"
    tune_run(run_cfg(trials=2), run_dir)
    optuna.load_study(study_name="t", storage=default_storage(run_dir)).ask()  # trial 2: RUNNING, never told
    scored.clear()
    result = tune_run(run_cfg(trials=3), run_dir)
    states = [t.state.name for t in optuna.load_study(study_name="t", storage=default_storage(run_dir)).trials]
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert [split for split, _ in scored] == ["val", "test"]  # one new trial: the failed one did not count
    assert result["tuning"]["trials"] == 3


class PruneAfterFirstEpoch(optuna.pruners.BasePruner):
    """Trial 0 runs to the end; every later trial is pruned once it reported epoch 1."""

    def prune(self, study, trial) -> bool:
        return trial.number > 0 and trial.last_step is not None and trial.last_step >= 1


def test_the_pruner_stops_trials_from_their_epoch_validation_metric(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.pruners, "MedianPruner", PruneAfterFirstEpoch)
    cfg = validate_run({"name": "t", "data": DATA, "model": {"name": "mlp"}, "train": {**TRAIN, "epochs": 3},
                        "tune": {"trials": 3}})
    result = tune_run(cfg, tmp_path / "run")
    assert result["tuning"]["trials"] == 1 and result["tuning"]["pruned"] == 2
    trial = tmp_path / "run" / "tune" / "trial-1"
    epochs = [json.loads(line)["epoch"] for line in (trial / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("split") == "val"]
    assert epochs == [1]  # stopped after its first epoch
    assert not (trial / "checkpoints").exists() and not (trial / "model.safetensors").exists()
    assert result["epochs"] == 3  # the retrain of the best (unpruned) trial ran every epoch


@pytest.mark.slow  # two rungs x (2 trials + a retrain): about 6 s
def test_a_ladder_gives_every_rung_the_same_budget_and_says_so(tmp_path):
    ladder = LadderConfig.model_validate({"name": "tuned", "data": DATA, "train": TRAIN, "rungs": ["logreg", "mlp"],
                                          "tune": {"trials": 2}})
    rows = run_ladder(ladder, tmp_path)
    assert [(r["rung"], r["tune_trials"], r["tune_budget"]) for r in rows] == [("logreg", 2, "2 trials"),
                                                                             ("mlp", 2, "2 trials")]
    for rung in ("logreg", "mlp"):
        assert json.loads((tmp_path / "tuned" / rung / "tune.json").read_text())["trials"] == 2
    caption = leaderboard_table(rows, "tuned").caption
    assert "Every rung tuned with the same budget: 2 trials on validation." in caption


def test_a_resumed_kfold_ladder_continues_an_unfinished_folds_study(tmp_path, scored):
    ladder = LadderConfig.model_validate({"name": "kf", "data": DATA, "train": TRAIN, "rungs": ["logreg"],
                                          "tune": {"trials": 2}, "protocol": {"kind": "kfold", "folds": 2}})
    run_ladder(ladder, tmp_path)
    fold = next((tmp_path / "kf" / "logreg").glob("fold-*"))
    (fold / "eval_test.json").unlink()  # killed after its trials, before its retrain was scored
    scored.clear()
    rows = run_ladder(ladder, tmp_path, resume=True)
    assert [split for split, _ in scored] == ["test"]  # its 2 trials kept: the retrain only
    assert rows[0]["status"] == "ok" and rows[0]["folds"] == 2
    assert len(pd.read_csv(fold / "tune" / "trials.csv")) == 2


def test_a_time_limit_caps_a_tuned_rungs_trials_and_retrain_together(tmp_path):
    from modelladder.verbs.resilience import limited

    capped = limited(run_cfg(trials=3), 100.0)  # 3 trials and the retrain share the rung's 100 s
    assert capped.tune.timeout_s == 75.0 and capped.train.max_seconds == 25.0 and capped.tune.trials == 3
    assert limited(run_cfg(trials=3, timeout_s=10), 100.0).tune.timeout_s == 10.0  # the user's own is smaller
    rows = run_ladder(LadderConfig.model_validate({"name": "tl", "data": DATA, "train": TRAIN, "rungs": ["logreg"],
                                                   "tune": {"trials": 2}, "time_limit_s": 600}), tmp_path)
    assert rows[0]["status"] == "ok" and rows[0]["tune_budget"].startswith("2 trials or ")
    assert "the ladder's time limit" not in leaderboard_table(rows, "tl").caption  # one rung: one budget


def test_bad_tune_configs_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="tune needs a budget: tune.trials"):
        validate_run({"model": {"name": "logreg"}, "tune": {"metric": "accuracy"}})
    with pytest.raises(InputError, match="tune.timeout_s: must be a duration"):
        validate_run({"model": {"name": "logreg"}, "tune": {"timeout_s": "soon"}})
    assert validate_run({"model": {"name": "logreg"}, "tune": {"timeout_s": "2m"}}).tune.budget == "120 s"
    cfg = run_cfg(metric="acuracy")
    data = load_run_data(cfg)
    with pytest.raises(InputError, match="tune.metric must be a validation metric .*got 'acuracy'.*accuracy"):
        check_tune(cfg, data)
    with pytest.raises(InputError, match="tune.storage 'nosuchdb://x': optuna cannot open it"):
        check_tune(run_cfg(storage="nosuchdb://x"), data)


def test_ladder_tune_cli_needs_a_budget_and_leaves_nothing(tmp_path, capsys):
    from modelladder.cli import main

    config = tmp_path / "logreg.yaml"
    config.write_text("data: {dataset: digits, limit: 200}\nmodel: {name: logreg}\n")
    assert main(["tune", str(config), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "needs a budget: tune.trials or tune.timeout_s" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_time_budget_counts_the_finished_trials_of_a_resumed_study(tmp_path, scored):
    run_dir = tmp_path / "run"
    cfg = validate_run({"name": "t", "data": DATA, "model": {"name": "logreg"}, "tune": {"timeout_s": 0.001}})
    assert tune_run(cfg, run_dir)["tuning"]["budget"] == "0.001 s"  # optuna ends after the trial that passes it
    scored.clear()
    assert tune_run(cfg, run_dir)["tuning"]["trials"] >= 1
    assert [split for split, _ in scored] == ["test"]  # the budget was spent: the retrain only


def test_ladder_tune_again_resumes_the_study(tmp_path):
    from modelladder.cli import main

    config = tmp_path / "logreg.yaml"
    config.write_text("data: {dataset: digits, limit: 200}\nmodel: {name: logreg}\n")
    args = ["tune", str(config), "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--trials", "1"]) == 0
    assert main([*args, "--trials", "2"]) == 0  # the same run folder, no --overwrite: one more trial
    assert list(pd.read_csv(tmp_path / "runs" / "logreg" / "tune" / "trials.csv")["number"]) == [0, 1]
    (tmp_path / "runs" / "other").mkdir()
    assert main([*args, "--trials", "1", "--name", "other"]) == 2  # not a tuning run: refused
