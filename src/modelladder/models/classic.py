"""scikit-learn baselines wrapped as rungs, so the ladder, evaluation and serving treat them like any model.

A rung flattens its inputs to (N, features), fits one scikit-learn estimator (a classifier, or the
matching regressor for task 'regression') and is saved with skops, never pickle: loading trusts only
the scikit-learn types that rung itself saves.
"""

from __future__ import annotations

import math
import os
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from modelladder.errors import InputError
from modelladder.models.base import Rung
from modelladder.schema import Strict

TASKS = ("classification", "regression")
# what a truncated or foreign file makes skops raise while reading it
UNREADABLE = (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, EOFError)


class ClassicRung(Rung, ABC):
    """fit / predict_proba / predict / save / load / n_params or n_nodes around one scikit-learn estimator."""

    family = "classic"
    trusted_types: tuple[str, ...] = ()  # types outside skops' safe defaults that this rung's files hold

    def __init__(self, cfg: Strict, input_shape: tuple[int, ...], n_outputs: int, *, seed: int = 0,
                 task: str = "classification"):
        if task not in TASKS:
            raise InputError(f"model {cfg.name} supports task {' or '.join(map(repr, TASKS))}, got {task!r}")
        self.cfg, self.input_shape, self.n_outputs = cfg, tuple(input_shape), n_outputs
        self.seed, self.task = seed, task

    def _fitted(self):
        if not hasattr(self, "estimator_"):
            raise NotFittedError(f"model {self.cfg.name} is not fitted yet: call fit or load first")
        return self.estimator_

    @abstractmethod
    def _make_estimator(self):
        """The unfitted scikit-learn estimator for this config and task."""

    def estimator_name(self) -> str:
        """The scikit-learn estimator's class for this task ("Ridge" for a linear rung's regression), which
        summary.json and the leaderboard show next to the model's registered name."""
        return _names(_types(self._make_estimator()))

    def _flat(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X).reshape(len(X), math.prod(self.input_shape))

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClassicRung:
        if self.task == "classification":
            y = np.asarray(y)
            if y.size and (y.min() < 0 or y.max() >= self.n_outputs):
                raise ValueError(f"class labels must lie in [0, {self.n_outputs}), got {y.min()}..{y.max()}")
        self.estimator_ = self._make_estimator().fit(self._flat(X), y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, n_outputs) probabilities; a class absent from the training labels gets probability 0."""
        if self.task != "classification":
            raise ValueError(f"predict_proba needs task 'classification', this rung was built for {self.task!r}")
        estimator = self._fitted()
        proba = estimator.predict_proba(self._flat(X))
        out = np.zeros((len(proba), self.n_outputs), dtype=proba.dtype)
        out[:, estimator.classes_.astype(int)] = proba
        return out

    def logits(self, X: np.ndarray) -> np.ndarray:
        """(N, n_outputs) scores that calibration rescales (serve/calibration.py): the log of predict_proba,
        floored at 1e-12 so that a class given probability 0 keeps a finite logit."""
        return np.log(np.clip(self.predict_proba(X), 1e-12, None))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices for classification, values for regression."""
        out = self._fitted().predict(self._flat(X))
        return out.astype(np.int64) if self.task == "classification" else out

    def n_params(self) -> int | None:
        """The fitted model's weights, the counterpart of a network's parameter count; None for trees."""
        return None

    def n_nodes(self) -> int | None:
        """Tree rungs: the fitted trees' node count (a size in its own column, never under params)."""
        return None

    @contextmanager
    def one_job(self) -> Iterator[None]:
        """Inside the block the fitted estimator (every Pipeline step too) predicts with n_jobs=1, as every rung's
        latency is measured (evaluate/cost.py one_thread); the settings are restored afterwards."""
        estimator = self._fitted()
        jobs = {k: v for k, v in estimator.get_params().items() if k == "n_jobs" or k.endswith("__n_jobs")}
        estimator.set_params(**dict.fromkeys(jobs, 1))
        try:
            yield
        finally:
            estimator.set_params(**jobs)

    def save(self, path: Path) -> None:
        dump_skops(self._fitted(), path)

    @classmethod
    def load(cls, path: Path, cfg: Strict, input_shape: tuple[int, ...], n_outputs: int, *,
             task: str = "classification") -> ClassicRung:
        rung = cls(cfg, input_shape, n_outputs, task=task)
        estimator = load_skops(path, cls.trusted_types, cfg.name)
        expected = _types(rung._make_estimator())
        if _types(estimator) != expected:
            raise InputError(f"model file {path} holds a {_names(_types(estimator))}, "
                             f"model {cfg.name} for task {task!r} expects a {_names(expected)}")
        if task == "classification" and estimator.classes_.max() >= n_outputs:
            raise InputError(f"model file {path} predicts class {estimator.classes_.max()}, "
                             f"but the data has only {n_outputs} classes")
        rung.estimator_ = estimator
        return rung


def dump_skops(obj, path: Path) -> None:
    """`obj` as a skops file, written under a temporary name and renamed, so a crash leaves no half file."""
    import skops.io as sio  # imported here: it takes ~2 s, and only saving and loading need it

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        sio.dump(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_skops(path: Path, trusted: tuple[str, ...], model: str):
    """What the skops file at `path` holds, trusting skops' safe defaults and `trusted` only; an InputError naming
    the file (and `model`) for an unreadable file or one holding other types. Never unpickles."""
    import skops.io as sio

    path = Path(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except UNREADABLE as err:
        raise InputError(f"model file {path} is not a readable skops file: {err}") from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise InputError(f"model file {path} holds types that model {model} does not trust: {refused}")
    try:
        return sio.load(path, trusted=untrusted)
    except UNREADABLE as err:
        raise InputError(f"model file {path} is not a readable skops file: {err}") from None


def _types(estimator) -> tuple[type, ...]:
    """The estimator's class, or its steps' classes for a Pipeline (so a file's steps must match too)."""
    if isinstance(estimator, Pipeline):
        return tuple(type(step) for _, step in estimator.steps)
    return (type(estimator),)


def _names(types: tuple[type, ...]) -> str:
    return " + ".join(t.__name__ for t in types)


class LogisticRegressionConfig(Strict):
    name: Literal["logreg"] = "logreg"
    C: float = Field(1.0, gt=0)  # inverse regularisation strength (Ridge's alpha = 1 / (2C) for regression)
    max_iter: int = Field(1000, gt=0)  # LogisticRegression's solver iterations (Ridge solves in closed form)


class LogisticRegressionRung(ClassicRung):
    """Logistic regression; for regression, Ridge with alpha = 1 / (2C), the same L2 penalty per sample loss.
    Registered as `logreg` (older configs) and as `linear` (LinearRung), the name that fits both tasks."""

    Config = LogisticRegressionConfig
    search_space: ClassVar[dict[str, dict]] = {"model.C": {"low": 1e-3, "high": 1e2, "log": True}}  # the L2 strength; max_iter only converges

    def _make_estimator(self):
        if self.task == "regression":
            return Ridge(alpha=1 / (2 * self.cfg.C))
        return LogisticRegression(C=self.cfg.C, max_iter=self.cfg.max_iter, random_state=self.seed)

    def n_params(self) -> int:
        """Weights plus intercepts."""
        estimator = self._fitted()
        return int(estimator.coef_.size + np.size(estimator.intercept_))


class LinearConfig(LogisticRegressionConfig):
    name: Literal["linear"] = "linear"


class LinearRung(LogisticRegressionRung):
    """The linear rung: LogisticRegression for task classification, Ridge (alpha = 1 / (2C)) for regression."""

    Config = LinearConfig


class RandomForestConfig(Strict):
    name: Literal["random_forest"] = "random_forest"
    n_estimators: int = Field(200, gt=0)
    max_depth: int | None = Field(None, gt=0)  # None grows each tree until its leaves are pure
    min_samples_leaf: int = Field(1, gt=0)
    n_jobs: int = Field(2, gt=0)  # worker processes; a fixed number so timings compare across machines


class RandomForestRung(ClassicRung):
    Config = RandomForestConfig
    # None: trees grown until their leaves are pure
    search_space: ClassVar[dict[str, dict]] = {"model.n_estimators": {"low": 50, "high": 500, "int": True, "log": True},
                    "model.max_depth": {"choices": [None, 4, 8, 16, 32]},
                    "model.min_samples_leaf": {"low": 1, "high": 20, "int": True, "log": True}}
    trusted_types = ("sklearn.tree._tree.Tree",)
    tree_output = "probability"

    def _make_estimator(self):
        cls = RandomForestRegressor if self.task == "regression" else RandomForestClassifier
        cfg = self.cfg
        return cls(n_estimators=cfg.n_estimators, max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                   n_jobs=cfg.n_jobs, random_state=self.seed)

    def n_nodes(self) -> int:
        """The total node count over all trees."""
        return int(sum(tree.tree_.node_count for tree in self._fitted().estimators_))


class HistGradientBoostingConfig(Strict):
    name: Literal["hist_gb"] = "hist_gb"
    learning_rate: float = Field(0.1, gt=0)
    max_iter: int = Field(200, gt=0)  # boosting rounds
    max_leaf_nodes: int = Field(31, ge=2)
    early_stopping: Literal["auto", True, False] = "auto"  # 'auto': on when there are over 10,000 samples


class HistGradientBoostingRung(ClassicRung):
    Config = HistGradientBoostingConfig
    search_space: ClassVar[dict[str, dict]] = {"model.learning_rate": {"low": 0.01, "high": 0.3, "log": True},
                    "model.max_iter": {"low": 50, "high": 500, "int": True, "log": True},
                    "model.max_leaf_nodes": {"low": 8, "high": 128, "int": True, "log": True}}
    trusted_types = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
    tree_output = "log-odds"

    def _make_estimator(self):
        cls = HistGradientBoostingRegressor if self.task == "regression" else HistGradientBoostingClassifier
        cfg = self.cfg
        return cls(learning_rate=cfg.learning_rate, max_iter=cfg.max_iter, max_leaf_nodes=cfg.max_leaf_nodes,
                   early_stopping=cfg.early_stopping, random_state=self.seed)

    def n_nodes(self) -> int:
        """The total node count over all boosted trees."""
        return int(sum(len(tree.nodes) for round_ in self._fitted()._predictors for tree in round_))
