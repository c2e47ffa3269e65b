"""A loss that turns NaN or infinite stops `ladder train` with exit status 2 and a message saying
where, the last good checkpoint kept and loadable, and no model.safetensors written from bad weights."""

from __future__ import annotations

import re
from pathlib import Path

import torch
import yaml

from modelladder.cli import main
from modelladder.config import validate_run
from modelladder.models.build import build_model
from modelladder.tasks.classification import Classification
from modelladder.train.checkpoint import latest_checkpoint, load_checkpoint

CONFIG = {"name": "digits", "seed": 0, "data": {"dataset": "digits", "limit": 400},
          "model": {"name": "mlp", "hidden": [16]},
          "train": {"epochs": 3, "batch_size": 32, "checkpoint_every": 3, "log_every": 1, "progress": False}}


def train(tmp_path: Path, capsys, overrides: list[str]) -> tuple[int, str, Path]:
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    sets = [a for o in overrides for a in ("--set", o)]
    status = main(["train", str(tmp_path / "run.yaml"), "--runs-dir", str(tmp_path / "runs"), *sets])
    return status, capsys.readouterr().err, tmp_path / "runs" / "digits"


def assert_last_good_checkpoint_kept(run: Path, step: int) -> None:
    last = latest_checkpoint(run / "checkpoints")
    assert last.name == f"step-{step:06d}"
    cfg = validate_run(CONFIG)
    model = build_model(cfg.model, (1, 8, 8), 10, seed=1)
    state = load_checkpoint(last, model, None)
    assert state["step"] == step and all(torch.isfinite(p).all() for p in model.parameters())
    assert not (run / "model.safetensors").exists()


def test_a_loss_that_turns_nan_stops_the_run_with_status_2(tmp_path, capsys, monkeypatch):
    real_loss, calls = Classification.loss, []

    def nan_from_step_8(self, model, x, y):
        loss, logits = real_loss(self, model, x, y)
        calls.append(model.training)
        return (loss * float("nan") if model.training and sum(calls) >= 8 else loss), logits

    monkeypatch.setattr(Classification, "loss", nan_from_step_8)
    status, err, run = train(tmp_path, capsys, [])
    assert status == 2
    assert err == (f"error: training diverged: the loss is nan at step 8 (epoch 1); the last good checkpoint is "
                   f"{run / 'checkpoints' / 'step-000006'}. Lower train.optimizer.lr or set train.grad_clip.\n")
    assert_last_good_checkpoint_kept(run, 6)


def test_a_learning_rate_that_blows_up_stops_the_run_with_status_2(tmp_path, capsys):
    status, err, run = train(tmp_path, capsys, ["train.optimizer.name=sgd", "train.optimizer.lr=1e8"])
    assert status == 2
    found = re.fullmatch(r"error: training diverged: the (loss is (nan|inf|-inf) at step (\d+)|weights hold NaN or "
                         r"infinite values after step (\d+)) \(epoch 1\); (the last good checkpoint is .*step-(?P<kept>\d+)|"
                         r"no checkpoint was written before it)\. Lower train.optimizer.lr or set train.grad_clip\.\n",
                         err)
    assert found and found.group("kept"), err  # this seed and lr: NaN at step 4, after the step-3 checkpoint
    assert_last_good_checkpoint_kept(run, int(found.group("kept")))
