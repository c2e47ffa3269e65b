"""How much one rung gains over another, with a 95% interval, from paired scores on the same data.

Holdout: `paired_bootstrap` resamples the test rows (the same rows for both rungs) with scipy's
bootstrap. K-fold: `corrected_t_interval` on the paired fold scores, with the Nadeau & Bengio
variance correction for overlapping training sets (the test in evaluate/significance.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelladder.evaluate import significance

CONFIDENCE = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Difference:
    """b minus a, with its interval and how the interval was made."""

    value: float
    low: float
    high: float
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def paired_bootstrap(a, b, *, seed: int, n: int = RESAMPLES, statistic=None) -> Difference:
    """mean(b) - mean(a) over per-example values (1/0 for correct, squared errors, ...) of the same rows,
    with a seeded percentile interval from `n` paired resamples of the rows.

    `statistic(*columns)` replaces the mean for a metric that is not a mean of per-row values: then `a`
    and `b` are tuples of columns (e.g. (y_true, y_pred)) and the difference is statistic(*b) - statistic(*a).
    """
    from scipy import stats

    a_cols, b_cols = (a, b) if statistic is not None else ((a,), (b,))
    a_cols = [np.asarray(c) for c in a_cols]
    b_cols = [np.asarray(c) for c in b_cols]
    lengths = {len(c) for c in a_cols + b_cols}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"paired scores need the same non-zero number of rows on both sides, got {sorted(lengths)}")
    k = len(a_cols)
    stat = statistic or (lambda x: float(np.mean(x)))

    def difference(*cols):
        return stat(*cols[k:]) - stat(*cols[:k])

    value = difference(*a_cols, *b_cols)
    if lengths == {1}:
        return Difference(value, value, value, "paired bootstrap")
    result = stats.bootstrap((*a_cols, *b_cols), difference, paired=True, vectorized=False, n_resamples=n,
                             confidence_level=CONFIDENCE, method="percentile", random_state=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Difference(float(value), float(low), float(high), f"paired bootstrap, {n} resamples")


def corrected_t_interval(a, b, *, n_train: float, n_test: float) -> Difference:
    """mean(b - a) over paired fold scores, with the corrected resampled t interval (Nadeau & Bengio, 2003) of
    evaluate/significance.py applied to the differences."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) < 2:
        raise ValueError(f"the corrected t interval needs at least 2 paired fold scores, got {len(d)}")
    low, high = significance.corrected_t_interval(d, n_train=n_train, n_test=n_test, level=CONFIDENCE)
    return Difference(float(d.mean()), low, high, f"corrected resampled t, {len(d)} folds")
