"""scikit-learn's bundled 8x8 digits: no download, the default dataset of `ladder run`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sklearn.datasets

from modelladder.data.bundle import DataBundle
from modelladder.data.images import image_bundle
from modelladder.data.splits import holdout

if TYPE_CHECKING:
    from modelladder.config import DataConfig


def load_digits(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """1,797 images (N, 1, 8, 8) with pixels 0..16; data.split.test of them held out as the test split."""
    digits = sklearn.datasets.load_digits()
    images, labels = digits.images[:, None], digits.target
    stratify = task == "classification" and cfg.split.stratify
    train, test = holdout(labels, cfg.split.test, seed=seed, stratify=stratify, name="data.split.test")
    return image_bundle(
        images[train], labels[train], images[test], labels[test],
        cfg=cfg, seed=seed, task=task, pixel_max=16.0, source="sklearn.datasets.load_digits",
    )
