"""Group metrics against a hand computation; an unfair model is flagged and ThresholdOptimizer narrows its
gap, for a scikit-learn rung and a network alike; a fair one is not flagged; bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelladder.audit.fairness import group_metrics, headline_gaps
from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.serve.predictor import Predictor
from modelladder.verbs.audit import audit_run
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run
from tests.audit.helpers import group_table


def test_group_metrics_match_a_hand_computation():
    #        group A: 4 rows           group B: 4 rows
    y_true = [1, 1, 0, 0,              1, 0, 0, 0]
    y_pred = [1, 0, 1, 0,              1, 1, 1, 0]
    groups = pd.DataFrame({"g": ["A"] * 4 + ["B"] * 4})
    report = group_metrics(np.array(y_true), np.array(y_pred), groups)
    a, b = report["attributes"]["g"]["groups"]["A"], report["attributes"]["g"]["groups"]["B"]
    # A: TP 1, FN 1, FP 1, TN 1. B: TP 1, FN 0, FP 2, TN 1
    assert a == {"accuracy": 0.5, "selection_rate": 0.5, "tpr": 0.5, "fpr": 0.5, "n": 4}
    assert b == {"accuracy": 0.5, "selection_rate": 0.75, "tpr": 1.0, "fpr": 2 / 3, "n": 4}
    assert report["overall"] == {"accuracy": 0.5, "selection_rate": 5 / 8, "tpr": 2 / 3, "fpr": 0.6, "n": 8}
    assert report["attributes"]["g"]["demographic_parity_difference"] == pytest.approx(0.25)
    assert report["attributes"]["g"]["equalized_odds_difference"] == pytest.approx(0.5)  # max(TPR 0.5, FPR 1/6)
    assert headline_gaps(report) == {"parity_gap_g": pytest.approx(0.25), "odds_gap_g": pytest.approx(0.5)}


def test_a_rate_a_group_cannot_have_is_reported_as_fairlearn_does():
    report = group_metrics(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 0]), pd.DataFrame({"g": list("AABB")}))
    group_a = report["attributes"]["g"]["groups"]["A"]
    assert group_a["tpr"] == 0.0 and group_a["fpr"] == 0.5  # no positives in A: fairlearn's TPR is 0
    assert report["attributes"]["g"]["equalized_odds_difference"] == 1.0  # B's TPR 1 against A's 0


def train(tmp_path, csv, model: dict, **data) -> tuple:
    cfg = validate_run({"data": {"dataset": "csv", "path": str(csv), "label": "label", "split": {"val": 0.25},
                                 **data},
                        "model": model, "train": {"epochs": 5, "batch_size": 64, "progress": False, "threads": 1}})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bundle = load_run_data(cfg)
    train_run(cfg, run_dir, data=bundle)
    return run_dir, bundle


@pytest.mark.parametrize("model", [{"name": "logreg"}, {"name": "mlp", "hidden": [16]}])
def test_an_unfair_model_is_flagged_and_threshold_optimizer_narrows_the_gap(tmp_path, model):
    run_dir, data = train(tmp_path, group_table(tmp_path / "t.csv", unfair=True), model, sensitive=["group"])
    record = audit_run(run_dir, ["group"], mitigate=True, data=data)
    before = record["attributes"]["group"]
    after = record["mitigation"]["attributes"]["group"]
    assert before["groups"]["A"]["selection_rate"] > 0.7 and before["groups"]["B"]["selection_rate"] < 0.3
    assert before["demographic_parity_difference"] > 0.55
    assert after["demographic_parity_difference"] < 0.1
    assert after["overall"]["accuracy"] < record["overall"]["accuracy"]  # parity costs accuracy here
    assert json.loads((run_dir / "audit.json").read_text()) == record


def test_a_fair_model_has_small_gaps(tmp_path):
    run_dir, data = train(tmp_path, group_table(tmp_path / "t.csv", unfair=False), {"name": "logreg"},
                          sensitive=["group"])
    record = audit_run(run_dir, ["group"], data=data)
    assert record["overall"]["accuracy"] > 0.85
    assert record["attributes"]["group"]["demographic_parity_difference"] < 0.1
    assert record["attributes"]["group"]["equalized_odds_difference"] < 0.1
    assert "mitigation" not in record


def test_a_dropped_sensitive_column_is_still_audited_and_accepted_at_predict_time(tmp_path):
    csv = group_table(tmp_path / "t.csv", unfair=True)
    run_dir, data = train(tmp_path, csv, {"name": "logreg"}, drop=["group"], sensitive=["group"])
    assert not any(name.startswith("group") for name in data.feature_names)
    record = audit_run(run_dir, ["group"])  # loads the data itself, from the run's config
    # x is independent of the group: a model blind to it selects both groups alike
    assert record["attributes"]["group"]["demographic_parity_difference"] < 0.15
    rows = pd.read_csv(csv).head(3)
    assert Predictor.load(run_dir).predict(rows).shape == (3,)  # the dropped column may be given


def test_the_audit_columns_are_loaded_when_the_run_did_not_name_them(tmp_path):
    run_dir, _ = train(tmp_path, group_table(tmp_path / "t.csv", unfair=True), {"name": "logreg"})
    assert audit_run(run_dir, ["group"])["attributes"]["group"]["demographic_parity_difference"] > 0.55


def test_a_column_that_does_not_exist_is_named_with_a_suggestion(tmp_path):
    csv = group_table(tmp_path / "t.csv", unfair=True)
    run_dir, _ = train(tmp_path, csv, {"name": "logreg"})
    with pytest.raises(InputError) as err:
        audit_run(run_dir, ["grup"])
    assert err.value.problems == [(f"data.sensitive 'grup' is not a column of {csv}; the columns are "
                                   "['x', 'noise', 'group'] (did you mean 'group'?)")]


def test_no_sensitive_columns_a_multiclass_run_and_an_image_run_are_refused(tmp_path):
    run_dir, _ = train(tmp_path, group_table(tmp_path / "t.csv", unfair=True), {"name": "logreg"})
    with pytest.raises(InputError, match="needs sensitive columns: pass --sensitive COLUMN"):
        audit_run(run_dir, [])
    digits = tmp_path / "digits"
    digits.mkdir()
    train_run(validate_run({"data": {"dataset": "digits", "limit": 200}, "model": {"name": "logreg"}}), digits)
    with pytest.raises(InputError, match="audit needs a run trained on a table .* was trained on image data"):
        audit_run(digits, ["x"])


def test_mitigation_needs_a_validation_split(tmp_path):
    csv = group_table(tmp_path / "t.csv", unfair=True)
    cfg = validate_run({"data": {"dataset": "csv", "path": str(csv), "label": "label", "split": {"val": 0.0}},
                        "model": {"name": "logreg"}})
    (tmp_path / "run").mkdir()
    train_run(cfg, tmp_path / "run")
    with pytest.raises(InputError, match="--mitigate fits the thresholds on the validation split, and this run "
                                         "has none"):
        audit_run(tmp_path / "run", ["group"], mitigate=True)
