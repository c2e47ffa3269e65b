"""Experiment tracking: a TensorBoard callback for fit(), and a finished run folder logged to MLflow.

`train.loggers: [tensorboard]` makes fit() write <run>/tensorboard/; `log_run_to_mlflow(run_dir, uri)`
copies a finished run (config, metrics by step, final evaluation, costs, model file) into any MLflow
tracking store, e.g. `sqlite:///mlflow.db` or a tracking server's http:// address.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from modelladder.config import TrainConfig, read_yaml
from modelladder.errors import InputError
from modelladder.runs import read_json
from modelladder.train.state import FitResult

MODEL_FILES = ("model.safetensors", "model.skops", "config.yaml", "preprocess.json", "tokenizer.json")
PARAMS_PER_CALL, METRICS_PER_CALL = 100, 1000  # MLflow's limits for one log_batch call


class TensorBoardLogger:
    """fit() callback: train loss, learning rate and samples/s at each log step, the epoch's train
    loss and validation metrics at each epoch's end, into an event folder TensorBoard reads.

    A resumed run hides the events written after its checkpoint (purge_step), so its curves
    match the run that was never interrupted.
    """

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self.writer = None

    def on_fit_start(self, info: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed = info["step"] > 0
        self.writer = SummaryWriter(str(self.log_dir), purge_step=info["step"] + 1 if resumed else None)

    def on_log(self, record: dict) -> None:
        for key in ("loss", "lr", "samples_per_s"):
            self.writer.add_scalar(f"train/{key}", record[key], record["step"])

    def on_epoch_end(self, record: dict) -> None:
        self.writer.add_scalar("train/epoch_loss", record["train_loss"], record["step"])
        for key, value in record.items():
            if key.startswith("val_"):
                self.writer.add_scalar(f"val/{key.removeprefix('val_')}", value, record["step"])
        self.writer.flush()

    def on_checkpoint(self, path: Path) -> None:
        self.writer.flush()  # what a resumed run keeps is on disk with its checkpoint

    def on_fit_end(self, result: FitResult) -> None:
        self.writer.close()


LOGGERS = {"tensorboard": TensorBoardLogger}


def make_loggers(cfg: TrainConfig, run_dir: str | Path) -> list:
    """The fit() callbacks that `train.loggers` names, each writing into run_dir/<its name>/."""
    return [LOGGERS[name](Path(run_dir) / name) for name in dict.fromkeys(cfg.loggers)]


# ---------------------------------------------------------------- MLflow


def log_run_to_mlflow(run_dir: str | Path, tracking_uri: str, *, experiment: str = "modelladder",
                      run_name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Log a finished run folder as one MLflow run and return its id.

    Params: config.yaml flattened to dotted keys. Metrics: metrics.jsonl by step (train_loss,
    train_lr, train_samples_per_s; val_<metric>), then at the final step the evaluation
    (<split>_<metric>, latency) and the numbers of summary.json (train_seconds, params, costs).
    Artifacts under model/: the weights and the files Predictor.load needs beside them.
    """
    from mlflow.entities import Metric, Param

    run_dir = Path(run_dir)
    params = [Param(k, v) for k, v in _flatten(read_yaml(run_dir / "config.yaml")).items()]
    summary = read_json(run_dir / "summary.json")
    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, step) for k, v, step in _history(run_dir) + _finals(run_dir, summary)]
    client = _client(tracking_uri)
    experiment_id = _experiment_id(client, experiment, tracking_uri)
    run_tags = {"modelladder.run_dir": str(run_dir.resolve()), **(tags or {})}
    run_id = client.create_run(experiment_id, run_name=run_name or run_dir.name, tags=run_tags).info.run_id
    try:
        for i in range(0, len(params), PARAMS_PER_CALL):
            client.log_batch(run_id, params=params[i : i + PARAMS_PER_CALL])
        for i in range(0, len(metrics), METRICS_PER_CALL):
            client.log_batch(run_id, metrics=metrics[i : i + METRICS_PER_CALL])
        for name in MODEL_FILES:
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name), artifact_path="model")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def _client(tracking_uri: str):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=tracking_uri)
    except MlflowException as err:
        raise InputError(f"mlflow tracking URI {tracking_uri!r} cannot be used: {err.message}") from None


def _experiment_id(client, name: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri))


def _artifact_location(tracking_uri: str) -> str | None:
    """Beside the database for sqlite:/// stores (MLflow's default is ./mlruns under the current
    folder); the server's or store's own choice otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def _flatten(obj, prefix: str = "") -> dict[str, str]:
    if not isinstance(obj, dict):
        return {prefix: obj if isinstance(obj, str) else json.dumps(obj)}
    out = {}
    for key, value in obj.items():
        out |= _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def _history(run_dir: Path) -> list[tuple[str, float, int]]:
    """(name, value, step) for every record of metrics.jsonl (scikit-learn rungs have none)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        prefix = record.pop("split", "train")
        step = record.pop("step")
        record.pop("epoch", None)
        out += [(f"{prefix}_{k}", float(v), step) for k, v in record.items() if _is_number(v)]
    return out


def _finals(run_dir: Path, summary: dict) -> list[tuple[str, float, int]]:
    step = summary.get("steps", 0)
    out = [(k, float(v), step) for k, v in summary.items() if _is_number(v)]
    for path in sorted(run_dir.glob("eval_*.json")):
        record = read_json(path)
        out += [(f"{record['split']}_{k}", float(v), step) for k, v in record["metrics"].items()]
        out += [(f"{record['split']}_{k}", float(v), step) for k, v in record.get("latency", {}).items()]
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
