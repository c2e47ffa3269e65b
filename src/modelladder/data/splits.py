"""Seeded holdout and k-fold splits (scikit-learn), with clear errors when classes are too small.

Indices come back sorted, so a held-out part keeps the order of the original file.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold, train_test_split

from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig


def holdout(y, fraction: float, *, seed: int, stratify: bool, name: str = "fraction"):
    """(train_idx, held_idx): `fraction` of the examples held out, stratified by `y` if asked.

    `name` is the config field that set `fraction`, for error messages. A fraction of 0 holds out
    nothing.
    """
    y = np.asarray(y)
    if not 0 <= fraction < 1:
        raise InputError(f"{name} must be in [0, 1), got {fraction!r}")
    n_held = math.ceil(fraction * len(y))
    return _split(y, n_held, seed=seed, stratify=stratify, what=f"{name}={fraction} of {len(y)} examples")


def subsample(y, limit: int, *, seed: int, stratify: bool, name: str = "limit") -> np.ndarray:
    """Indices of at most `limit` examples, keeping the class proportions when stratified."""
    y = np.asarray(y)
    if limit >= len(y):
        return np.arange(len(y))
    what = f"{name}={limit} of {len(y)} examples"
    keep, _ = _split(y, len(y) - limit, seed=seed, stratify=stratify, what=what)
    return keep


def _split(y: np.ndarray, n_held: int, *, seed: int, stratify: bool, what: str):
    n = len(y)
    if n_held == 0:
        return np.arange(n), np.arange(0)
    if n - n_held < 1:
        raise InputError(f"{what} leaves no examples to train on; use a smaller fraction or more data")
    if stratify:
        check_class_counts(y, minimum=2, splitting="stratified splitting")
        n_classes = len(np.unique(y))
        if min(n_held, n - n_held) < n_classes:
            raise InputError(
                f"{what} splits them {n - n_held} / {n_held}, but a stratified split needs at least one "
                f"example of each of the {n_classes} classes on both sides; change the fraction, "
                "or set data.split.stratify: false"
            )
    train, held = train_test_split(
        np.arange(n), test_size=n_held, random_state=seed, stratify=y if stratify else None
    )
    return np.sort(train), np.sort(held)


def kfold(y, folds: int, *, seed: int, stratify: bool, repeats: int = 1, name: str = "folds"):
    """[(train_idx, test_idx)] for `repeats` shufflings of `folds`-fold cross-validation."""
    y = np.asarray(y)
    n = len(y)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= n:
        raise InputError(f"{name} must be an int in [2, n_samples], got {folds!r} (n_samples = {n})")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise InputError(f"repeats must be an int >= 1, got {repeats!r}")
    if stratify:
        check_class_counts(y, minimum=folds, splitting=f"stratified {folds}-fold splitting")
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    else:
        splitter = RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    # the splitters only look at the number of rows of X
    return [(train, test) for train, test in splitter.split(np.zeros(n), y if stratify else None)]


SHOWN_CLASSES = 5  # small classes named in the message; the rest are counted


def check_class_counts(y: np.ndarray, *, minimum: int, splitting: str) -> None:
    """InputError naming the classes with fewer than `minimum` examples (the first SHOWN_CLASSES, and how many
    more); when the labels are numbers with many values, that the target is perhaps a regression's."""
    values, counts = np.unique(y, return_counts=True)
    small = [
        f"class '{v}' has {c} example{'s' if c != 1 else ''}" for v, c in zip(values, counts) if c < minimum
    ]
    if not small:
        return
    shown = "; ".join(small[:SHOWN_CLASSES]) + (f"; and {len(small) - SHOWN_CLASSES} more classes with fewer than "
                                                 f"{minimum}" if len(small) > SHOWN_CLASSES else "")
    hint = ""
    if len(small) > SHOWN_CLASSES and _numeric(values):
        hint = (f" (the labels are {len(values)} distinct numbers: for a numeric target set task.name: "
                "regression, where splits are not stratified)")
    raise InputError(f"{shown}: {splitting} needs at least {minimum} examples per class; "
                     f"set data.split.stratify: false, or add examples of that class{hint}")


def _numeric(values: np.ndarray) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def train_val(y, cfg: DataConfig, *, seed: int, task: str):
    """(train_idx, val_idx, scored_idx) into a training split, stratified for classification.

    `data.limit` keeps a subsample; then `data.split.val` of it is held out for validation and
    scored_idx is None (the loader keeps its own test split). With `data.split.folds` set, fold
    `data.split.fold` of repeat `data.split.repeat` of a seeded k-fold split is scored_idx, the
    loader's test split for this run, and the validation split is an inner split (`data.split.val`
    of the other folds, seeded and stratified as well), so that nothing chosen on validation (early
    stopping, the best checkpoint, calibration) ever sees the scored rows. Every rung of a ladder
    gets the same indices.
    """
    split = cfg.split
    stratify = task == "classification" and split.stratify
    y = np.asarray(y)
    kept = np.arange(len(y))
    if cfg.limit is not None:
        kept = subsample(y, cfg.limit, seed=seed, stratify=stratify, name="data.limit")
    if split.folds is not None:
        folds = kfold(y[kept], split.folds, seed=seed, stratify=stratify, repeats=split.repeat + 1,
                      name="data.split.folds")
        outer, scored = folds[split.repeat * split.folds + split.fold]
        train, val = inner_val(y[kept], outer, split.val, seed=seed, stratify=stratify)
        return kept[train], kept[val], kept[np.sort(scored)]
    train, val = holdout(y[kept], split.val, seed=seed, stratify=stratify, name="data.split.val")
    return kept[train], kept[val], None


def inner_val(y, outer_train, fraction: float, *, seed: int, stratify: bool):
    """(train_idx, val_idx): the validation split carved from a fold's training rows `outer_train`
    (indices into `y`), `fraction` of them, seeded and stratified like the holdout split."""
    outer_train = np.sort(np.asarray(outer_train))
    y = np.asarray(y)
    train, val = holdout(y[outer_train], fraction, seed=seed, stratify=stratify, name="data.split.val")
    return outer_train[train], outer_train[val]
