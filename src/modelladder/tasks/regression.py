"""Regression: mean squared error on a single output; the prediction is the output itself.

A network trains on a standardised target: (y - mean) / std, with the mean and standard deviation of the
training split's targets only. A target in the hundreds (sklearn's diabetes) would otherwise meet a freshly
initialised output near 0 and take most of the run to be reached. scores() maps the outputs back, so
validation metrics, eval_<split>.json and predictions are in the target's own units; the two numbers are saved in
preprocess.json under "target" (preprocess_fields) for the Predictor to do the same. scikit-learn rungs fit the
raw target (their estimators need no scaling): their task keeps mean 0, std 1 and saves nothing.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.evaluate.metrics import regression_metrics
from modelladder.registry import MODELS, lookup
from modelladder.tasks.base import Task


class Regression(Task):
    target_dtype = torch.float32
    # the default validation metric and its better direction: RMSE, in the target's units (mse is also reported)
    monitor = ("rmse", "min")
    predicts = True

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        self.mean, self.std = float(mean), float(std)

    @classmethod
    def from_config(cls, cfg, data) -> Regression:
        """A network's task standardises the target with the training split's mean and std; others keep it."""
        if lookup(MODELS, "model.name", cfg.model.name).family != "neural":
            return cls()
        return cls(*target_scale(data.y_train))

    @property
    def scaled(self) -> bool:
        return (self.mean, self.std) != (0.0, 1.0)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """MSE on the standardised target (the "loss" of metrics.jsonl is on that scale)."""
        outputs = model(x)
        return F.mse_loss(outputs.squeeze(-1).float(), (y - self.mean) / self.std), outputs

    def scores(self, outputs: Tensor) -> Tensor:
        """Predictions in the target's own units."""
        return outputs.float().squeeze(-1) * self.std + self.mean

    def decode(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores)

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return regression_metrics(y_true, scores)

    def preprocess_fields(self) -> dict:
        return {"target": {"mean": self.mean, "std": self.std}} if self.scaled else {}


def target_scale(y: np.ndarray) -> tuple[float, float]:
    """(mean, std) of the training targets; std 1 for a constant (or empty) target, which has nothing to scale."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if y.size == 0:
        return 0.0, 1.0
    mean, std = float(y.mean()), float(y.std())
    return mean, std if math.isfinite(std) and std > 1e-12 * max(1.0, abs(mean)) else 1.0

