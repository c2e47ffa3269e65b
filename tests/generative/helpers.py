"""Small generative runs on scikit-learn's 8x8 digits (no download), shared by the generative tests."""

from __future__ import annotations

from modelladder.config import validate_run
from modelladder.data.load import load_data


def run_config(model: dict, task: dict, **sections):
    """A RunConfig on digits with a short, quiet training section (sections override whole keys)."""
    raw = {"data": {"dataset": "digits"}, "model": model, "task": task,
           "train": {"epochs": 2, "batch_size": 64, "progress": False, "threads": 1, "log_every": 5}}
    return validate_run({**raw, **sections})


def digits(limit: int | None = None):
    """Digits as the generative tasks load them: pixels 0..1 standardised, class labels kept."""
    cfg = validate_run({"data": {"dataset": "digits", "limit": limit}, "model": {"name": "vae"}})
    return load_data(cfg.data, seed=0, task="classification")
