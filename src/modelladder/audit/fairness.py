"""Group metrics through fairlearn, and post-processing mitigation with its ThresholdOptimizer.

Everything here works on plain arrays: true labels and predictions as 0 / 1 (1 the positive class),
and a table of sensitive columns with one string group per row.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import accuracy_score

GROUP_METRICS = ("accuracy", "selection_rate", "tpr", "fpr")


def _metric_functions() -> dict:
    from fairlearn.metrics import count, false_positive_rate, selection_rate, true_positive_rate

    return {"accuracy": accuracy_score, "selection_rate": selection_rate, "tpr": true_positive_rate,
            "fpr": false_positive_rate, "n": count}


def group_metrics(y_true: np.ndarray, y_pred: np.ndarray, groups: pd.DataFrame) -> dict:
    """{'overall': {metric: value}, 'attributes': {column: {'groups': {group: {metric: value, 'n': rows}},
    'demographic_parity_difference', 'equalized_odds_difference'}}} for each sensitive column.

    demographic_parity_difference: the largest gap in selection rate between two groups;
    equalized_odds_difference: the larger of the largest TPR gap and the largest FPR gap.
    A rate a group cannot have (TPR in a group without positives) is 0, as fairlearn computes it, and
    counts in the gaps: read the groups' n next to them.
    """
    from fairlearn.metrics import MetricFrame, demographic_parity_difference, equalized_odds_difference

    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    functions = _metric_functions()
    overall = MetricFrame(metrics=functions, y_true=y_true, y_pred=y_pred,
                          sensitive_features=np.zeros(len(y_true), np.int64)).overall
    report = {"overall": _clean(overall.to_dict()), "attributes": {}}
    for column in groups.columns:
        features = groups[column].to_numpy()
        frame = MetricFrame(metrics=functions, y_true=y_true, y_pred=y_pred, sensitive_features=features)
        report["attributes"][column] = {
            "groups": {str(g): _clean(row) for g, row in frame.by_group.to_dict(orient="index").items()},
            "demographic_parity_difference": _number(demographic_parity_difference(
                y_true, y_pred, sensitive_features=features)),
            "equalized_odds_difference": _number(equalized_odds_difference(
                y_true, y_pred, sensitive_features=features)),
        }
    return report


def _clean(metrics: dict) -> dict:
    return {k: int(v) if k == "n" else _number(v) for k, v in metrics.items()}


def _number(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


class ScoreClassifier(ClassifierMixin, BaseEstimator):
    """A trained model's class probabilities as a fitted scikit-learn classifier over its features, so
    that ThresholdOptimizer(prefit=True) can post-process any rung, scikit-learn or neural."""

    def __init__(self, scores=None):
        self.scores = scores  # features (N, F) -> probabilities (N, 2), e.g. Predictor.scores

    def fit(self, X, y) -> ScoreClassifier:
        return self  # the model is trained already; scikit-learn's estimator checks want the method

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X) -> np.ndarray:
        # float64: fairlearn writes its float64 thresholds into an array of the scores' dtype
        return np.asarray(self.scores(np.asarray(X, np.float32)), np.float64)

    def predict(self, X) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def threshold_optimizer(scores, X_fit: np.ndarray, y_fit: np.ndarray, groups_fit: pd.DataFrame, *,
                        constraint: str):
    """fairlearn's ThresholdOptimizer fitted on (X_fit, y_fit): one threshold on the positive-class
    probability per group (the sensitive columns combined) meeting `constraint` at the best accuracy."""
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(estimator=ScoreClassifier(scores), constraints=constraint,
                                   objective="accuracy_score", prefit=True, predict_method="predict_proba")
    return optimizer.fit(X_fit, y_fit, sensitive_features=groups_fit)


def headline_gaps(report: dict) -> dict:
    """Per sensitive column: parity_gap_<column> (demographic parity difference) and odds_gap_<column>
    (equalized odds difference), the leaderboard's fairness columns."""
    gaps = {}
    for column, attribute in report["attributes"].items():
        gaps[f"parity_gap_{column}"] = attribute["demographic_parity_difference"]
        gaps[f"odds_gap_{column}"] = attribute["equalized_odds_difference"]
    return gaps
