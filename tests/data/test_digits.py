"""scikit-learn's digits: shapes, seeded splits, normalisation fitted on the training split only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn.datasets

from modelladder.config import DataConfig
from modelladder.data.load import load_data, transform_raw
from modelladder.data.splits import holdout
from modelladder.errors import InputError


def test_shapes_dtypes_and_sizes():
    data = load_data(DataConfig(), seed=0)
    assert data.kind == "image" and data.input_shape == (1, 8, 8)
    assert data.classes == [str(d) for d in range(10)]
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [1293, 144, 360]
    for X, y in [data.split("train"), data.split("val"), data.split("test")]:
        assert X.dtype == np.float32 and X.shape[1:] == (1, 8, 8) and y.dtype == np.int64
    assert np.bincount(data.y_test).min() >= 35  # stratified: every digit has its share of the test split


def test_normalisation_is_fitted_on_the_training_split_only():
    data = load_data(DataConfig(), seed=0)
    mean, std = data.preprocess["mean"][0], data.preprocess["std"][0]
    raw_train = (data.X_train.astype(np.float64) * std + mean) * 16
    assert np.allclose(raw_train, np.round(raw_train), atol=1e-4)  # back to the 0..16 pixel levels
    assert mean == pytest.approx((raw_train / 16).mean(), abs=1e-6)
    assert std == pytest.approx((raw_train / 16).std(), abs=1e-6)
    assert data.X_train.mean() == pytest.approx(0, abs=1e-5)
    assert data.X_train.std() == pytest.approx(1, abs=1e-5)
    assert abs(data.X_val.mean()) > 1e-3 and abs(data.X_test.mean()) > 1e-3
    without_val = load_data(DataConfig(split={"val": 0}), seed=0)
    assert without_val.preprocess["mean"][0] != mean  # the validation rows changed nothing above


def test_test_split_matches_the_raw_images_through_transform_raw():
    data = load_data(DataConfig(), seed=3)
    digits = sklearn.datasets.load_digits()
    _, test = holdout(digits.target, 0.2, seed=3, stratify=True)
    saved = json.loads(json.dumps(data.preprocess, allow_nan=False))  # as preprocess.json holds it
    assert np.array_equal(data.X_test, transform_raw(saved, digits.images[test]))
    assert np.array_equal(data.y_test, digits.target[test])


def test_seeded():
    a, b, c = (load_data(DataConfig(), seed=s) for s in (0, 0, 1))
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_test, c.y_test)


def test_limit_no_val_no_normalisation_and_regression():
    data = load_data(DataConfig(limit=200, split={"val": 0}, normalize=False), seed=0)
    assert data.X_train.shape == (200, 1, 8, 8)
    assert data.X_val.shape == (0, 1, 8, 8) and data.y_val.shape == (0,)
    assert np.bincount(data.y_train).min() >= 19  # the subsample keeps every class
    assert data.X_train.min() == 0 and data.X_train.max() == 1  # only rescaled to [0, 1]
    reg = load_data(DataConfig(), seed=0, task="regression")
    assert reg.classes == [] and reg.y_train.dtype == np.float32 and reg.n_outputs == 1


def test_unknown_dataset_and_task():
    with pytest.raises(InputError, match=r"data.dataset must be one of .*got 'digit' \(did you mean 'digits'"):
        load_data(DataConfig(dataset="digit"), seed=0)
    with pytest.raises(InputError, match=r"dataset 'digits' supports task.name 'classification' or 'regr"):
        load_data(DataConfig(), seed=0, task="causal_lm")
