"""Classification: cross-entropy on logits, softmax probabilities as scores, argmax as the prediction."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.evaluate.metrics import classification_metrics
from modelladder.tasks.base import Task


class Classification(Task):
    target_dtype = torch.long
    monitor = ("accuracy", "max")  # the default validation metric and its better direction
    predicts = True

    def __init__(self, n_classes: int):
        self.n_classes = n_classes

    @classmethod
    def from_config(cls, cfg, data) -> Classification:
        if not data.classes:
            raise InputError("task.name is 'classification' but the dataset has no classes")
        return cls(len(data.classes))

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        return F.cross_entropy(logits, y), logits

    def scores(self, outputs: Tensor) -> Tensor:
        return torch.softmax(outputs.float(), dim=1)

    def decode(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores).argmax(axis=1)

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        return classification_metrics(y_true, scores, self.n_classes)
