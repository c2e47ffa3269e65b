"""Metrics and tasks: values agree with hand-computed ones, undefined metrics are left out."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from modelladder.evaluate.metrics import classification_metrics, confusion, regression_metrics
from modelladder.tasks.classification import Classification
from modelladder.tasks.regression import Regression


def test_classification_metrics_on_a_known_example():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]], dtype=np.float32)
    m = classification_metrics(y, proba, 2)
    assert m["accuracy"] == 0.75
    assert m["precision_macro"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7])), rel=1e-6)
    assert m["roc_auc"] == 1.0  # every positive scores above every negative on column 1
    assert all(type(v) is float for v in m.values())
    json.dumps(m)


def test_multiclass_auc_is_one_vs_rest_macro_over_present_classes():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=50).astype(np.float32)
    y = rng.integers(0, 3, size=50)  # class 3 never occurs
    m = classification_metrics(y, proba, 4)
    from sklearn.metrics import roc_auc_score

    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(3)])
    assert m["roc_auc"] == pytest.approx(expected)
    assert math.isfinite(m["log_loss"])


def test_auc_is_left_out_when_one_class_is_present():
    m = classification_metrics(np.array([1, 1, 1]), np.array([[0.2, 0.8]] * 3), 2)
    assert "roc_auc" not in m and m["accuracy"] == 1.0


def test_confusion_covers_every_class():
    assert confusion(np.array([0, 1, 1]), np.array([0, 0, 1]), 3) == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]


def test_regression_metrics():
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m == pytest.approx({"rmse": (4 / 3) ** 0.5, "mae": 2 / 3, "r2": 1 - 4 / 2, "mse": 4 / 3})
    assert next(iter(m)) == "rmse"  # the headline first: the leaderboard shows a row's first metrics


def test_classification_task():
    task = Classification(3)
    model = torch.nn.Linear(2, 3)
    x, y = torch.randn(5, 2), torch.tensor([0, 1, 2, 0, 1])
    loss, logits = task.loss(model, x, y)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(model(x), y))
    scores = task.scores(logits)
    assert torch.allclose(scores.sum(1), torch.ones(5))
    assert np.array_equal(task.decode(scores.detach().numpy()), logits.argmax(1).numpy())
    assert task.target_dtype == torch.long and task.monitor == ("accuracy", "max")


def test_regression_task():
    task = Regression()
    model = torch.nn.Linear(2, 1)
    x, y = torch.randn(5, 2), torch.randn(5)
    loss, out = task.loss(model, x, y)
    assert torch.allclose(loss, ((model(x).squeeze(1) - y) ** 2).mean())
    assert task.scores(out).shape == (5,)
    assert task.metrics(y.numpy(), task.scores(out).detach().numpy())["mse"] == pytest.approx(loss.item(), rel=1e-5)
    assert task.target_dtype == torch.float32 and task.monitor == ("rmse", "min")
    assert task.preprocess_fields() == {}  # no scale: nothing for preprocess.json


def test_a_regression_network_trains_on_the_standardised_target_and_scores_in_its_units():
    task = Regression(mean=150.0, std=50.0)
    model = torch.nn.Linear(2, 1)
    x, y = torch.randn(5, 2), 150 + 50 * torch.randn(5)
    loss, out = task.loss(model, x, y)
    assert torch.allclose(loss, ((model(x).squeeze(1) - (y - 150) / 50) ** 2).mean())
    assert torch.allclose(task.scores(out), model(x).squeeze(1) * 50 + 150)
    assert task.preprocess_fields() == {"target": {"mean": 150.0, "std": 50.0}}


def test_the_target_scale_is_the_training_splits_and_a_constant_target_keeps_std_1():
    from modelladder.tasks.regression import target_scale

    assert target_scale(np.array([1.0, 3.0, 5.0, 7.0])) == pytest.approx((4.0, 5**0.5))
    assert target_scale(np.full(10, 3.0)) == (3.0, 1.0)
    assert target_scale(np.array([])) == (0.0, 1.0)
