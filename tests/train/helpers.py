"""Small synthetic problems and models shared by the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.data.bundle import DataBundle

TIMING_KEYS = {"samples_per_s"}


def blobs(n: int = 500, n_features: int = 8, n_classes: int = 3, seed: int = 0, val: int = 100) -> DataBundle:
    """Gaussian blobs around well-separated centres: a linear model reaches high accuracy."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n + val)
    X = (centres[y] + rng.normal(size=(n + val, n_features))).astype(np.float32)
    return DataBundle(X[:n], y[:n], X[n:], y[n:], X[n:], y[n:], kind="tabular", input_shape=(n_features,),
                      classes=[str(c) for c in range(n_classes)])


def linear_data(n: int = 400, n_features: int = 5, seed: int = 0) -> DataBundle:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (X @ np.arange(1, n_features + 1) + 0.1 * rng.normal(size=n)).astype(np.float32)
    cut = n * 3 // 4
    return DataBundle(X[:cut], y[:cut], X[cut:], y[cut:], X[cut:], y[cut:], kind="tabular", input_shape=(n_features,))


def mlp(n_in: int = 8, n_out: int = 3, hidden: int = 32, dropout: float = 0.0, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(n_in, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, n_out))


def records(run_dir: Path) -> list[dict]:
    """metrics.jsonl without its timing fields (the only fields allowed to differ between runs)."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in lines]


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
