"""Experiment tracking: TensorBoard scalars written by fit() and read back, also across a resume; a
finished run folder logged to MLflow and read back through its client."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from modelladder.config import OptimizerConfig, TrainConfig, validate_ladder, validate_run
from modelladder.errors import InputError
from modelladder.tasks.classification import Classification
from modelladder.train.loggers import TensorBoardLogger, log_run_to_mlflow, make_loggers
from modelladder.train.loop import fit
from modelladder.verbs.ladder import run_ladder
from modelladder.verbs.train import train_run
from tests.train.helpers import blobs, mlp
from tests.train.test_resume import Interrupt, StopAt

CFG = TrainConfig(epochs=3, batch_size=32, log_every=3, checkpoint_every=4, progress=False, threads=1,
                  optimizer=OptimizerConfig(name="adamw", lr=0.01), loggers=["tensorboard"])


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def jsonl(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_make_loggers_builds_what_train_loggers_names(tmp_path):
    assert make_loggers(TrainConfig(), tmp_path) == []
    [logger] = make_loggers(TrainConfig(loggers=["tensorboard", "tensorboard"]), tmp_path)
    assert isinstance(logger, TensorBoardLogger) and logger.log_dir == tmp_path / "tensorboard"


def test_tensorboard_holds_what_metrics_jsonl_holds(tmp_path):
    fit(mlp(), Classification(3), blobs(n=300), CFG, seed=0, run_dir=tmp_path, callbacks=make_loggers(CFG, tmp_path))
    got = scalars(tmp_path / "tensorboard")
    records = jsonl(tmp_path)
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert [s for s, _ in got["train/loss"]] == [r["step"] for r in train] == list(range(3, 31, 3))
    for key in ("loss", "lr", "samples_per_s"):
        assert [v for _, v in got[f"train/{key}"]] == pytest.approx([r[key] for r in train], rel=1e-6)
    assert [s for s, _ in got["val/accuracy"]] == [r["step"] for r in val] == [10, 20, 30]
    assert [v for _, v in got["val/log_loss"]] == pytest.approx([r["log_loss"] for r in val], rel=1e-6)
    assert [s for s, _ in got["val/loss"]] == [s for s, _ in got["train/epoch_loss"]] == [10, 20, 30]
    assert {"val/f1_macro", "val/roc_auc", "val/log_loss"} <= set(got)


def test_tensorboard_after_a_resume_matches_the_uninterrupted_run(tmp_path):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    fit(mlp(), Classification(3), blobs(n=300), CFG, seed=0, run_dir=whole, callbacks=make_loggers(CFG, whole))
    with pytest.raises(Interrupt):  # after the step-21 log line, before step 24's checkpoint
        fit(mlp(), Classification(3), blobs(n=300), CFG, seed=0, run_dir=crashed,
            callbacks=[*make_loggers(CFG, crashed), StopAt("on_log", 24)])
    fit(mlp(), Classification(3), blobs(n=300), CFG, seed=0, run_dir=crashed, resume=True,
        callbacks=make_loggers(CFG, crashed))
    assert len(list((crashed / "tensorboard").iterdir())) == 2  # one event file per process run
    want, got = scalars(whole / "tensorboard"), scalars(crashed / "tensorboard")
    for tag in ("train/loss", "val/accuracy", "train/epoch_loss"):
        assert got[tag] == want[tag]  # every step once, with the same values


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(tmp_path_factory.mktemp("cache")))
        cfg = validate_run({"name": "tiny", "model": {"name": "mlp", "hidden": [16]},
                            "data": {"dataset": "digits", "limit": 200},
                            "train": {"epochs": 2, "batch_size": 32, "log_every": 2, "progress": False,
                                      "threads": 1}})
        run_dir = tmp_path_factory.mktemp("runs") / "tiny"
        run_dir.mkdir()
        train_run(cfg, run_dir)
        return run_dir


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> tuple[str, Path]:
    """One sqlite store for the module: creating its tables takes seconds."""
    folder = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{folder / 'mlflow.db'}", folder


def test_log_run_to_mlflow_reads_back(trained_run, tracking):
    from mlflow import MlflowClient

    uri, folder = tracking
    run_id = log_run_to_mlflow(trained_run, uri, experiment="tests", tags={"team": "ladder"})
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED" and run.info.run_name == "tiny"
    params, tags, metrics = run.data.params, run.data.tags, run.data.metrics
    assert (params["model.name"], params["model.hidden"], params["train.epochs"]) == ("mlp", "[16]", "2")
    assert params["data.dataset"] == "digits" and params["train.optimizer.name"] == "adamw"
    assert tags["team"] == "ladder" and tags["modelladder.run_dir"] == str(trained_run.resolve())

    records = jsonl(trained_run)
    train = [r for r in records if r["split"] == "train"]
    history = client.get_metric_history(run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["loss"])) for r in train]
    val = [(m.step, m.value) for m in client.get_metric_history(run_id, "val_accuracy")]
    assert val == [(r["step"], pytest.approx(r["accuracy"])) for r in records if r["split"] == "val"]
    evaluation = json.loads((trained_run / "eval_test.json").read_text())
    summary = json.loads((trained_run / "summary.json").read_text())
    assert metrics["test_accuracy"] == pytest.approx(evaluation["metrics"]["accuracy"])
    assert metrics["test_latency_ms_p50"] == pytest.approx(evaluation["latency"]["latency_ms_p50"])
    assert metrics["params"] == summary["params"] and metrics["steps"] == summary["steps"]

    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert artifacts == {"model/model.safetensors", "model/config.yaml", "model/preprocess.json"}
    saved = folder / "mlartifacts"  # beside the database, not in the current folder
    assert [p.read_bytes() for p in saved.rglob("model.safetensors")] == [(trained_run / "model.safetensors").read_bytes()]


def test_a_ladder_logs_every_rung_to_mlflow(tracking, tmp_path):
    from mlflow import MlflowClient

    uri, _ = tracking
    ladder = validate_ladder({"name": "tracked", "data": {"dataset": "digits", "limit": 200},
                              "rungs": [{"name": "logreg", "model": {"name": "logreg"}}]})
    run_ladder(ladder, tmp_path / "runs", console=Console(file=io.StringIO()), mlflow=uri)
    client = MlflowClient(tracking_uri=uri)
    [run] = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    assert run.info.run_name == "logreg" and run.data.tags["modelladder.rung"] == "logreg"
    assert run.data.params["model.name"] == "logreg" and run.data.metrics["test_accuracy"] > 0.8
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/model.skops"}


def test_an_unusable_tracking_uri_is_an_input_error(trained_run):
    with pytest.raises(InputError, match=r"^mlflow tracking URI 'nosuch://host' cannot be used: "):
        log_run_to_mlflow(trained_run, "nosuch://host")
