"""Is an explanation faithful to the model? Deletion and insertion curves against random orders, and the
rank agreement between two methods.

Deletion removes the units (pixels, columns, words) from the most to the least attributed, step by step,
and records the explained class's probability: a faithful ranking makes it fall fast (a low area under
the curve). Insertion starts from the input with every unit removed and puts them back in the same order:
a faithful ranking makes it rise fast (a high area). Both are compared with the mean of random orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import spearmanr


@dataclass
class ArrayInput:
    """One image or table row as model features. Unit u owns the features where `unit_of == u` (a pixel's
    channels, a column's one-hot features); a removed unit takes the baseline's values there."""

    x: np.ndarray  # features in the model's input shape
    baseline: np.ndarray  # same shape: what a removed unit becomes
    unit_of: np.ndarray  # (features,) the unit of each flattened feature
    units: list[str]
    predict: Callable[[np.ndarray], np.ndarray]  # features (N, *shape) -> probabilities (N, classes)

    def removed(self, masks: np.ndarray) -> np.ndarray:
        """(S, units) booleans, True where a unit is removed -> S inputs (S, *shape)."""
        gone = masks[:, self.unit_of]
        flat = np.where(gone, self.baseline.reshape(1, -1), self.x.reshape(1, -1))
        return flat.reshape(len(masks), *self.x.shape).astype(self.x.dtype)

    def per_unit(self, feature_scores: np.ndarray) -> np.ndarray:
        """Feature attributions (any shape with x's size) summed over each unit's features."""
        return np.bincount(self.unit_of, weights=np.asarray(feature_scores, np.float64).reshape(-1),
                           minlength=len(self.units))


@dataclass
class TextInput:
    """One cleaned text; its units are its distinct words (LIME's IndexedString with bow=True), and
    removing a word removes every occurrence of it."""

    text: str
    words: object  # lime.lime_text.IndexedString
    predict: Callable[[list[str]], np.ndarray]  # raw texts -> probabilities (N, classes)

    @property
    def units(self) -> list[str]:
        return [str(w) for w in self.words.inverse_vocab]

    def removed(self, masks: np.ndarray) -> list[str]:
        return [self.words.inverse_removing(np.flatnonzero(m)) for m in masks]


def curves(subject, orders: np.ndarray, target: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractions removed (S,), and the deletion and insertion probabilities (R, S) of each order in
    `orders` (R, units), all through one batched prediction."""
    n = len(subject.units)
    counts = np.unique(np.round(np.linspace(0, n, min(n, steps) + 1)).astype(int))
    ranks = np.argsort(orders, axis=1)  # ranks[r, u]: when order r removes unit u
    deleted = ranks[:, None, :] < counts[None, :, None]  # (R, S, units)
    masks = np.concatenate([deleted, ~deleted], axis=1).reshape(-1, n)  # insertion keeps what deletion removed
    probs = np.asarray(subject.predict(subject.removed(masks)))[:, target].reshape(len(orders), 2, len(counts))
    return counts / max(n, 1), probs[:, 0], probs[:, 1]


def faithfulness(subject, scores: np.ndarray, target: int, *, seed: int, steps: int = 20,
                 repeats: int = 10) -> dict:
    """Deletion and insertion curves of the order `scores` gives (highest first), their areas, and the
    areas of `repeats` random orders (mean): the explanation beats chance when its deletion area is lower."""
    n = len(subject.units)
    rng = np.random.default_rng(seed)
    orders = np.stack([np.argsort(-np.asarray(scores), kind="stable")] + [rng.permutation(n) for _ in range(repeats)])
    fractions, deletion, insertion = curves(subject, orders, target, steps)
    areas = {name: [float(np.trapezoid(curve, fractions)) for curve in curves_]
             for name, curves_ in (("deletion", deletion), ("insertion", insertion))}
    return {
        "fractions": fractions.round(4).tolist(),
        "deletion": deletion[0].round(4).tolist(),
        "insertion": insertion[0].round(4).tolist(),
        "random_deletion": deletion[1:].mean(axis=0).round(4).tolist(),
        "random_insertion": insertion[1:].mean(axis=0).round(4).tolist(),
        "deletion_auc": round(areas["deletion"][0], 4),
        "insertion_auc": round(areas["insertion"][0], 4),
        "random_deletion_auc": round(float(np.mean(areas["deletion"][1:])), 4),
        "random_insertion_auc": round(float(np.mean(areas["insertion"][1:])), 4),
    }


def rank_agreement(a: np.ndarray, b: np.ndarray, *, signed: bool) -> float | None:
    """Spearman's rank correlation of two attributions of the same units (of their magnitudes when one
    method gives magnitudes only); None when either is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not signed:
        a, b = np.abs(a), np.abs(b)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(spearmanr(a, b).statistic), 4)
