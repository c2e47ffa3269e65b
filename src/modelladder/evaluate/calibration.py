"""Calibration of a classifier's probabilities: ECE and reliability tables, temperature and Platt scaling fitted on
the validation split, and split conformal prediction sets (mapie).

- ECE (evaluate/metrics.py, one of the classification metrics): 15 equal-width bins on the top-class
  probability, bins (lo, hi]; the sum over bins of (bin share) x |accuracy - mean confidence|. The reliability
  table keeps the per-bin figures for the report's reliability diagram.
- eval.calibrate 'temperature' (Guo et al. 2017) or 'platt' (Platt 2000, one-vs-rest): fitted on the run's
  validation split by minimising the negative log-likelihood of the logits (serve/calibration.py applies it;
  Predictor.logits says what a rung's logits are). Models that output margins (Rung.outputs_margins: tfidf_svm)
  are always calibrated, by Platt scaling unless eval.calibrate says 'temperature'.
- eval.conformal: mapie's SplitConformalClassifier (score 'lac') on the calibrated probabilities, conformalised
  on the validation split; coverage and mean set size are reported on the scored split.

scikit-learn's CalibratedClassifierCV is not used: on a prefit (frozen) model it still cross-validates the
validation rows, needs 5 of every class there, and fails when a class is missing from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin

from modelladder.errors import InputError
from modelladder.evaluate.metrics import classification_metrics, reliability_table
from modelladder.registry import MODELS, lookup
from modelladder.runs import write_json
from modelladder.serve.calibration import FILE, Calibration


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(logits / temperature, axis=1)[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.01, 100] that minimises the validation NLL of softmax(logits / T) (searched over log T)."""
    logits, y = np.asarray(logits, dtype=np.float64), np.asarray(y)
    found = minimize_scalar(lambda log_t: _nll(logits, y, np.exp(log_t)), bounds=(np.log(0.01), np.log(100)),
                            method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x))


def _platt_sigmoid(z: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(a, b) of P(positive | z) = sigmoid(-(a z + b)) by Platt's method: smoothed targets (N+ + 1) / (N+ + 2) and
    1 / (N- + 2), binary log-loss minimised by L-BFGS (as scikit-learn's sigmoid calibration)."""
    n_pos = float(positive.sum())
    n_neg = len(positive) - n_pos
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    scale = max(1.0, float(np.abs(z).max()))  # features near 1 keep L-BFGS well conditioned; a is rescaled below
    f = z / scale

    def loss_grad(ab):
        raw = -(ab[0] * f + ab[1])  # log-odds of the positive class
        p = expit(raw)
        loss = np.sum(np.logaddexp(0, raw) - target * raw)
        g = p - target  # d loss / d raw
        return loss, np.array([-(g @ f), -g.sum()])

    start = np.array([0.0, np.log((n_neg + 1) / (n_pos + 1))])
    a, b = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-6}).x
    return float(a / scale), float(b)


def fit_platt(logits: np.ndarray, y: np.ndarray) -> dict:
    """Platt scaling one-vs-rest: a sigmoid per class on that class's logit; for two classes one on the margin."""
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(y)
    if z.shape[1] == 2:
        pairs = [_platt_sigmoid(z[:, 1] - z[:, 0], y == 1)]
    else:
        pairs = [_platt_sigmoid(z[:, k], y == k) for k in range(z.shape[1])]
    return {"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}


def calibration_method(cfg) -> str | None:
    """eval.calibrate, or 'platt' for a classifier that outputs margins (Rung.outputs_margins); None: no calibration."""
    if cfg.eval.calibrate is not None or cfg.task.name != "classification":
        return cfg.eval.calibrate
    return "platt" if lookup(MODELS, "model.name", cfg.model.name).outputs_margins else None


def check_calibration(cfg, data) -> None:
    """Calibration and conformal sets are fitted on the validation split: it must hold rows (before any training)."""
    if len(data.y_val) > 0:
        return
    problems = []
    method = calibration_method(cfg)
    if cfg.eval.calibrate is not None:
        problems.append(f"eval.calibrate '{method}' is fitted on the validation split, which is empty: "
                        "set data.split.val > 0")
    elif method is not None:
        problems.append(f"model.name '{cfg.model.name}' outputs margins, not probabilities: they are calibrated "
                        f"({method}, eval.calibrate) on the validation split, which is empty: set data.split.val > 0")
    if cfg.eval.conformal is not None:
        problems.append("eval.conformal is fitted on the validation split, which is empty: set data.split.val > 0")
    if problems:
        raise InputError(problems)


def calibrate_run(cfg, predictor, data, run_dir: Path) -> Calibration | None:
    """Fit the run's calibration (calibration_method) on the validation split, save calibration.json (method,
    parameters, ECE and log-loss before and after on the validation split) and set it on `predictor`."""
    method = calibration_method(cfg)
    if method is None:
        return None
    X_val, y_val = data.split("val")
    logits = predictor.logits(X_val)
    params = {"temperature": fit_temperature(logits, y_val)} if method == "temperature" else fit_platt(logits, y_val)
    calibration = Calibration(method, params)
    before = classification_metrics(y_val, predictor.uncalibrated_scores(X_val), len(data.classes))
    after = classification_metrics(y_val, calibration.apply(logits), len(data.classes))
    write_json(run_dir / FILE, calibration.record() | {
        "fitted_on": "val", "n": len(y_val),
        "val": {"ece_before": before["ece"], "ece_after": after["ece"],
                "log_loss_before": before["log_loss"], "log_loss_after": after["log_loss"]},
    })
    predictor.calibration = calibration
    return calibration


class _Probabilities(ClassifierMixin, BaseEstimator):
    """A prefit classifier for mapie whose input is already the class probabilities: conformal sets on exactly the
    probabilities the Predictor serves, whatever the model reads (texts, images)."""

    def __init__(self, n_classes: int = 2):
        self.n_classes = n_classes

    def fit(self, X, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, X):
        return np.asarray(X)

    def predict(self, X):
        return np.asarray(X).argmax(axis=1)


def conformal_sets(val_proba: np.ndarray, y_val: np.ndarray, proba: np.ndarray, y: np.ndarray, alpha: float) -> dict:
    """Split conformal sets (mapie, score 'lac') conformalised on the validation probabilities; their coverage of
    the true class and mean size on the scored rows."""
    from mapie.classification import SplitConformalClassifier

    estimator = _Probabilities(val_proba.shape[1]).fit(val_proba)
    mapie = SplitConformalClassifier(estimator, confidence_level=1 - alpha, conformity_score="lac", prefit=True)
    mapie.conformalize(val_proba, y_val)
    _, sets = mapie.predict_set(proba)
    sets = sets[:, :, 0]
    return {"alpha": alpha, "coverage": float(sets[np.arange(len(y)), y].mean()),
            "set_size": float(sets.sum(axis=1).mean()), "n_conformalize": len(y_val)}


def evaluation_fields(predictor, data, split: str, X: np.ndarray, y: np.ndarray, scores: np.ndarray) -> dict:
    """What a classifier's eval_<split>.json adds: its calibration method (or None), the reliability table, the
    uncalibrated ECE and log-loss with their table when calibrated, and the conformal sets when eval.conformal."""
    if not data.classes:
        return {}
    calibration = predictor.calibration
    out = {"calibration": calibration.method if calibration else None, "reliability": reliability_table(y, scores)}
    if calibration is not None:
        raw = predictor.uncalibrated_scores(X)
        metrics = classification_metrics(y, raw, len(data.classes))
        out |= {"uncalibrated": {"ece": metrics["ece"], "log_loss": metrics["log_loss"]},
                "reliability_uncalibrated": reliability_table(y, raw)}
    conformal = predictor.cfg.eval.conformal
    if conformal is not None and split != "val":  # never scored on the rows it was conformalised on
        X_val, y_val = data.split("val")
        out["conformal"] = conformal_sets(predictor.scores(X_val), y_val, scores, y, conformal.alpha)
    return out


def leaderboard_fields(result: dict) -> dict:
    """A classifier row's calibration columns: calibration, <split>_ece_uncalibrated and <split>_log_loss_uncalibrated
    when calibrated, <split>_coverage, <split>_set_size and conformal_alpha with conformal sets; {} otherwise."""
    if "calibration" not in result:
        return {}
    split = result["split"]
    row = {"calibration": result["calibration"]}
    row |= {f"{split}_{k}_uncalibrated": round(v, 4) for k, v in result.get("uncalibrated", {}).items()}
    if "conformal" in result:
        conformal = result["conformal"]
        row |= {f"{split}_coverage": round(conformal["coverage"], 4), f"{split}_set_size": round(conformal["set_size"], 4),
                "conformal_alpha": conformal["alpha"]}
    return row
