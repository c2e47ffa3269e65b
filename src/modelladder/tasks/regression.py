"""Regression: mean squared error on a single output; the prediction is the output itself."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.evaluate.metrics import regression_metrics
from modelladder.tasks.base import Task


class Regression(Task):
    target_dtype = torch.float32
    monitor = ("mse", "min")  # the default validation metric and its better direction
    predicts = True

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        outputs = model(x)
        return F.mse_loss(outputs.squeeze(-1).float(), y), outputs

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float().squeeze(-1)

    def decode(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores)

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return regression_metrics(y_true, scores)
