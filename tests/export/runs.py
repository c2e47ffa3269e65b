"""Tiny trained runs for the export tests, one per exportable rung, trained in-process in a second or two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelladder.config import validate_run
from modelladder.runs import prepare
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run
from tests.models.problems import text_problem

TRAIN = {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.01}, "progress": False, "threads": 1}
DIGITS = {"dataset": "digits", "limit": 300}
TEXT_MODELS = {
    "rnn": {"name": "rnn", "embed_dim": 8, "hidden": 8, "vocab_size": 64, "max_length": 16,
            "tokenizer": {"kind": "word", "min_frequency": 1}},
    "transformer": {"name": "transformer", "dim": 16, "depth": 1, "heads": 2, "max_length": 16, "vocab_size": 64,
                    "tokenizer": {"kind": "word", "min_frequency": 1}},
    "tfidf_logreg": {"name": "tfidf_logreg"},
    "tfidf_svm": {"name": "tfidf_svm"},
}
IMAGE_MODELS = {
    "mlp": {"name": "mlp", "hidden": [16]},
    "cnn": {"name": "cnn", "channels": [4], "hidden": 0},
    "linear": {"name": "linear", "max_iter": 200},
    "random_forest": {"name": "random_forest", "n_estimators": 5, "max_depth": 4, "n_jobs": 1},
    "hist_gb": {"name": "hist_gb", "max_iter": 5},
}


def train(folder: Path, name: str, config: dict) -> Path:
    cfg = validate_run({"name": name, "seed": 0, **config})
    run_dir = prepare(folder / name)
    train_run(cfg, run_dir, data=load_run_data(cfg))
    return run_dir


def topics_csv(folder: Path) -> Path:
    """240 short texts of three topics (tests/models/problems.py) as a CSV with columns text and label."""
    path = folder / "topics.csv"
    if not path.exists():
        texts, y, _, _ = text_problem(n=240, seed=0)
        names = np.array(["sport", "politics", "tech"], dtype=object)
        pd.DataFrame({"text": texts, "label": names[y]}).to_csv(path, index=False)
    return path


def image_run(folder: Path, rung: str, name: str | None = None) -> Path:
    """`rung` on 300 digits; `name` another registered name for the same rung (logreg for linear)."""
    model = {**IMAGE_MODELS[rung], **({"name": name} if name else {})}
    return train(folder, name or rung, {"data": DIGITS, "model": model, "train": TRAIN})


def text_run(folder: Path, rung: str, model: dict | None = None) -> Path:
    data = {"dataset": "text", "path": str(topics_csv(folder))}
    return train(folder, rung, {"data": data, "model": model or TEXT_MODELS[rung], "train": TRAIN})


def encoder_run(folder: Path, rung: str) -> Path:
    """An autoencoder (task reconstruction) or a VAE (task vae) on digits: what --format onnx exports is its encoder."""
    model = {"autoencoder": {"name": "autoencoder", "hidden": [16]}, "vae": {"name": "vae", "hidden": [16], "latent": 4}}
    task = {"autoencoder": "reconstruction", "vae": "vae"}[rung]
    return train(folder, rung, {"data": DIGITS, "task": {"name": task}, "model": model[rung], "train": TRAIN})


def regression_run(folder: Path, rung: str = "mlp") -> Path:
    """A table regression (tests/tiny_data.py house_frame): rooms, age, area -> price."""
    from tests.tiny_data import house_frame

    house_frame(200).to_csv(folder / "houses.csv", index=False)
    data = {"dataset": "csv", "path": str(folder / "houses.csv"), "label": "price"}
    model = IMAGE_MODELS.get(rung, {"name": rung})
    return train(folder, f"{rung}_regression", {"data": data, "task": {"name": "regression"}, "model": model,
                                                 "train": TRAIN})


def causal_lm_run(folder: Path, mode: str = "lora") -> Path:
    """`ladder pretrain` of hf_causal_lm on a tiny random Llama (tests/models/tiny_llm.py) over texts of its words."""
    from modelladder.verbs.pretrain import pretrain_run
    from tests.models.tiny_llm import save_tiny_llama

    llama = save_tiny_llama(folder / "tiny-llama")
    texts, _, _, _ = text_problem(n=200, seed=1)
    (folder / "corpus.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    cfg = validate_run({
        "name": f"llama_{mode}", "seed": 0, "task": {"name": "causal_lm"},
        "data": {"dataset": "text", "path": str(folder / "corpus.txt"), "split": {"val": 0.2}},
        "model": {"name": "hf_causal_lm", "path": str(llama), "mode": mode, "max_length": 16,
                  "lora": {"r": 2, "dropout": 0.0}},
        "train": {"max_steps": 3, "epochs": 100, "batch_size": 4, "progress": False, "threads": 1,
                  "optimizer": {"lr": 0.003}, "schedule": {"name": "constant"}}})
    run_dir = prepare(folder / cfg.name)
    pretrain_run(cfg, run_dir)
    return run_dir
