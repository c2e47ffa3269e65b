"""95% intervals for every metric of a holdout evaluation (eval_<split>.json "intervals").

A proportion (accuracy: hits out of n independent examples) gets Wilson's score interval
(statsmodels). Every other metric (macro precision / recall / F1, ROC AUC, log-loss, ECE, RMSE, MSE,
MAE, R^2) gets a seeded percentile bootstrap over the examples: RESAMPLES resamples drawn once as a
(resamples, n) matrix of counts, so that one metric over every resample is a matrix product (a few
milliseconds for 360 examples and 10 classes) rather than a thousand scikit-learn calls. The
vectorised metrics below follow scikit-learn's definitions (tests/evaluate/test_intervals.py checks
them against it); a metric without one falls back to the task's own metrics on each resample. The
paired bootstrap between two rungs (significance.py) uses the same counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from threadpoolctl import threadpool_limits

LEVEL = 0.95
RESAMPLES = 1000
PROPORTIONS = ("accuracy",)  # a count of hits out of n examples: Wilson's interval
ECE_BINS = 15  # equal-width bins (lo, hi] on the top-class probability
MAX_CELLS = 4_000_000  # resamples are drawn in chunks of at most this many counts
# where each metric lives; intervals (t, bootstrap) are clipped to it
RANGES = {"accuracy": (0.0, 1.0), "precision_macro": (0.0, 1.0), "recall_macro": (0.0, 1.0),
          "f1_macro": (0.0, 1.0), "roc_auc": (0.0, 1.0), "ece": (0.0, 1.0), "log_loss": (0.0, np.inf),
          "rmse": (0.0, np.inf), "mse": (0.0, np.inf), "mae": (0.0, np.inf), "r2": (-np.inf, 1.0)}


def metric_intervals(y: np.ndarray, scores: np.ndarray, metrics: dict[str, float], *, classification: bool,
                     seed: int, metric_fn: Callable[[np.ndarray, np.ndarray], dict] | None = None,
                     resamples: int = RESAMPLES) -> tuple[dict[str, list[float]], dict[str, str]]:
    """({metric: [low, high]}, {metric: "wilson" | "bootstrap"}) at LEVEL for each of `metrics`.

    `y` and `scores` are what the task's metrics were computed from: class indices and probabilities
    (N, C) for a classifier, targets and predictions for a regressor. `metric_fn(y, scores)` (the
    task's metrics) scores a resample for a metric with no vectorised form; without it such a metric
    gets no interval.
    """
    y, scores = np.asarray(y), np.asarray(scores, dtype=np.float64)
    intervals, methods = {}, {}
    for name in metrics:
        if name in PROPORTIONS and classification:
            intervals[name] = wilson(int((scores.argmax(axis=1) == y).sum()), len(y))
            methods[name] = "wilson"
    rest = [name for name in metrics if name not in intervals]
    if rest:
        values = bootstrap_values(y, scores, rest, classification=classification, seed=seed,
                                  metric_fn=metric_fn, resamples=resamples)
        for name, draws in values.items():
            intervals[name] = percentile_interval(draws, RANGES.get(name))
            methods[name] = "bootstrap"
    return {k: intervals[k] for k in metrics if k in intervals}, {k: methods[k] for k in metrics if k in methods}


def wilson(hits: int, n: int) -> list[float]:
    """Wilson's score interval for `hits` out of `n` at LEVEL."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(hits, n, alpha=1 - LEVEL, method="wilson")
    return [float(low), float(high)]


def percentile_interval(draws: np.ndarray, bounds: tuple[float, float] | None = None) -> list[float]:
    """The central LEVEL of the bootstrap draws (NaN draws, such as an AUC of a one-class resample, left out)."""
    tail = (1 - LEVEL) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail])
    if bounds is not None:
        low, high = np.clip([low, high], *bounds)
    return [float(low), float(high)]


def counts(n: int, seed: int, resamples: int = RESAMPLES) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks of (indices (b, n), counts (b, n) float) of `resamples` bootstrap resamples of n examples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, MAX_CELLS // max(n, 1)))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        offsets = (np.arange(b)[:, None] * n + idx).ravel()
        yield idx, np.bincount(offsets, minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_values(y, scores, names: list[str], *, classification: bool, seed: int,
                     metric_fn=None, resamples: int = RESAMPLES) -> dict[str, np.ndarray]:
    """{metric: its value on each of the `resamples` resamples}, for the metrics of `names` that have a
    vectorised form or, with `metric_fn`, through it."""
    table = CLASSIFICATION if classification else REGRESSION
    if classification:  # as metrics.classification_metrics: float32 softmax rows may miss 1 by an ulp
        scores = scores / scores.sum(axis=1, keepdims=True)
    fast = [name for name in names if name in table]
    slow = [name for name in names if name not in table] if metric_fn is not None else []
    out: dict[str, list] = {name: [] for name in fast + slow}
    with threadpool_limits(1):  # small products: threads only add overhead, and contend with training
        for idx, weights in counts(len(y), seed, resamples):
            for name in fast:
                out[name].append(table[name](weights, y, scores))
            for name in slow:
                out[name].append([metric_fn(y[i], scores[i]).get(name, np.nan) for i in idx])
    return {name: np.concatenate(parts).astype(np.float64) for name, parts in out.items()}


# ---------------------------------------------------------------- vectorised metrics: f(counts (b, n), y, scores)


def _mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    return weights @ values / weights.sum(axis=1)


def _confusion_counts(weights, y, proba):
    """Per resample and class: true positives, examples of the class, examples predicted as it."""
    k = proba.shape[1]
    truth = np.eye(k)[y]
    predicted = np.eye(k)[proba.argmax(axis=1)]
    return weights @ (truth * predicted), weights @ truth, weights @ predicted


def _macro(values, present):
    """The mean over the classes present (in the truth or the predictions) of each resample."""
    return (values * present).sum(axis=1) / present.sum(axis=1)


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # zero_division=0, as scikit-learn


def _precision(weights, y, proba):
    tp, true, pred = _confusion_counts(weights, y, proba)
    return _macro(_ratio(tp, pred), (true + pred) > 0)


def _recall(weights, y, proba):
    tp, true, pred = _confusion_counts(weights, y, proba)
    return _macro(_ratio(tp, true), (true + pred) > 0)


def _f1(weights, y, proba):
    tp, true, pred = _confusion_counts(weights, y, proba)
    return _macro(_ratio(2 * tp, true + pred), (true + pred) > 0)


def _accuracy(weights, y, proba):
    return _mean(weights, (proba.argmax(axis=1) == y).astype(np.float64))


def _log_loss(weights, y, proba):
    eps = np.finfo(np.float64).eps  # scikit-learn clips to [eps, 1 - eps]
    p = np.clip(proba, eps, 1 - eps)
    return _mean(weights, -np.log(p[np.arange(len(y)), y]))


def _auc(columns, positive, score):
    """ROC AUC of `score` for the `positive` examples against the others, per resample (NaN when a
    resample lacks either side): the weighted Mann-Whitney statistic, ties counted half. `columns` is
    the counts transposed, (n, b). Each positive counts the negatives' weight below its score and half
    of that at its score, read off a cumulative sum of the sorted negatives' weights."""
    negatives = np.flatnonzero(~positive)
    negatives = negatives[np.argsort(score[negatives], kind="stable")]
    positives = np.flatnonzero(positive)
    below = np.searchsorted(score[negatives], score[positives], side="left")
    up_to = np.searchsorted(score[negatives], score[positives], side="right")
    cumulative = np.zeros((len(negatives) + 1, columns.shape[1]))
    np.cumsum(columns[negatives], axis=0, out=cumulative[1:])
    weights = columns[positives]
    wins = np.einsum("pb,pb->b", weights, cumulative[below] + cumulative[up_to]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / (weights.sum(axis=0) * cumulative[-1])


def _roc_auc(weights, y, proba):
    """As metrics.classification_metrics: the positive column for two classes, else one-vs-rest macro over
    the classes present in each resample's truth."""
    columns = np.ascontiguousarray(weights.T)  # gathering rows of examples is faster than columns
    if proba.shape[1] == 2:
        return _auc(columns, y == 1, proba[:, 1])
    present = (weights @ np.eye(proba.shape[1])[y]) > 0
    aucs = np.stack([_auc(columns, y == k, proba[:, k]) for k in range(proba.shape[1])], axis=1)
    aucs = np.where(present, aucs, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present.sum(axis=1) >= 2, aucs.sum(axis=1) / present.sum(axis=1), np.nan)


def _ece(weights, y, proba):
    confidence = proba.max(axis=1)
    bins = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
    gaps = np.eye(ECE_BINS)[bins] * ((proba.argmax(axis=1) == y) - confidence)[:, None]
    return np.abs(weights @ gaps).sum(axis=1) / weights.sum(axis=1)


def _mse(weights, y, pred):
    return _mean(weights, (np.asarray(y, np.float64).reshape(-1) - pred.reshape(-1)) ** 2)


def _rmse(weights, y, pred):
    return np.sqrt(_mse(weights, y, pred))


def _mae(weights, y, pred):
    return _mean(weights, np.abs(np.asarray(y, np.float64).reshape(-1) - pred.reshape(-1)))


def _r2(weights, y, pred):
    y = np.asarray(y, np.float64).reshape(-1)
    n = weights.sum(axis=1)
    residual = weights @ (y - pred.reshape(-1)) ** 2
    total = weights @ y**2 - (weights @ y) ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 1e-12 * np.maximum(weights @ y**2, 1), 1 - residual / total, np.nan)


CLASSIFICATION = {"accuracy": _accuracy, "precision_macro": _precision, "recall_macro": _recall, "f1_macro": _f1,
                  "log_loss": _log_loss, "roc_auc": _roc_auc, "ece": _ece}
REGRESSION = {"rmse": _rmse, "mse": _mse, "mae": _mae, "r2": _r2}


def vectorised(name: str, *, classification: bool):
    """The vectorised form f(counts, y, scores) of metric `name`, or None."""
    return (CLASSIFICATION if classification else REGRESSION).get(name)
