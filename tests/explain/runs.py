"""Tiny trained runs for the explain tests, each on a problem whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelladder.config import validate_run
from modelladder.runs import prepare
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run

TRAIN = {"epochs": 8, "batch_size": 32, "optimizer": {"lr": 0.01}, "progress": False, "threads": 1}
FILLER = ["the", "movie", "was", "a", "plot", "and", "it", "film", "so", "with", "of", "actors"]
DECIDERS = {"neg": "awful", "pos": "great"}  # the one word that decides a text's label; neither: "meh"


def train(folder: Path, name: str, config: dict) -> Path:
    cfg = validate_run({"name": name, "seed": 0, **config})
    run_dir = prepare(folder / name)
    train_run(cfg, run_dir, data=load_run_data(cfg))
    return run_dir


def key_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Four noise columns, a noise category, and x2, which alone decides the label (x2 > 0)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
    frame["colour"] = rng.choice(["red", "green", "blue"], n)
    frame["label"] = np.where(frame["x2"] > 0, "high", "low")
    return frame


def key_rows() -> pd.DataFrame:
    """Rows to explain, each with x2 far from the boundary at 0, so the model is sure of them."""
    rows = key_table(4, seed=8).drop(columns="label")
    rows["x2"] = [1.5, -1.2, 0.9, -2.0]
    return rows


def table_run(folder: Path, model: dict, name: str) -> Path:
    path = folder / "key.csv"
    if not path.is_file():
        key_table().to_csv(path, index=False)
    return train(folder, name, {"data": {"dataset": "csv", "path": str(path), "label": "label"},
                                "model": model, "train": {**TRAIN, "epochs": 15}})


def sentiment_texts(n: int = 300, seed: int = 0) -> tuple[list[str], list[str]]:
    """Filler words, and one decider in two texts out of three: 'great' makes a text pos, 'awful' neg;
    a text without either is meh (so that both words matter to the model)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = ("neg", "pos", "meh")[i % 3]
        words = list(rng.choice(FILLER, rng.integers(4, 9)))
        if label in DECIDERS:
            words.insert(rng.integers(len(words) + 1), DECIDERS[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def text_run(folder: Path, model: dict, name: str) -> Path:
    path = folder / "sentiment.csv"
    if not path.is_file():
        texts, labels = sentiment_texts()
        pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return train(folder, name, {"data": {"dataset": "text", "path": str(path)}, "model": model, "train": TRAIN})


TINY_TRANSFORMER = {"name": "transformer", "dim": 16, "depth": 1, "heads": 2, "max_length": 16, "vocab_size": 64,
                    "tokenizer": {"kind": "word", "min_frequency": 1}}


def digits_run(folder: Path, model: dict, name: str) -> Path:
    return train(folder, name, {"data": {"dataset": "digits", "limit": 600}, "model": model,
                                "train": {**TRAIN, "epochs": 6}})
