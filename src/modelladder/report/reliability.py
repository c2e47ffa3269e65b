"""Reliability of a classifier's confidence: accuracy against mean confidence in 15 equal-width bins of the
top-class probability (bins (lo, hi]), and the expected calibration error (ECE) they give, from a run's
predictions_<split>.csv (columns true, predicted, proba_<class>)."""

from __future__ import annotations

import numpy as np

from modelladder.evaluate.metrics import N_BINS, reliability_bins, table_ece


def reliability(confidence, correct, bins: int = N_BINS) -> dict:
    """Per bin as arrays for the plot: mean confidence, accuracy, count (NaN in empty bins), and the ECE, with
    the same bins as the ece metric (evaluate/metrics.py)."""
    table = reliability_bins(confidence, correct, bins)
    nan = float("nan")
    return {"edges": np.linspace(0, 1, bins + 1),
            "confidence": np.array([nan if b["confidence"] is None else b["confidence"] for b in table]),
            "accuracy": np.array([nan if b["accuracy"] is None else b["accuracy"] for b in table]),
            "counts": np.array([b["count"] for b in table]), "ece": float(table_ece(table)),
            "mean_confidence": float(np.mean(confidence)), "accuracy_overall": float(np.mean(correct))}


def from_predictions(frame) -> dict | None:
    """The reliability of a predictions table with class probabilities; None for regression."""
    columns = [c for c in frame.columns if c.startswith("proba_")]
    if not columns or not len(frame):
        return None
    proba = frame[columns].to_numpy(dtype=np.float64)
    return reliability(proba.max(axis=1), frame["true"].to_numpy() == frame["predicted"].to_numpy())
