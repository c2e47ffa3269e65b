"""SHAP values for table rows and images: TreeExplainer for the tree rungs (exact and fast), and the
model-agnostic KernelExplainer for every other rung, on a k-means summary of the training features.

Values are per model feature; callers sum them over a column's one-hot features (SHAP values add up).
TreeExplainer explains what the trees output (the rung's tree_output: probabilities for random_forest,
log-odds for hist_gb).
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 10  # k-means centres standing for the training data (KernelExplainer's cost grows with them)


def is_tree(predictor) -> bool:
    """Whether TreeExplainer explains the predictor's rung (models/classic.py tree_output)."""
    return predictor.model.tree_output is not None


def output_units(predictor) -> str:
    return predictor.model.tree_output if is_tree(predictor) else "probability"


def shap_values(predictor, X: np.ndarray, targets: np.ndarray, background: np.ndarray, *, seed: int) -> np.ndarray:
    """(N, features) SHAP values of each row of X (features in the model's input shape) for its target class."""
    flat = np.asarray(X, np.float64).reshape(len(X), -1)
    if is_tree(predictor):
        return _tree(predictor.model.estimator_, flat, targets)
    return _kernel(predictor, flat, targets, np.asarray(background).reshape(len(background), -1), seed)


def _tree(estimator, flat: np.ndarray, targets: np.ndarray) -> np.ndarray:
    import shap

    values = shap.TreeExplainer(estimator)(flat).values
    classes = list(estimator.classes_.astype(int))
    if values.ndim == 2:  # a binary booster explains one margin, the log-odds of classes[1]
        sign = np.where(targets == classes[1], 1.0, -1.0)
        return values * sign[:, None]
    return values[np.arange(len(flat)), :, [classes.index(t) for t in targets]]


def _kernel(predictor, flat: np.ndarray, targets: np.ndarray, background: np.ndarray, seed: int) -> np.ndarray:
    import shap

    shape = tuple(predictor.preprocess["input_shape"])

    def probabilities(rows):
        return predictor.scores(np.asarray(rows, np.float32).reshape(len(rows), *shape))

    centres = shap.kmeans(background, min(BACKGROUND, len(background)))
    explainer = shap.KernelExplainer(probabilities, centres)
    n_features = flat.shape[1]
    samples = 2 * n_features + 2048 if n_features <= 100 else 2048
    # KernelExplainer draws its coalitions from numpy's global generator: seed it for this call only
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        values = explainer.shap_values(flat, nsamples=samples, l1_reg=False, silent=True)
    finally:
        np.random.set_state(state)
    values = np.asarray(values)  # (N, features, classes)
    return values[np.arange(len(flat)), :, targets]
