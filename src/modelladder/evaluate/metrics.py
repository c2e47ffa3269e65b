"""Classification and regression metrics, computed by scikit-learn and returned as plain floats."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, macro precision / recall / F1, log loss, ECE (15 bins) and ROC AUC from class probabilities (N, C).

    ROC AUC is one-vs-rest macro over the classes present in `y_true` (for two classes: on the
    positive column); it is left out when `y_true` holds a single class, where it is undefined.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)  # float32 softmax rows may miss 1 by an ulp
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        y_true, y_pred, average="macro", zero_division=0
    )
    out = {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision_macro": precision,
        "recall_macro": recall,
        "f1_macro": f1,
        "log_loss": metrics.log_loss(y_true, proba, labels=list(range(n_classes))),
        "ece": expected_calibration_error(y_true, proba),
    }
    present = np.unique(y_true)
    if len(present) >= 2:
        if n_classes == 2:
            out["roc_auc"] = metrics.roc_auc_score(y_true, proba[:, 1])
        else:
            one_hot = y_true[:, None] == present[None, :]
            out["roc_auc"] = metrics.roc_auc_score(one_hot, proba[:, present], average="macro")
    return {k: float(v) for k, v in out.items()}


N_BINS = 15  # calibration bins: equal-width on the top-class probability


def reliability_table(y_true: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Per equal-width bin (lo, hi] of top-class probability: mean confidence, accuracy and count (None for an
    empty bin's confidence and accuracy)."""
    proba = np.asarray(proba)
    return reliability_bins(proba.max(axis=1), proba.argmax(axis=1) == np.asarray(y_true), n_bins)


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """reliability_table from each row's top-class probability and whether its prediction was right (the
    report reads these from predictions_<split>.csv)."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.digitize(confidence, edges[1:-1], right=True)  # bin i holds edges[i] < p <= edges[i + 1]
    table = []
    for i in range(n_bins):
        mask = which == i
        n = int(mask.sum())
        table.append({"lo": round(float(edges[i]), 6), "hi": round(float(edges[i + 1]), 6), "count": n,
                      "confidence": float(confidence[mask].mean()) if n else None,
                      "accuracy": float(correct[mask].mean()) if n else None})
    return table


def table_ece(table: list[dict]) -> float:
    """The ECE of a reliability table: each filled bin's |accuracy - mean confidence| weighted by its share."""
    n = sum(b["count"] for b in table)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]) if n else 0.0


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE: over equal-width bins (lo, hi] of top-class probability, the mean of |accuracy - mean confidence|
    weighted by each bin's share of the rows (0 for a perfectly calibrated model)."""
    return table_ece(reliability_table(y_true, proba, n_bins))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> list[list[int]]:
    """The confusion matrix over all `n_classes` classes: rows are true classes, columns predicted."""
    matrix = metrics.confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    return [[int(v) for v in row] for row in matrix]


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Root mean squared error (the headline: in the target's units), mean absolute error, R^2 and the mean
    squared error."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    mse = metrics.mean_squared_error(y_true, y_pred)
    return {
        "rmse": float(np.sqrt(mse)),
        "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
        "r2": float(metrics.r2_score(y_true, y_pred)),
        "mse": float(mse),
    }
