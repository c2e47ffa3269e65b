"""Tiny trained runs (tabular, text, image) for the serving and hardening tests, trained in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelladder.config import validate_run
from modelladder.runs import prepare
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run
from tests.e2e.test_train_predict import make_table
from tests.models.problems import text_problem

TRAIN = {"epochs": 8, "batch_size": 32, "optimizer": {"lr": 0.01}, "progress": False, "threads": 1}


def train(folder: Path, name: str, config: dict) -> Path:
    cfg = validate_run({"name": name, "seed": 0, **config})
    run_dir = prepare(folder / name)
    train_run(cfg, run_dir, data=load_run_data(cfg))
    return run_dir


def tabular_run(folder: Path) -> Path:
    make_table(400).to_csv(folder / "people.csv", index=False)
    return train(folder, "people", {"data": {"dataset": "csv", "path": str(folder / "people.csv"), "label": "label"},
                                    "model": {"name": "mlp", "hidden": [16]}, "train": TRAIN})


def text_run(folder: Path) -> Path:
    texts, y, _, _ = text_problem(n=240, seed=0)
    names = np.array(["sport", "politics", "tech"], dtype=object)
    pd.DataFrame({"text": texts, "label": names[y]}).to_csv(folder / "topics.csv", index=False)
    model = {"name": "transformer", "dim": 16, "depth": 1, "heads": 2, "max_length": 16, "vocab_size": 64,
             "tokenizer": {"kind": "word", "min_frequency": 1}}
    return train(folder, "topics", {"data": {"dataset": "text", "path": str(folder / "topics.csv")},
                                    "model": model, "train": TRAIN})


def image_run(folder: Path) -> Path:
    return train(folder, "digits", {"data": {"dataset": "digits", "limit": 400},
                                    "model": {"name": "cnn", "channels": [4], "hidden": 0},
                                    "train": {**TRAIN, "epochs": 3}})


def people_rows(n: int, seed: int = 1) -> list[dict]:
    """Rows as JSON objects (NaN, which JSON cannot carry, as null)."""
    frame = make_table(n, seed=seed).drop(columns="label")
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]
