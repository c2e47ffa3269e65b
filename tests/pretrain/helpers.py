"""Small corpora and configs for the pretraining tests: tiny models that train in a few seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelladder.config import RunConfig, deep_merge, validate_run

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "park", "and", "slept"]


def sample_text(n_lines: int = 400, seed: int = 0) -> str:
    """Short sentences over a small vocabulary: a language model's loss falls fast on them."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_lines):
        start = rng.integers(len(WORDS))
        lines.append(" ".join(WORDS[(start + k) % len(WORDS)] for k in range(rng.integers(3, 8))) + ".")
    return "\n".join(lines) + "\n"


def write_corpus(folder: Path, text: str | None = None) -> Path:
    path = folder / "corpus.txt"
    path.write_text(sample_text() if text is None else text, encoding="utf-8")
    return path


def tiny_config(path: Path, task: str = "causal_lm", **overrides) -> RunConfig:
    """A 2-block, 32-wide Transformer with a 32-token context on the text file `path`."""
    raw = {
        "seed": 3,
        "data": {"dataset": "text", "path": str(path)},
        "model": {"name": "transformer", "causal": task == "causal_lm", "vocab_size": 40, "max_length": 32,
                  "dim": 32, "depth": 2, "heads": 2, "dropout": 0.1, "tokenizer": {"kind": "char"}},
        "task": {"name": task},
        "train": {"max_steps": 40, "epochs": 1000, "batch_size": 16, "log_every": 5, "progress": False, "threads": 1,
                  "grad_clip": 1.0, "optimizer": {"lr": 0.01, "weight_decay": 0.01},
                  "schedule": {"name": "cosine", "warmup_steps": 5}},
    }
    return validate_run(deep_merge(raw, overrides))


def write_labelled(folder: Path, n_lines: int = 300) -> Path:
    """A CSV of texts (text, label) like the corpus, labelled by whether they hold the word 'cat'."""
    import csv

    path = folder / "labelled.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for line in sample_text(n_lines, seed=1).splitlines():
            writer.writerow([line, "cat" if "cat" in line.split() else "other"])
    return path


def finetune_config(labelled: Path, pretrained: Path, mode: str = "full", **overrides) -> RunConfig:
    """A classifier on `labelled` that starts from the pretrained run folder `pretrained`."""
    raw = {
        "seed": 1,
        "data": {"dataset": "text", "path": str(labelled)},
        "model": {"name": "transformer", "pooling": "mean"},
        "train": {"epochs": 3, "batch_size": 16, "progress": False, "threads": 1, "optimizer": {"lr": 0.003}},
        "finetune": {"from": str(pretrained), "mode": mode},
    }
    return validate_run(deep_merge(raw, overrides))


def pretrained_lm(tmp_path_factory, **train) -> tuple[Path, Path]:
    """A tiny causal transformer pretrained on the sample corpus (learned positions) in its own cache, and
    the labelled CSV: what the fine-tuning tests start from."""
    import pytest
    import torch

    from modelladder.verbs.pretrain import pretrain_run

    folder = tmp_path_factory.mktemp("pretrained")
    (folder / "lm").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(folder / "cache"))
        torch.set_num_threads(1)
        config = tiny_config(write_corpus(folder), train=train) if train else tiny_config(write_corpus(folder))
        pretrain_run(config, folder / "lm")
    return folder / "lm", write_labelled(folder)
