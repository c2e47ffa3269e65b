"""The task contract: what the run layer (verbs/), the loop (train/) and the Predictor may ask of a task.

A task owns the objective of a run: its loss, how outputs become scores and predictions, its metrics.
Every registered task subclasses Task; an optional capability is a class attribute or method with a
default here, so the callers read it directly and never probe with hasattr. Which models a task trains
is declared once, by the models (models/base.py: Rung.tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn


class Task:
    target_dtype: ClassVar[torch.dtype] = torch.long  # the dtype the loop gives the labels (y)
    monitor: ClassVar[tuple[str, str]] = ("loss", "min")  # the default validation metric and its better direction
    # the labels the data layer loads for this task: None, the task's own name; a generative task reads its
    # images as a classification dataset, so that the labels ride along for its pictures
    data_task: ClassVar[str | None] = None
    predicts: ClassVar[bool] = False  # whether decode() turns scores into predictions (`ladder predict`, serve)
    # an image objective whose model's encoder a classifier reuses: `ladder pretrain` trains it, finetune.from
    # names such a run (the language-model objectives are registry.PRETRAIN_TASKS: they pretrain on corpora)
    pretrains_encoder: ClassVar[bool] = False
    # a task whose step is more than one update (a GAN's two) defines train_step(model, x, y, update) -> loss:
    # it computes each loss and hands it to update(loss, params); the loop still owns batching, logging,
    # checkpoints and resume. None: the loop's own loss -> backward -> optimizer step.
    train_step: ClassVar[Callable[..., Tensor] | None] = None

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        """What in run config `cfg` or `data` (a DataBundle) this task cannot train on, one sentence each naming the
        field; the run layer collects every component's problems into one InputError before anything is trained."""
        return []

    @classmethod
    def from_config(cls, cfg, data) -> Task:
        """The task for run config `cfg` on `data` (a DataBundle): a task with options reads them here."""
        return cls()

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Any]:
        """(the mean loss to minimise, the outputs scores() turns into per-example numbers)."""
        raise NotImplementedError

    def scores(self, outputs: Any) -> Tensor:
        """Per-example numbers (class probabilities, a prediction, a window's loss) that metrics() reads."""
        raise NotImplementedError

    def metrics(self, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        raise NotImplementedError

    def decode(self, scores: np.ndarray) -> np.ndarray:
        """Predictions from scores; only for tasks with predicts = True."""
        raise NotImplementedError(f"task {type(self).__name__} makes no predictions")

    def preprocess_fields(self) -> dict:
        """What preprocess.json keeps of the task so that the Predictor turns outputs into the same scores (a
        regression network's target scale: tasks/regression.py); {} for most tasks."""
        return {}

    def callbacks(self, model: nn.Module, run_dir: Path) -> list:
        """fit() callbacks of the task's own, such as a GAN's sample grids through training."""
        return []

    # a task that scores the model itself (generative tasks, which also draw pictures/) defines
    # evaluate_model(model, X, y, run_dir) -> (metrics, details); None: the Predictor's scores through metrics()
    evaluate_model: ClassVar[Callable[..., tuple[dict, dict]] | None] = None

    def tuned_metrics(self) -> list[str]:
        """The metrics of evaluate_model that `ladder tune` may score its trials on (on the validation split); []
        for a task whose scores are no validation metric to tune on (generated samples). A task without
        evaluate_model is tuned on what its metrics() reports instead."""
        return []
