"""train.max_seconds: the loop stops after the step in which the time passed, keeps its weights and says why."""

from __future__ import annotations

import time

from modelladder.config import EarlyStoppingConfig, OptimizerConfig, TrainConfig
from modelladder.tasks.classification import Classification
from modelladder.train.checkpoint import latest_checkpoint, load_weights
from modelladder.train.loop import fit
from tests.train.helpers import blobs, mlp


def config(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "log_every": 1, "progress": False, "threads": 1,
                          "optimizer": OptimizerConfig(name="sgd", lr=0.05), **kw})


class Slow:
    """A callback that makes every logged step take at least `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_log(self, record: dict) -> None:
        time.sleep(self.seconds)


def test_the_loop_stops_after_the_step_that_passes_max_seconds(tmp_path):
    result = fit(mlp(), Classification(3), blobs(), config(max_seconds=0.1), seed=0, run_dir=tmp_path,
                 callbacks=[Slow(0.03)])
    assert result.stopped == "time_limit"
    assert 1 <= result.steps <= 6  # about 0.1 s of (at least) 0.03 s steps, far from the 48 steps planned
    assert result.train_seconds >= 0.1
    assert result.history and result.history[-1]["step"] == result.steps  # the partial epoch is still reported
    assert latest_checkpoint(tmp_path / "checkpoints").name == f"step-{result.steps:06d}"
    assert load_weights(tmp_path / "model.safetensors", mlp(seed=1))["step"] == str(result.steps)


def test_a_run_within_max_seconds_is_not_marked(tmp_path):
    result = fit(mlp(), Classification(3), blobs(), config(epochs=1, max_seconds=600), seed=0, run_dir=tmp_path)
    assert result.stopped is None and result.steps == 16


def test_early_stopping_best_weights_are_kept_when_time_runs_out(tmp_path):
    cfg = config(max_seconds=0.25, early_stopping=EarlyStoppingConfig(metric="val_accuracy", mode="max"))
    result = fit(mlp(), Classification(3), blobs(), cfg, seed=0, run_dir=tmp_path, callbacks=[Slow(0.01)])
    assert result.stopped == "time_limit" and result.best is not None
    assert load_weights(tmp_path / "model.safetensors", mlp(seed=1))["weights"] == "best"
