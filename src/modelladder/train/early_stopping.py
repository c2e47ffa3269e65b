"""train.early_stopping: the best epoch's weights kept in checkpoints/best/, training stopped after `patience`
epochs without improvement, and the best weights restored at the end. Without the setting it does nothing, so
the loop never asks whether it is on."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from modelladder.config import EarlyStoppingConfig
from modelladder.errors import InputError, did_you_mean
from modelladder.train.checkpoint import load_checkpoint, save_best


class EarlyStopping:
    def __init__(self, cfg: EarlyStoppingConfig | None, ckpt_dir: Path, *, main: bool = True):
        self.cfg, self.ckpt_dir, self.main = cfg, ckpt_dir, main  # main: this process writes files
        self.best: dict | None = None  # metric, value, epoch, step of the best epoch so far
        self.bad_epochs = 0
        self.stopped = False

    def on_epoch_end(self, record: dict, model: nn.Module) -> None:
        """Compare the epoch's record with the best so far; save the model when it is the new best."""
        if self.cfg is None:
            return
        es = self.cfg
        available = [k for k in record if k not in ("epoch", "step", "lr")]
        if es.metric not in available:
            raise InputError(f"train.early_stopping.metric must be one of {available}, got '{es.metric}'"
                             + did_you_mean(es.metric, available))
        value = record[es.metric]
        best = None if self.best is None else self.best["value"]
        if best is None or (value < best - es.min_delta if es.mode == "min" else value > best + es.min_delta):
            self.best = {"metric": es.metric, "value": value, "epoch": record["epoch"], "step": record["step"]}
            self.bad_epochs = 0
            if self.main:
                save_best(self.ckpt_dir, model, self.best)
        else:
            self.bad_epochs += 1
            self.stopped = self.bad_epochs >= es.patience

    def restore_best(self, model: nn.Module) -> None:
        """The best epoch's weights back into `model` (when there was a best)."""
        if self.best is None:
            return
        state = load_checkpoint(self.ckpt_dir / "best", model, None)
        if state["step"] != self.best["step"]:
            raise InputError(f"{self.ckpt_dir / 'best'} holds step {state['step']}, "
                             f"but this run's best is step {self.best['step']}")

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "stopped_early": self.stopped}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs, self.stopped = state["best"], state["bad_epochs"], state["stopped_early"]
