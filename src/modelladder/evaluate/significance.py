"""Whether two rungs differ: paired tests on their fold scores against the best rung."""

from __future__ import annotations

import math

import numpy as np

ALPHA = 0.05  # a difference with p below this is called significant


def compare_to_best(rows: list[dict], records: list[list[dict]], metric: str, mode: str) -> None:
    """Add p_value (corrected resampled t-test), wilcoxon_p and significant (p < ALPHA) to every row,
    pairing its fold values of `metric` with the best row's (highest mean for mode 'max', lowest for
    'min'); the best row gets None for all three."""
    means = [row[f"val_{metric}_mean"] for row in rows]
    best = int(np.argmax(means) if mode == "max" else np.argmin(means))
    ref = records[best]
    n_train = float(np.mean([r["n_train"] for r in ref]))
    n_test = float(np.mean([r["n_val"] for r in ref]))
    for i, (row, recs) in enumerate(zip(rows, records)):
        if i == best:
            row |= {"p_value": None, "wilcoxon_p": None, "significant": None}
            continue
        a = [r["metrics"][metric] for r in ref]
        b = [r["metrics"][metric] for r in recs]
        _, p = corrected_ttest(a, b, n_train=n_train, n_test=n_test)
        row |= {"p_value": round(p, 4), "wilcoxon_p": round(wilcoxon_p(a, b), 4), "significant": p < ALPHA}


def corrected_ttest(a, b, *, n_train: float, n_test: float) -> tuple[float, float]:
    """(t, two-sided p) of the corrected resampled t-test (Nadeau & Bengio, 2003) on paired fold scores.

    With d_j = a_j - b_j over J folds: t = mean(d) / sqrt((1/J + n_test/n_train) * var(d)), var with
    ddof 1, on J - 1 degrees of freedom. The n_test/n_train term accounts for the overlap of the
    training sets, which makes the plain paired t-test far too eager. Identical scores give
    p = 1; a constant non-zero difference gives p = 0.
    """
    from scipy import stats

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        raise ValueError(f"the corrected t-test needs at least 2 paired scores, got {len(d)}")
    mean, var = d.mean(), d.var(ddof=1)
    if var == 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / math.sqrt((1 / len(d) + n_test / n_train) * var)
    return float(t), float(2 * stats.t.sf(abs(t), df=len(d) - 1))


def wilcoxon_p(a, b) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on paired scores (1 when they are all equal)."""
    from scipy import stats

    if np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)
