"""Calibrated runs end to end: a digits random forest with temperature scaling and conformal sets, a small MLP, and
a TF-IDF SVM that is Platt-calibrated without being asked; what they save, serve and put on the leaderboard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import softmax

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.evaluate.metrics import classification_metrics
from modelladder.runs import prepare, read_json
from modelladder.serve.predictor import Predictor
from modelladder.verbs.build import load_run_data
from modelladder.verbs.ladder import _row
from modelladder.verbs.train import train_run
from tests.models.problems import text_problem

DIGITS = {"dataset": "digits", "split": {"test": 0.2, "val": 0.1}}


def train(folder, config: dict):
    cfg = validate_run({"name": "run", "seed": 0, **config})
    data = load_run_data(cfg)
    run_dir = prepare(folder / "run")
    return cfg, data, run_dir, train_run(cfg, run_dir, data=data)


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    """The default ladder's random forest (mean confidence far below its accuracy), temperature-scaled."""
    return train(tmp_path_factory.mktemp("forest"), {
        "data": DIGITS, "model": {"name": "random_forest", "n_jobs": 1},
        "eval": {"calibrate": "temperature", "conformal": {"alpha": 0.1}}})


def test_temperature_lowers_the_forests_ece_and_keeps_its_predictions(forest):
    _, data, run_dir, result = forest
    assert result["calibration"] == "temperature"
    assert result["uncalibrated"]["ece"] > 0.15 and result["metrics"]["ece"] < 0.06  # measured: 0.218 -> 0.027
    assert result["metrics"]["log_loss"] < result["uncalibrated"]["log_loss"]
    saved = read_json(run_dir / "calibration.json")
    assert saved["method"] == "temperature" and 0 < saved["params"]["temperature"] < 1  # sharpened: underconfident
    assert saved["fitted_on"] == "val" and saved["n"] == len(data.y_val)
    assert saved["val"]["ece_after"] < saved["val"]["ece_before"]
    predictor = Predictor.load(run_dir)
    X, y = data.split("test")
    calibrated, raw = predictor.scores(X), predictor.uncalibrated_scores(X)
    assert np.array_equal(calibrated.argmax(axis=1), raw.argmax(axis=1))  # accuracy unchanged
    assert result["metrics"]["accuracy"] == classification_metrics(y, raw, 10)["accuracy"]


def test_a_loaded_run_serves_exactly_the_calibrated_scores_it_was_scored_with(forest):
    _, data, run_dir, result = forest
    predictor = Predictor.load(run_dir)
    X, y = data.split("test")
    scores = predictor.scores(X)
    assert classification_metrics(y, scores, 10) == result["metrics"]
    temperature = read_json(run_dir / "calibration.json")["params"]["temperature"]
    assert np.allclose(scores, softmax(np.log(np.clip(predictor.uncalibrated_scores(X), 1e-12, None)) / temperature,
                                       axis=1))


def test_eval_record_keeps_both_reliability_tables(forest):
    *_, run_dir, _ = forest
    record = read_json(run_dir / "eval_test.json")
    for key in ("reliability", "reliability_uncalibrated"):
        assert len(record[key]) == 15 and sum(b["count"] for b in record[key]) == record["n"]


def test_conformal_sets_cover_about_one_minus_alpha_of_the_test_rows(forest):
    *_, result = forest
    conformal = result["conformal"]
    assert conformal["alpha"] == 0.1 and conformal["coverage"] == pytest.approx(0.9, abs=0.05)
    assert conformal["set_size"] > 0.5


def test_the_ladder_row_carries_the_calibration_columns(forest):
    cfg, *_, result = forest
    row = _row(cfg, result)
    assert row["calibration"] == "temperature" and row["conformal_alpha"] == 0.1
    assert row["test_ece"] < row["test_ece_uncalibrated"] and row["test_log_loss"] < row["test_log_loss_uncalibrated"]
    assert {"test_coverage", "test_set_size"} <= row.keys()


def test_a_network_is_calibrated_on_its_logits(tmp_path):
    _, data, run_dir, result = train(tmp_path, {
        "data": {**DIGITS, "limit": 600}, "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 3, "progress": False, "threads": 1}, "eval": {"calibrate": "temperature"}})
    predictor = Predictor.load(run_dir)
    X, _ = data.split("test")
    temperature = read_json(run_dir / "calibration.json")["params"]["temperature"]
    assert np.allclose(predictor.scores(X), softmax(predictor.logits(X) / temperature, axis=1))
    assert np.allclose(predictor.uncalibrated_scores(X), softmax(predictor.logits(X), axis=1), atol=1e-6)
    assert result["calibration"] == "temperature" and "ece" in result["uncalibrated"]


def test_svm_margins_are_platt_calibrated_without_being_asked(tmp_path):
    texts, y, _, _ = text_problem(n=300, seed=0)
    names = np.array(["sport", "politics", "tech"], dtype=object)
    pd.DataFrame({"text": texts, "label": names[y]}).to_csv(tmp_path / "topics.csv", index=False)
    _, data, run_dir, result = train(tmp_path, {
        "data": {"dataset": "text", "path": str(tmp_path / "topics.csv"), "split": {"val": 0.2}},
        "model": {"name": "tfidf_svm"}})
    assert result["calibration"] == "platt" and read_json(run_dir / "calibration.json")["method"] == "platt"
    predictor = Predictor.load(run_dir)
    X, _ = data.split("test")
    assert np.allclose(predictor.scores(X), predictor.calibration.apply(predictor.model.logits(X)))
    assert not np.allclose(predictor.scores(X), predictor.uncalibrated_scores(X))


def test_calibration_without_validation_rows_is_refused_before_training(tmp_path):
    cfg = validate_run({"data": {**DIGITS, "split": {"val": 0}}, "model": {"name": "logreg"},
                        "eval": {"calibrate": "temperature"}})
    run_dir = prepare(tmp_path / "run")
    with pytest.raises(InputError, match=r"eval.calibrate 'temperature' is fitted on the validation split, which is "
                                         r"empty: set data.split.val > 0"):
        train_run(cfg, run_dir, data=load_run_data(cfg))
    assert not (run_dir / "model.skops").exists()
