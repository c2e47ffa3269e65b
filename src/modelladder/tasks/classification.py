"""Classification: cross-entropy on logits, softmax probabilities as scores, argmax as the prediction."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.evaluate.metrics import classification_metrics


class Classification:
    target_dtype = torch.long
    monitor = ("accuracy", "max")  # the default validation metric and its better direction

    def __init__(self, n_classes: int):
        self.n_classes = n_classes

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    def scores(self, outputs: Tensor) -> Tensor:
        return torch.softmax(outputs.float(), dim=1)

    def decode(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores).argmax(axis=1)

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return classification_metrics(y_true, scores, self.n_classes)
