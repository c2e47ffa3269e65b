"""The data layer's entry points: a DataBundle from a config, and raw inputs to features at predict time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelladder import registry
from modelladder.data.bundle import DataBundle
from modelladder.data.images import read_image_files, transform_images
from modelladder.data.tabular import transform_table
from modelladder.data.text import clean_texts, refuse_empty
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig


def load_data(cfg: DataConfig, *, seed: int, task: str = "classification") -> DataBundle:
    """Train / val / test splits of `cfg.dataset`, preprocessed with state fitted on train only.

    Each loader holds out the test split (or keeps the official one), then applies `data.limit`
    and `data.split.val` to the training split (splits.train_val) before fitting any
    preprocessing, so that the statistics never see validation or test rows. Deterministic for a
    given seed.
    """
    loader = registry.lookup(registry.DATASETS, "data.dataset", cfg.dataset)
    data = loader(cfg, seed=seed, task=task)
    if data.kind == "seq2seq":  # the target vocabulary, fitted on the training targets (data/seq2seq.py)
        from modelladder.data.seq2seq import with_target_vocabulary

        data.preprocess = with_target_vocabulary(data.preprocess, data.y_train)
    return data


def transform_raw(preprocess: dict, raw, names=None) -> np.ndarray:
    """Features for raw inputs, with a run's saved preprocess state.

    Tables: a pandas DataFrame with the training feature columns (the label may be absent).
    Images: an array (N, H, W) or (N, C, H, W) in the dataset's original pixel scale.
    Texts: a list (or 1-D array) of raw strings, cleaned as the training texts were; a text empty after
    cleaning is refused (data/text.py refuse_empty), `names[i]` naming text i in the message.
    Sequence-to-sequence sources: strings, cleaned as the dataset's were (data/seq2seq.py clean_sources).
    """
    kind = preprocess.get("kind")
    if kind == "tabular":
        return transform_table(preprocess, raw if isinstance(raw, pd.DataFrame) else pd.DataFrame(raw))
    if kind == "image":
        return transform_images(preprocess, raw)
    if kind == "text":
        cleaned = clean_texts(raw, preprocess["clean"])
        refuse_empty(cleaned, names)
        return cleaned
    if kind == "seq2seq":
        from modelladder.data.seq2seq import clean_sources

        return clean_sources(preprocess, raw, names)
    raise InputError(f"preprocess kind must be 'image', 'tabular', 'text' or 'seq2seq', got {kind!r}")


def load_image_files(paths: list[Path], preprocess: dict) -> np.ndarray:
    """Features for PNG / JPEG files: converted to the dataset's channels and size, then transformed."""
    kind = preprocess.get("kind")
    if kind != "image":
        raise InputError(f"image files need a run trained on images, this run's data is {kind!r}")
    return transform_images(preprocess, read_image_files(paths, preprocess))
