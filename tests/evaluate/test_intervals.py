"""95% intervals of a holdout evaluation: Wilson for accuracy, a seeded vectorised bootstrap for the rest, whose
metrics agree with scikit-learn's on every resample; reproducible, fast, and covering about 95% of the time."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from modelladder.evaluate.intervals import CLASSIFICATION, REGRESSION, bootstrap_values, metric_intervals, wilson
from modelladder.evaluate.metrics import classification_metrics, regression_metrics


def dyadic_probabilities(y: np.ndarray, k: int, rng) -> np.ndarray:
    """Class probabilities in sixteenths: exact in floating point, so rows sum to 1 exactly and ties stay ties
    (renormalising them, as classification_metrics does, changes nothing)."""
    weights = np.ones((len(y), k))
    weights[np.arange(len(y)), y] += 2 * k
    return np.stack([rng.multinomial(16, w / w.sum()) for w in weights]) / 16


def test_wilson_matches_the_closed_form_and_the_issue_figures():
    hits, n, z = 348, 360, 1.959963984540054  # logreg on the 360 digits: accuracy 0.9667
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert wilson(hits, n) == pytest.approx([centre - half, centre + half], abs=1e-12)
    assert [round(b, 3) for b in wilson(hits, n)] == [0.943, 0.981]  # as quoted in issue 15
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_every_vectorised_classification_metric_is_scikit_learn_on_each_resample(k):
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 240)
    proba = dyadic_probabilities(y, k, rng)  # many tied scores: the AUC must count ties half, as scikit-learn
    idx = rng.integers(0, len(y), (25, len(y)))
    counts = np.stack([np.bincount(i, minlength=len(y)) for i in idx]).astype(np.float64)
    for name, f in CLASSIFICATION.items():
        got = f(counts, y, proba)
        if name == "ece":
            want = [ece_by_hand(y[i], proba[i]) for i in idx]
        else:
            want = [classification_metrics(y[i], proba[i], k)[name] for i in idx]
        assert got == pytest.approx(want, abs=1e-12), name


def ece_by_hand(y, proba, bins=15):
    """Expected calibration error: 15 equal-width bins (lo, hi] on the top-class probability."""
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    total = 0.0
    for b in range(bins):
        inside = (confidence > b / bins) & (confidence <= (b + 1) / bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_every_vectorised_regression_metric_is_scikit_learn_on_each_resample():
    rng = np.random.default_rng(0)
    y = rng.normal(size=150)
    pred = y + rng.normal(scale=0.5, size=150)
    idx = rng.integers(0, 150, (25, 150))
    counts = np.stack([np.bincount(i, minlength=150) for i in idx]).astype(np.float64)
    for name, f in REGRESSION.items():
        assert f(counts, y, pred) == pytest.approx([regression_metrics(y[i], pred[i])[name] for i in idx],
                                                   abs=1e-12), name


def test_intervals_say_their_method_and_hold_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 360)
    logits = rng.normal(size=(360, 10))
    logits[np.arange(360), y] += 3
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    metrics = classification_metrics(y, proba, 10)
    intervals, methods = metric_intervals(y, proba, metrics, classification=True, seed=0)
    assert list(intervals) == list(methods) == list(metrics)
    assert methods == {"accuracy": "wilson"} | {k: "bootstrap" for k in metrics if k != "accuracy"}
    for name, (low, high) in intervals.items():
        assert low <= metrics[name] <= high, name
        assert 0 <= low < high <= (1 if name != "log_loss" else np.inf), name


def test_the_bootstrap_is_seeded():
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    pred = y + rng.normal(size=200)
    metrics = regression_metrics(y, pred)
    first = metric_intervals(y, pred, metrics, classification=False, seed=7)
    assert metric_intervals(y, pred, metrics, classification=False, seed=7) == first
    assert metric_intervals(y, pred, metrics, classification=False, seed=8)[0] != first[0]
    assert first[1] == {"rmse": "bootstrap", "mae": "bootstrap", "r2": "bootstrap", "mse": "bootstrap"}


def test_a_metric_without_a_vectorised_form_falls_back_to_the_task_metrics():
    y = np.arange(50, dtype=np.float64)
    pred = y + np.random.default_rng(0).normal(size=50)

    def metric_fn(y, pred):
        return {"max_error": float(np.max(np.abs(y - pred)))}

    got = bootstrap_values(y, pred, ["max_error", "mae"], classification=False, seed=0, metric_fn=metric_fn,
                           resamples=40)
    assert len(got["max_error"]) == len(got["mae"]) == 40
    assert metric_intervals(y, pred, {"max_error": 1.0}, classification=False, seed=0) == ({}, {})  # no metric_fn


def test_coverage_is_about_95_percent():
    """Over repeated samples from a known population, the intervals hold the true value about 95% of the time."""
    rng = np.random.default_rng(3)
    wilson_hits = bootstrap_hits = 0
    trials = 200
    for trial in range(trials):
        correct = rng.random(150) < 0.9  # accuracy 0.9
        low, high = wilson(int(correct.sum()), 150)
        wilson_hits += low <= 0.9 <= high
        y = rng.normal(size=150)
        pred = y + rng.normal(size=150)  # mse 1
        low, high = metric_intervals(y, pred, {"mse": 1.0}, classification=False, seed=trial)[0]["mse"]
        bootstrap_hits += low <= 1.0 <= high
    assert 0.9 <= wilson_hits / trials <= 0.99
    assert 0.88 <= bootstrap_hits / trials <= 0.99


def test_all_intervals_of_a_digits_sized_test_split_take_milliseconds():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 10, 360)
    proba = dyadic_probabilities(y, 10, rng)
    metrics = classification_metrics(y, proba, 10) | {"ece": 0.1}
    metric_intervals(y, proba, metrics, classification=True, seed=0)  # imports statsmodels
    started = time.perf_counter()
    metric_intervals(y, proba, metrics, classification=True, seed=0)
    assert time.perf_counter() - started < 0.5  # ~30 ms here; the bound leaves room for a loaded machine
