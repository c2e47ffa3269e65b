"""Reliability of a classifier's confidence: accuracy against mean confidence in 15 equal-width bins of the
top-class probability (bins (lo, hi]), and the expected calibration error (ECE) they give, from a run's
predictions_<split>.csv (columns true, predicted, proba_<class>)."""

from __future__ import annotations

import numpy as np

BINS = 15


def reliability(confidence, correct, bins: int = BINS) -> dict:
    """Per bin: mean confidence, accuracy, count (empty bins have NaN); and ece = sum_b n_b/N |acc_b - conf_b|."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # (lo, hi]; 0 joins the first bin
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(index, weights=confidence, minlength=bins) / counts
        acc = np.bincount(index, weights=correct, minlength=bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] / counts.sum() * np.abs(acc[filled] - conf[filled])))
    return {"edges": np.linspace(0, 1, bins + 1), "confidence": conf, "accuracy": acc, "counts": counts,
            "ece": ece, "mean_confidence": float(confidence.mean()), "accuracy_overall": float(correct.mean())}


def from_predictions(frame) -> dict | None:
    """The reliability of a predictions table with class probabilities; None for regression."""
    columns = [c for c in frame.columns if c.startswith("proba_")]
    if not columns or not len(frame):
        return None
    proba = frame[columns].to_numpy(dtype=np.float64)
    return reliability(proba.max(axis=1), frame["true"].to_numpy() == frame["predicted"].to_numpy())
