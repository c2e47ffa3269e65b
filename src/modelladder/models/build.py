"""Build any registered model from its config: a seeded nn.Module or a scikit-learn rung."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modelladder.registry import MODELS, lookup


def build_model(model_cfg: Any, input_shape: tuple[int, ...], n_outputs: int, *, seed: int,
                task: str = "classification") -> nn.Module | Any:
    """The model named by `model_cfg.name`; a network's initial weights depend only on `seed`."""
    cls = lookup(MODELS, "model.name", model_cfg.name)
    if cls.family == "classic":
        return cls(model_cfg, tuple(input_shape), n_outputs, seed=seed, task=task)
    with torch.random.fork_rng():  # seed the init without touching the caller's random state
        torch.manual_seed(seed)
        return cls(model_cfg, tuple(input_shape), n_outputs)


def is_neural(model: Any) -> bool:
    return isinstance(model, nn.Module)


def count_params(model: Any) -> int | None:
    """Trainable and frozen parameters of a network (not buffers); a classic rung's weights (None for trees)."""
    if is_neural(model):
        return sum(p.numel() for p in model.parameters())
    return model.n_params()


def count_nodes(model: Any) -> int | None:
    """A tree rung's node count; None for networks and linear models."""
    return None if is_neural(model) else model.n_nodes()
