"""The scikit-learn rungs: class coverage, regression, parameter counts, and safe loading."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge

from modelladder.errors import InputError
from modelladder.models.build import build_model, count_nodes, count_params
from modelladder.models.classic import (
    HistGradientBoostingRung,
    LinearRung,
    LogisticRegressionRung,
    RandomForestRung,
)

SMALL = {  # fast configs: the shared suite already covers the defaults
    "logreg": LogisticRegressionRung.Config(),
    "linear": LinearRung.Config(),
    "random_forest": RandomForestRung.Config(n_estimators=10),
    "hist_gb": HistGradientBoostingRung.Config(max_iter=10),
}


def images(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, 4, 4)).astype(np.float32)
    return X, (X[:, 0, 0, 0] > 0).astype(np.int64)  # two classes, decided by one pixel


class Payload:
    """A type no rung trusts."""


@pytest.mark.parametrize("name", sorted(SMALL))
def test_probabilities_cover_classes_absent_from_training(name):
    X, y = images()
    rung = build_model(SMALL[name], (1, 4, 4), 3, seed=0).fit(X, y)  # labels 0 and 1 only
    proba = rung.predict_proba(X)
    assert proba.shape == (60, 3)
    assert np.all(proba[:, 2] == 0)
    assert np.allclose(proba.sum(axis=1), 1)
    assert rung.predict(X).dtype == np.int64


@pytest.mark.parametrize(("name", "estimator"), [("logreg", Ridge), ("linear", Ridge),
                                                  ("random_forest", RandomForestRegressor),
                                                  ("hist_gb", HistGradientBoostingRegressor)])
def test_regression_uses_the_matching_regressor(name, estimator, tmp_path):
    X, _ = images(200)
    y = 3 * X[:, 0, 0, 0] - X[:, 0, 1, 1]
    rung = build_model(SMALL[name], (1, 4, 4), 1, seed=0, task="regression").fit(X, y)
    assert type(rung.estimator_) is estimator
    assert 1 - np.mean((rung.predict(X) - y) ** 2) / np.var(y) > 0.5  # R^2 on the training data
    with pytest.raises(ValueError, match="predict_proba needs task 'classification'"):
        rung.predict_proba(X)
    rung.save(tmp_path / "r.skops")
    loaded = type(rung).load(tmp_path / "r.skops", SMALL[name], (1, 4, 4), 1, task="regression")
    assert np.array_equal(loaded.predict(X), rung.predict(X))


def test_linear_is_logistic_regression_for_classes_and_ridge_for_regression_and_says_so():
    from modelladder.config import validate_run
    from modelladder.registry import MODELS, load_object

    assert load_object(MODELS["linear"]) is LinearRung and load_object(MODELS["logreg"]) is LogisticRegressionRung
    assert validate_run({"model": {"name": "linear", "C": 2.0}}).model == LinearRung.Config(C=2.0)
    classes = build_model(SMALL["linear"], (1, 4, 4), 2, seed=0)
    values = build_model(LinearRung.Config(C=2.0), (1, 4, 4), 1, seed=0, task="regression")
    assert (classes.estimator_name(), values.estimator_name()) == ("LogisticRegression", "Ridge")
    assert values._make_estimator().alpha == 0.25  # 1 / (2C): the same L2 penalty as the classifier's


def test_logreg_params_are_weights_and_intercepts():
    X, y = images()
    assert count_params(build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0).fit(X, y)) == 16 + 1
    X3, y3 = X, np.arange(60) % 3
    assert count_params(build_model(SMALL["logreg"], (1, 4, 4), 3, seed=0).fit(X3, y3)) == 3 * 16 + 3


def test_trees_count_nodes_not_params():
    X, y = images()
    stumps = build_model(RandomForestRung.Config(n_estimators=5, max_depth=1), (1, 4, 4), 2, seed=0).fit(X, y)
    assert count_nodes(stumps) == 5 * 3 and count_params(stumps) is None
    boosted = HistGradientBoostingRung.Config(max_iter=4, max_leaf_nodes=2, early_stopping=False)
    assert count_nodes(build_model(boosted, (1, 4, 4), 2, seed=0).fit(X, y)) == 4 * 3


def test_seed_reaches_the_estimator():
    rung = build_model(SMALL["random_forest"], (1, 4, 4), 2, seed=7)
    X, y = images()
    assert rung.fit(X, y).estimator_.random_state == 7
    other = build_model(SMALL["random_forest"], (1, 4, 4), 2, seed=8).fit(X, y)
    assert not np.array_equal(rung.predict_proba(X), other.predict_proba(X))


def test_load_refuses_a_file_with_an_untrusted_type(tmp_path):
    path = tmp_path / "evil.skops"
    sio.dump({"payload": Payload()}, path)
    with pytest.raises(InputError, match=rf"^model file {path} holds types that model logreg does not trust: "
                                         r"\['[\w.]*Payload'\]$"):
        LogisticRegressionRung.load(path, SMALL["logreg"], (1, 4, 4), 2)


def test_load_trusts_only_the_types_that_rung_saves(tmp_path):
    X, y = images()
    build_model(SMALL["random_forest"], (1, 4, 4), 2, seed=0).fit(X, y).save(tmp_path / "forest.skops")
    with pytest.raises(InputError, match=r"does not trust: \['sklearn.tree._tree.Tree'\]$"):
        HistGradientBoostingRung.load(tmp_path / "forest.skops", SMALL["hist_gb"], (1, 4, 4), 2)
    build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0).fit(X, y).save(tmp_path / "linear.skops")
    with pytest.raises(InputError, match=r"holds a LogisticRegression, model random_forest for task "
                                         r"'classification' expects a RandomForestClassifier$"):
        RandomForestRung.load(tmp_path / "linear.skops", SMALL["random_forest"], (1, 4, 4), 2)


def test_load_refuses_a_corrupted_or_missing_file(tmp_path):
    X, y = images()
    path = tmp_path / "model.skops"
    build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0).fit(X, y).save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=rf"^model file {path} is not a readable skops file: "):
        LogisticRegressionRung.load(path, SMALL["logreg"], (1, 4, 4), 2)
    with pytest.raises(InputError, match=r"missing.skops is not a readable skops file: .*No such file"):
        LogisticRegressionRung.load(tmp_path / "missing.skops", SMALL["logreg"], (1, 4, 4), 2)


def test_save_replaces_the_file_and_leaves_no_temporary(tmp_path):
    X, y = images()
    path = tmp_path / "model.skops"
    path.write_text("old")
    build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0).fit(X, y).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]
    assert LogisticRegressionRung.load(path, SMALL["logreg"], (1, 4, 4), 2).n_params() == 17


def test_misuse_is_reported():
    rung = build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0)
    with pytest.raises(NotFittedError, match="model logreg is not fitted yet"):
        rung.predict(images()[0])
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 2\), got 0..2"):
        rung.fit(images()[0], np.arange(60) % 3)
    with pytest.raises(InputError, match="^model logreg supports task 'classification' or 'regression', got 'gan'$"):
        build_model(SMALL["logreg"], (1, 4, 4), 2, seed=0, task="gan")


def test_load_refuses_a_file_with_more_classes_than_the_data(tmp_path):
    X, _ = images()
    build_model(SMALL["logreg"], (1, 4, 4), 3, seed=0).fit(X, np.arange(60) % 3).save(tmp_path / "m.skops")
    with pytest.raises(InputError, match=r"m.skops predicts class 2, but the data has only 2 classes$"):
        LogisticRegressionRung.load(tmp_path / "m.skops", SMALL["logreg"], (1, 4, 4), 2)
