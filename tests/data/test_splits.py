"""Holdout and k-fold splits: seeded, stratified, partitioning, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from modelladder.config import DataConfig
from modelladder.data.splits import holdout, kfold, train_val
from modelladder.errors import InputError

Y = np.array([0] * 60 + [1] * 30 + [2] * 10)


def test_holdout_is_stratified_seeded_and_disjoint():
    train, held = holdout(Y, 0.2, seed=0, stratify=True)
    assert len(held) == 20 and len(train) == 80
    assert np.bincount(Y[held]).tolist() == [12, 6, 2]
    assert sorted(np.concatenate([train, held]).tolist()) == list(range(100))
    again_train, again_held = holdout(Y, 0.2, seed=0, stratify=True)
    assert np.array_equal(held, again_held) and np.array_equal(train, again_train)
    assert not np.array_equal(held, holdout(Y, 0.2, seed=1, stratify=True)[1])


def test_holdout_of_nothing_keeps_everything():
    train, held = holdout(Y, 0.0, seed=0, stratify=True)
    assert np.array_equal(train, np.arange(100)) and held.shape == (0,)


def test_single_example_class_is_named():
    y = np.array(["a", "b"] * 10 + ["lonely"])
    with pytest.raises(InputError) as err:
        holdout(y, 0.2, seed=0, stratify=True, name="data.split.test")
    assert str(err.value) == (
        "class 'lonely' has 1 example: stratified splitting needs at least 2 examples per class; "
        "set data.split.stratify: false, or add examples of that class"
    )
    train, held = holdout(y, 0.2, seed=0, stratify=False)
    assert len(train) + len(held) == 21


def test_a_numeric_target_read_as_classes_gets_a_short_error_that_points_to_regression():
    y = np.arange(100, 300).astype(str)  # 200 values once each: a regression target under task classification
    with pytest.raises(InputError) as err:
        holdout(y, 0.2, seed=0, stratify=True)
    message = str(err.value)
    assert message.startswith("class '100' has 1 example; class '101' has 1 example;")
    assert "and 195 more classes with fewer than 2" in message and message.count("has 1 example") == 5
    assert message.endswith("(the labels are 200 distinct numbers: for a numeric target set task.name: regression, "
                            "where splits are not stratified)")


def test_stratified_holdout_too_small_for_the_classes():
    with pytest.raises(InputError, match=r"data.split.val=0.01 of 100 examples splits them 99 / 1, but a "
                                         r"stratified split needs at least one example of each of the 3 "):
        holdout(Y, 0.01, seed=0, stratify=True, name="data.split.val")


def test_holdout_rejects_a_bad_fraction():
    with pytest.raises(InputError, match=r"data.split.test must be in \[0, 1\), got 1.5"):
        holdout(Y, 1.5, seed=0, stratify=False, name="data.split.test")


@pytest.mark.parametrize("stratify", [True, False])
def test_kfold_folds_partition_the_data(stratify):
    splits = kfold(Y, 5, seed=0, stratify=stratify)
    assert len(splits) == 5
    tests = np.concatenate([test for _, test in splits])
    assert sorted(tests.tolist()) == list(range(100))
    for train, test in splits:
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
        if stratify:
            assert np.bincount(Y[test]).tolist() == [12, 6, 2]


def test_kfold_repeats_reshuffle():
    splits = kfold(Y, 4, seed=0, stratify=True, repeats=3)
    assert len(splits) == 12
    assert not np.array_equal(splits[0][1], splits[4][1])
    again = kfold(Y, 4, seed=0, stratify=True, repeats=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))


@pytest.mark.parametrize("folds", [1, 101, 2.5, True])
def test_kfold_rejects_bad_folds(folds):
    with pytest.raises(InputError) as err:
        kfold(Y, folds, seed=0, stratify=False)
    assert str(err.value) == f"folds must be an int in [2, n_samples], got {folds!r} (n_samples = 100)"


def test_stratified_kfold_needs_folds_examples_per_class():
    with pytest.raises(InputError, match=r"class '2' has 10 examples: stratified 11-fold splitting needs at "
                                         r"least 11 examples per class"):
        kfold(Y, 11, seed=0, stratify=True)


def test_train_val_applies_limit_then_val_stratified():
    cfg = DataConfig(limit=50, split={"val": 0.2})
    train, val, scored = train_val(Y, cfg, seed=0, task="classification")
    assert len(train) == 40 and len(val) == 10 and scored is None
    assert np.bincount(Y[val]).tolist() == [6, 3, 1]
    assert np.bincount(Y[train]).tolist() == [24, 12, 4]
    assert not set(train) & set(val)


def test_limit_smaller_than_the_classes():
    with pytest.raises(InputError, match=r"data.limit=2 of 100 examples splits them 2 / 98"):
        train_val(Y, DataConfig(limit=2), seed=0, task="classification")
    train, val, _ = train_val(Y, DataConfig(limit=2, split={"val": 0}), seed=0, task="regression")
    assert len(train) == 2 and len(val) == 0
