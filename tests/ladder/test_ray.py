"""`--executor ray`: the rungs (holdout) and (rung, fold) runs (k-fold) as Ray tasks on one local Ray shared by the
tests of this module give the serial leaderboard (but for measured costs); a worker killed mid-ladder is retried and
the ladder finishes with every row; a bad --executor / --address is an InputError (exit 2)."""

from __future__ import annotations

import io
import os

import pytest
import ray  # a dependency (pyproject.toml): missing, the module fails, never skips
from rich.console import Console

from modelladder.cli import main as cli_main
from modelladder.config import validate_ladder, validate_run
from modelladder.errors import InputError
from modelladder.evaluate.cost import COST_COLUMNS
from modelladder.verbs.cv import cross_validate
from modelladder.verbs.executor import KILL_ONCE, Executor, task_seconds
from modelladder.verbs.jobs import holdout_task
from modelladder.verbs.ladder import run_ladder

DATA = {"dataset": "digits", "limit": 200}
TRAIN = {"epochs": 1, "batch_size": 32, "progress": False, "threads": 1}
RUNGS = ["logreg", {"name": "mlp", "model": {"name": "mlp", "hidden": [16]}}]
MEASURED = set(COST_COLUMNS)  # time, memory, energy: measured, so never the same twice


def quiet() -> dict:
    return {"console": Console(file=io.StringIO(), width=200)}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray with 2 CPUs for the module (starting Ray costs seconds); the executors below find it running
    and leave it up. Its workers see KILL_ONCE: a task that finds that file removes it and kills its own worker."""
    marker = tmp_path_factory.mktemp("ray") / "kill-once"
    os.environ[KILL_ONCE] = str(marker)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield marker
    ray.shutdown()
    os.environ.pop(KILL_ONCE, None)


def same_board(serial: list[dict], parallel: list[dict]) -> None:
    """Every column but the measured costs equal: metrics, intervals, p-values, status."""
    assert [r["rung"] for r in serial] == [r["rung"] for r in parallel]
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        assert {k: v for k, v in a.items() if k not in MEASURED} == {k: v for k, v in b.items() if k not in MEASURED}


@pytest.mark.slow
def test_holdout_ladder_on_ray_gives_the_serial_leaderboard(local_ray, tmp_path):
    lad = validate_ladder({"name": "lad", "data": DATA, "train": TRAIN, "rungs": RUNGS})
    serial = run_ladder(lad, tmp_path / "serial", **quiet())
    parallel = run_ladder(lad, tmp_path / "ray", executor=Executor("ray"), **quiet())
    same_board(serial, parallel)
    assert "p_value" in parallel[1] and all(r["status"] == "ok" for r in parallel)
    assert ray.is_initialized()  # a Ray this command did not start is left running
    for rung in ("logreg", "mlp"):
        assert (tmp_path / "ray" / "lad" / rung / "eval_test.json").is_file()
    # --resume: the finished rung is kept (not submitted), the unfinished one trained again by a task
    kept = (tmp_path / "ray" / "lad" / "logreg" / "summary.json").stat().st_mtime_ns
    (tmp_path / "ray" / "lad" / "mlp" / "eval_test.json").unlink()
    resumed = run_ladder(lad, tmp_path / "ray", resume=True, executor=Executor("ray"), **quiet())
    same_board(serial, resumed)
    assert (tmp_path / "ray" / "lad" / "logreg" / "summary.json").stat().st_mtime_ns == kept
    assert (tmp_path / "ray" / "lad" / "mlp" / "eval_test.json").is_file()


@pytest.mark.slow
def test_a_tuned_ladder_on_ray_tunes_every_rung_as_the_serial_one_does(local_ray, tmp_path):
    lad = validate_ladder({"name": "lad", "data": DATA, "train": TRAIN, "rungs": RUNGS, "tune": {"trials": 2}})
    serial = run_ladder(lad, tmp_path / "serial", **quiet())
    parallel = run_ladder(lad, tmp_path / "ray", executor=Executor("ray"), **quiet())
    assert all(r["tune_trials"] == 2 for r in parallel)
    same_board(serial, parallel)
    assert (tmp_path / "ray" / "lad" / "mlp" / "tune" / "study.db").is_file()


@pytest.mark.slow
def test_kfold_ladder_survives_a_killed_worker_with_the_serial_leaderboard(local_ray, tmp_path):
    lad = validate_ladder({"name": "lad", "data": DATA, "train": TRAIN, "rungs": RUNGS,
                           "protocol": {"kind": "kfold", "folds": 3}})
    serial = run_ladder(lad, tmp_path / "serial", **quiet())
    local_ray.touch()  # the first task to start kills its worker; Ray runs it again
    parallel = run_ladder(lad, tmp_path / "ray", executor=Executor("ray"), **quiet())
    assert not local_ray.exists()  # a worker did die
    same_board(serial, parallel)
    assert all(r["status"] == "ok" and r["folds"] == 3 for r in parallel)
    assert "cv_accuracy_low" in parallel[0] and "p_value" in parallel[1]
    folds = sorted(p.parent.name for p in (tmp_path / "ray" / "lad").glob("*/fold-*/eval_test.json"))
    assert len(folds) == 6


@pytest.mark.slow
def test_a_time_limit_under_ray_is_each_tasks_share_fixed_up_front(local_ray, tmp_path):
    import yaml

    lad = validate_ladder({"name": "lad", "data": DATA, "train": TRAIN, "rungs": RUNGS, "time_limit_s": 600})
    rows = run_ladder(lad, tmp_path, executor=Executor("ray"), **quiet())
    assert [r["status"] for r in rows] == ["ok", "ok"]
    limits = [yaml.safe_load((tmp_path / "lad" / r / "config.yaml").read_text())["train"]["max_seconds"]
              for r in ("logreg", "mlp")]
    assert limits[0] == limits[1] and 500 < limits[0] <= 600  # 2 runs, 2 at a time: each the time left


@pytest.mark.slow
def test_cv_folds_on_ray_give_the_serial_summary(local_ray, tmp_path):
    cfg = validate_run({"name": "cvrun", "data": DATA, "train": TRAIN, "model": {"name": "logreg"}})
    serial = cross_validate(cfg, 3, 1, tmp_path / "serial", **quiet())
    parallel = cross_validate(cfg, 3, 1, tmp_path / "ray", executor=Executor("ray"), **quiet())
    same_board([serial], [parallel])


@pytest.mark.slow
def test_the_cli_passes_the_executor_on(local_ray, tmp_path, monkeypatch, capsys):
    """`ladder cv ... --executor ray` (on the module's Ray, which this process is connected to)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("name: one\ndata: {dataset: digits, limit: 200}\nmodel: {name: logreg}\n")
    assert cli_main(["cv", "run.yaml", "--folds", "2", "--runs-dir", "out", "--executor", "ray"]) == 0
    assert "2 runs as Ray tasks, 2 at a time" in capsys.readouterr().err
    assert (tmp_path / "out" / "one" / "cv.json").is_file()


@pytest.mark.slow
def test_ladder_tune_trials_as_ray_tasks_match_the_serial_study_and_survive_a_killed_worker(local_ray, tmp_path,
                                                                                          monkeypatch):
    """`ladder tune --executor ray`: 4 trials, 2 at a time, one of whose workers is killed (Ray runs it again);
    every trial has the serial study's parameters and validation value, and the retrained best is the serial one.
    The driver beats for the trials in flight (a shared storage would fail them otherwise)."""
    import optuna
    import pandas as pd

    from modelladder.verbs import tune
    from modelladder.verbs.tune import tune_run

    monkeypatch.setattr(tune, "HEARTBEAT_S", 0.05)
    beats, record = [], optuna.storages.RDBStorage.record_heartbeat
    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat",
                        lambda self, trial_id: beats.append(trial_id) or record(self, trial_id))

    cfg = validate_run({"name": "t", "data": DATA, "train": TRAIN, "model": {"name": "logreg"},
                        "tune": {"trials": 4}})
    serial = tune_run(cfg, tmp_path / "serial", **quiet())
    local_ray.touch()
    parallel = tune_run(cfg, tmp_path / "ray", executor=Executor("ray"), **quiet())
    assert not local_ray.exists()  # a worker did die
    trials = [pd.read_csv(tmp_path / d / "tune" / "trials.csv").drop(columns="duration_s") for d in ("serial", "ray")]
    pd.testing.assert_frame_equal(*trials)
    assert list(trials[1]["state"]) == ["COMPLETE"] * 4
    assert parallel["tuning"] == serial["tuning"] and parallel["metrics"] == serial["metrics"]
    assert beats  # the driver beat for the trials in flight


def test_a_training_error_is_the_tasks_failed_outcome_not_a_retry(tmp_path):
    """The task catches what training raises (Ray would not retry it anyway: retry_exceptions=False): its one-line
    error, the traceback in the run folder's error.txt."""
    cfg = validate_run({"name": "bad", "data": {"dataset": "csv", "path": str(tmp_path / "none.csv"), "label": "y"},
                        "model": {"name": "logreg"}})
    out = holdout_task(cfg, tmp_path / "bad", None, False, None)
    assert out.result is None and "none.csv" in out.error
    assert (tmp_path / "bad" / "error.txt").is_file()


@pytest.mark.parametrize("argv, says", [
    (["--executor", "dask"], "--executor must be one of serial, ray, got 'dask'"),
    (["--address", "auto"], "--address needs --executor ray"),
    (["--executor", "ray", "--workers", "0"], "--workers must be an int >= 1"),
    (["--executor", "ray", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster reachable there"),
])
@pytest.mark.parametrize("verb", ["run", "cv", "tune"])
def test_bad_executor_arguments_exit_2_with_nothing_written(tmp_path, capsys, monkeypatch, argv, says, verb):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.yaml").write_text("name: one\ndata: {dataset: digits, limit: 200}\nmodel: {name: logreg}\n")
    config = {"run": [], "cv": ["run.yaml", "--folds", "2"], "tune": ["run.yaml", "--trials", "1"]}[verb]
    code = cli_main([verb, *config, "--runs-dir", "out", *argv])
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_time_limit_is_shared_up_front_by_the_runs_that_train_at_once():
    assert task_seconds(None, 4, 2) is None
    assert task_seconds(100.0, 4, 2) == 50.0  # 4 runs, 2 at a time: two rounds of 50 s
    assert task_seconds(100.0, 1, 8) == 100.0


def test_executor_checks_its_arguments_when_made():
    with pytest.raises(InputError, match="--workers sets a local Ray's CPUs"):
        Executor("ray", address="auto", workers=2)
    assert not Executor().parallel and Executor().slots(validate_run({"model": {"name": "logreg"}})) == 1
