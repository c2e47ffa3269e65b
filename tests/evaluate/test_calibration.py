"""Calibration pieces on synthetic scores: ECE and its bins, temperature and Platt scaling (Platt checked against
scikit-learn's CalibratedClassifierCV), conformal coverage, calibration.json, the leaderboard fields and the config
checks."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.evaluate.calibration import (
    calibration_method,
    check_calibration,
    conformal_sets,
    fit_platt,
    fit_temperature,
    leaderboard_fields,
)
from modelladder.evaluate.metrics import classification_metrics, expected_calibration_error, reliability_table
from modelladder.runs import write_json
from modelladder.serve.calibration import Calibration, load_calibration


def sampled(n: int, n_classes: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): that softmax is perfectly calibrated."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3, size=(n, n_classes))
    proba = softmax(logits / temperature, axis=1)
    y = (proba.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return logits, y


# ---------------------------------------------------------------- ECE and the reliability table


def test_ece_of_a_calibrated_sample_is_near_zero_and_of_an_overconfident_one_large():
    logits, y = sampled(20_000, 4, temperature=1.0)
    assert expected_calibration_error(y, softmax(logits, axis=1)) < 0.015
    assert expected_calibration_error(y, softmax(logits * 4, axis=1)) > 0.15  # the same ranking, too sure


def test_ece_bins_are_fifteen_equal_widths_closed_on_the_right():
    # top-class probabilities 0.6 (= 9/15, the upper edge of bin 8), 0.61 (bin 9) and 1.0 (the last bin)
    proba = np.array([[0.6, 0.4], [0.61, 0.39], [1.0, 0.0], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    table = reliability_table(y, proba)
    assert len(table) == 15 and table[0]["lo"] == 0 and table[-1]["hi"] == 1
    assert [b["count"] for b in table] == [0] * 8 + [2, 1] + [0] * 4 + [1]
    assert table[8] == {"lo": pytest.approx(8 / 15), "hi": pytest.approx(0.6), "count": 2, "confidence": 0.6,
                        "accuracy": 1.0}
    assert table[0]["confidence"] is None and table[0]["accuracy"] is None
    # bins 8: |1 - 0.6| x 2/4, 9: |0 - 0.61| x 1/4, 14: |1 - 1| x 1/4
    assert expected_calibration_error(y, proba) == pytest.approx(0.4 * 2 / 4 + 0.61 / 4)


def test_ece_is_one_of_the_classification_metrics():
    logits, y = sampled(500, 3, temperature=1.0)
    metrics = classification_metrics(y, softmax(logits, axis=1), 3)
    assert metrics["ece"] == pytest.approx(expected_calibration_error(y, softmax(logits, axis=1)))


# ---------------------------------------------------------------- temperature and Platt scaling


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(y)), y].mean())


def test_temperature_finds_the_temperature_that_made_the_labels_and_lowers_the_nll():
    logits, y = sampled(5000, 5, temperature=2.5)
    temperature = fit_temperature(logits, y)
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert nll(logits, y, temperature) < nll(logits, y) - 0.1
    assert nll(logits, y, temperature) <= min(nll(logits, y, temperature * f) for f in (0.95, 1.05))


def test_temperature_keeps_every_prediction():
    logits, y = sampled(300, 4, temperature=0.5)
    calibrated = Calibration("temperature", {"temperature": fit_temperature(logits, y)}).apply(logits)
    assert np.array_equal(calibrated.argmax(axis=1), logits.argmax(axis=1))
    assert np.allclose(calibrated.sum(axis=1), 1)


class Margins(ClassifierMixin, BaseEstimator):
    """A prefit classifier whose input is the margins themselves (for CalibratedClassifierCV)."""

    def __init__(self, n_classes: int = 2):
        self.n_classes = n_classes

    def fit(self, X, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def decision_function(self, X):
        return X[:, 1] - X[:, 0] if self.n_classes == 2 else X

    def predict(self, X):
        return X.argmax(axis=1)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_platt_scaling_matches_scikit_learns_sigmoid_calibration(n_classes):
    logits, y = sampled(2000, n_classes, temperature=1.0)
    margins = logits * 7 + 2  # scaled and shifted: no probabilities, as an SVM's margins are not
    platt = Calibration("platt", fit_platt(margins, y))
    reference = CalibratedClassifierCV(FrozenEstimator(Margins(n_classes).fit(margins)), method="sigmoid")
    reference.fit(margins, y)
    assert np.allclose(platt.apply(margins), reference.predict_proba(margins), atol=1e-4)
    assert nll(np.log(platt.apply(margins)), y) < nll(margins, y) - 0.5


def test_platt_for_two_classes_is_one_sigmoid_on_the_margin():
    rng = np.random.default_rng(0)
    margin = rng.normal(size=4000)
    y = (rng.random(4000) < expit(3 * margin + 1)).astype(int)
    params = fit_platt(np.column_stack([-margin, margin]) / 2, y)
    assert len(params["a"]) == 1
    assert params["a"][0] == pytest.approx(-3, rel=0.1) and params["b"][0] == pytest.approx(-1, abs=0.15)


def test_platt_survives_a_class_missing_from_the_validation_split():
    logits, y = sampled(600, 4, temperature=1.0)
    y[y == 3] = 2
    proba = Calibration("platt", fit_platt(logits, y)).apply(logits)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1)
    assert proba[:, 3].max() < 0.01  # Platt's smoothed target for a class never seen: 1 / (n + 2)


def test_calibration_json_round_trips(tmp_path):
    write_json(tmp_path / "calibration.json", Calibration("platt", {"a": [-1.5], "b": [0.2]}).record())
    assert load_calibration(tmp_path) == Calibration("platt", {"a": [-1.5], "b": [0.2]})
    assert load_calibration(tmp_path / "elsewhere") is None
    write_json(tmp_path / "calibration.json", {"method": "isotonic", "params": {}})
    with pytest.raises(InputError, match="is not a calibration file: method must be one of"):
        load_calibration(tmp_path)


# ---------------------------------------------------------------- conformal sets


def test_conformal_sets_cover_about_one_minus_alpha_of_new_rows():
    logits, y = sampled(6000, 5, temperature=1.0)
    proba = softmax(logits, axis=1)
    out = conformal_sets(proba[:3000], y[:3000], proba[3000:], y[3000:], alpha=0.1)
    assert out["coverage"] == pytest.approx(0.9, abs=0.02)
    assert 1 < out["set_size"] < 5 and out["alpha"] == 0.1 and out["n_conformalize"] == 3000


# ---------------------------------------------------------------- the leaderboard


def test_leaderboard_fields_name_the_split_and_round():
    result = {"split": "test", "calibration": "temperature", "uncalibrated": {"ece": 0.218111, "log_loss": 0.33276},
              "conformal": {"alpha": 0.1, "coverage": 0.90278, "set_size": 1.01389, "n_conformalize": 144}}
    assert leaderboard_fields(result) == {
        "calibration": "temperature", "test_ece_uncalibrated": 0.2181, "test_log_loss_uncalibrated": 0.3328,
        "test_coverage": 0.9028, "test_set_size": 1.0139, "conformal_alpha": 0.1}
    assert leaderboard_fields({"split": "test", "calibration": None}) == {"calibration": None}
    assert leaderboard_fields({"split": "test", "metrics": {"mse": 1.0}}) == {}  # a regression


# ---------------------------------------------------------------- config checks


def config(**sections):
    return {"model": {"name": "logreg"}, **sections}


def test_eval_calibrate_names_what_is_allowed():
    with pytest.raises(InputError, match=re.escape("eval.calibrate must be 'temperature' or 'platt', got 'temprature' "
                                                   "(did you mean 'temperature'?)")):
        validate_run(config(eval={"calibrate": "temprature"}))
    with pytest.raises(InputError, match=re.escape("eval.conformal.alpha must be < 1, got 1.5")):
        validate_run(config(eval={"conformal": {"alpha": 1.5}}))
    assert validate_run(config(eval={"calibrate": None, "conformal": None})).eval.calibrate is None
    assert validate_run(config(eval={"conformal": {}})).eval.conformal.alpha == 0.1


def test_calibration_needs_a_classifier_scored_off_the_validation_split():
    with pytest.raises(InputError) as err:
        validate_run(config(task={"name": "regression"}, eval={"calibrate": "temperature", "conformal": {}}))
    assert err.value.problems == [
        "eval.calibrate needs task.name 'classification' (class probabilities), got 'regression'",
        "eval.conformal needs task.name 'classification' (class probabilities), got 'regression'"]
    with pytest.raises(InputError, match=re.escape(
            "eval.calibrate is fitted on the validation split: it cannot be scored there (eval.split 'val'); "
            "use eval.split 'test'")):
        validate_run(config(eval={"calibrate": "platt", "split": "val"}))


def test_calibration_needs_validation_rows():
    empty = SimpleNamespace(y_val=np.zeros(0, np.int64))
    with pytest.raises(InputError) as err:
        check_calibration(validate_run(config(eval={"calibrate": "temperature", "conformal": {}})), empty)
    assert err.value.problems == [
        "eval.calibrate 'temperature' is fitted on the validation split, which is empty: set data.split.val > 0",
        "eval.conformal is fitted on the validation split, which is empty: set data.split.val > 0"]
    svm = validate_run({"data": {"dataset": "text"}, "model": {"name": "tfidf_svm"}})
    with pytest.raises(InputError, match=re.escape("model.name 'tfidf_svm' outputs margins, not probabilities: they "
                                                   "are calibrated (platt, eval.calibrate) on the validation split")):
        check_calibration(svm, empty)
    check_calibration(validate_run(config()), empty)  # nothing to fit: no validation rows needed


def test_margin_models_are_platt_calibrated_unless_told_otherwise():
    svm = {"data": {"dataset": "text"}, "model": {"name": "tfidf_svm"}}
    assert calibration_method(validate_run(svm)) == "platt"
    assert calibration_method(validate_run({**svm, "eval": {"calibrate": "temperature"}})) == "temperature"
    assert calibration_method(validate_run({**svm, "model": {"name": "tfidf_logreg"}})) is None
    assert calibration_method(validate_run(config(eval={"calibrate": "platt"}))) == "platt"
