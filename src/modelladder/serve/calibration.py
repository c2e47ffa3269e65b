"""A fitted probability calibration, as the Predictor applies it: logits in, calibrated class probabilities out.

Fitted once on the run's validation split (evaluate/calibration.py) and kept in the run folder as
calibration.json, plain numbers only, so `ladder predict`, `ladder serve` and `ladder evaluate` all see
the same probabilities:

- temperature: softmax(logits / T), one T for all classes (Guo et al. 2017); argmax is unchanged.
- platt: a sigmoid per class on that class's logit, sigmoid(-(a_k z_k + b_k)), the rows normalised to
  sum to 1 (scikit-learn's CalibratedClassifierCV(method="sigmoid") one-vs-rest rule); for two classes one
  sigmoid on the margin z_1 - z_0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit, softmax

from modelladder.errors import InputError
from modelladder.runs import read_json

METHODS = ("temperature", "platt")
FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    method: str  # one of METHODS
    params: dict = field(default_factory=dict)  # temperature: {"temperature": T}; platt: {"a": [...], "b": [...]}

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, C) from logits (N, C)."""
        z = np.asarray(logits, dtype=np.float64)
        if self.method == "temperature":
            return softmax(z / self.params["temperature"], axis=1)
        a, b = np.asarray(self.params["a"]), np.asarray(self.params["b"])
        if z.shape[1] == 2:  # one sigmoid on the margin, as scikit-learn does for two classes
            p1 = expit(-(a[0] * (z[:, 1] - z[:, 0]) + b[0]))
            return np.column_stack([1 - p1, p1])
        proba = expit(-(a * z + b))
        total = proba.sum(axis=1, keepdims=True)
        uniform = np.full_like(proba, 1 / proba.shape[1])
        return np.where(total > 0, proba / np.where(total > 0, total, 1), uniform)

    def record(self) -> dict:
        return {"method": self.method, "params": self.params}


def load_calibration(run_dir: Path | None) -> Calibration | None:
    """The run's calibration.json as a Calibration; None when the run was not calibrated."""
    if run_dir is None or not (Path(run_dir) / FILE).is_file():
        return None
    record = read_json(Path(run_dir) / FILE)
    method, params = record.get("method"), record.get("params")
    if method not in METHODS or not isinstance(params, dict):
        raise InputError(f"{Path(run_dir) / FILE} is not a calibration file: method must be one of {METHODS}, "
                         f"got {method!r}")
    return Calibration(method, params)
