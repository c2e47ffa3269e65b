"""TF-IDF baselines for text: word 1..n-gram TF-IDF features -> LogisticRegression or a linear SVM.

Each rung is one scikit-learn Pipeline (TfidfVectorizer, then the linear model) fitted on the training
texts only, and saved with skops like every classic rung. Its inputs are a 1-D array of strings.
For task 'regression' the linear model is Ridge (alpha = 1 / (2C)) or LinearSVR.

n_params counts the linear model: (vocabulary size) x (classes, or 1 for two classes, where scikit-learn
keeps a single weight row) weights plus the intercepts. The IDF weights, one per term, are fitted
statistics of the corpus rather than trained parameters and are not counted.

tfidf_svm outputs margins (outputs_margins): its own predict_proba, the softmax of LinearSVC's decision
values (for two classes, the sigmoid of the margin), ranks texts as the SVM does but is no probability, so
its runs are always calibrated on the validation split (Platt scaling by default, evaluate/calibration.py)
from `logits`, the margins themselves; the SVM is fitted once, where CalibratedClassifierCV would refit it
once per calibration fold.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC, LinearSVR

from modelladder.models.classic import ClassicRung
from modelladder.schema import Strict


class TfidfRung(ClassicRung):
    """A ClassicRung on texts: a Pipeline of TfidfVectorizer and the linear model from `_linear_model`."""

    # the n-gram range (1 to ngram_max words), rare terms dropped, and the L2 strength
    search_space: ClassVar[dict[str, dict]] = {"model.ngram_max": {"low": 1, "high": 3, "int": True},
                    "model.min_df": {"low": 1, "high": 5, "int": True},
                    "model.C": {"low": 1e-2, "high": 1e2, "log": True}}

    input_kind = "text"

    def _flat(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=object)
        if X.ndim != 1:
            raise ValueError(f"model {self.cfg.name} needs a 1-D array of texts, got an array shaped {X.shape}")
        return X

    @abstractmethod
    def _linear_model(self):
        """The unfitted linear model on the TF-IDF features, for this config and task."""

    def _make_estimator(self) -> Pipeline:
        cfg = self.cfg
        tfidf = TfidfVectorizer(ngram_range=(1, cfg.ngram_max), min_df=cfg.min_df, max_features=cfg.max_features,
                                sublinear_tf=True)
        return Pipeline([("tfidf", tfidf), ("model", self._linear_model())])

    def n_params(self) -> int:
        """Weights (vocabulary x classes, or x 1 for two classes) plus intercepts."""
        model = self._fitted()[-1]
        return int(model.coef_.size + np.size(model.intercept_))


class TfidfLogRegConfig(Strict):
    name: Literal["tfidf_logreg"] = "tfidf_logreg"
    ngram_max: int = Field(2, ge=1)  # word n-grams of 1 to ngram_max words
    min_df: int = Field(2, ge=1)  # keep terms found in at least this many training texts
    max_features: int | None = Field(None, gt=0)  # keep only the most frequent terms; None: all
    C: float = Field(1.0, gt=0)  # inverse regularisation strength
    max_iter: int = Field(1000, gt=0)


class TfidfLogRegRung(TfidfRung):
    Config = TfidfLogRegConfig

    def _linear_model(self):
        if self.task == "regression":
            return Ridge(alpha=1 / (2 * self.cfg.C))
        return LogisticRegression(C=self.cfg.C, max_iter=self.cfg.max_iter, random_state=self.seed)


class TfidfSVMConfig(Strict):
    name: Literal["tfidf_svm"] = "tfidf_svm"
    ngram_max: int = Field(2, ge=1)  # word n-grams of 1 to ngram_max words
    min_df: int = Field(2, ge=1)  # keep terms found in at least this many training texts
    max_features: int | None = Field(None, gt=0)  # keep only the most frequent terms; None: all
    C: float = Field(1.0, gt=0)  # inverse regularisation strength
    max_iter: int = Field(1000, gt=0)


class TfidfSVMRung(TfidfRung):
    Config = TfidfSVMConfig
    outputs_margins = True

    def _linear_model(self):
        cls = LinearSVR if self.task == "regression" else LinearSVC
        return cls(C=self.cfg.C, max_iter=self.cfg.max_iter, random_state=self.seed)

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(N, n_outputs) SVM margins; a class absent from training gets -1e4 (probability 0 after a softmax)."""
        if self.task != "classification":
            raise ValueError(f"logits needs task 'classification', this rung was built for {self.task!r}")
        estimator = self._fitted()
        margins = estimator.decision_function(self._flat(X))
        if margins.ndim == 1:  # two classes: one margin m for classes_[1]; softmax([-m/2, m/2]) = sigmoid(m)
            margins = np.column_stack([-margins, margins]) / 2
        out = np.full((len(margins), self.n_outputs), -1e4, dtype=margins.dtype)
        out[:, estimator.classes_.astype(int)] = margins
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the SVM's margins: uncalibrated, no probability (runs calibrate it); absent classes get 0."""
        return softmax(self.logits(X), axis=1)
