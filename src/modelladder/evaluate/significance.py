"""Whether rungs differ: every rung against the best one on the task's headline metric, with Holm's
correction over the k - 1 comparisons, since the best was picked on the very data it is compared on.

Holdout (compare_holdout): paired on the test examples, an exact McNemar test on correct / incorrect
for accuracy and a paired bootstrap for any other metric. Seq2seq (compare_sequences): paired on the test
sources, exact McNemar on right / wrong outputs for WER, and a paired bootstrap of PER (summed edits over summed
reference lengths) beside it. K-fold (compare_to_best): paired on the
folds, the corrected resampled t-test (Nadeau & Bengio), and Wilcoxon's signed-rank test only where
it can reach ALPHA at all.
"""

from __future__ import annotations

import math

import numpy as np

from modelladder.evaluate.intervals import RANGES, RESAMPLES, counts, vectorised

ALPHA = 0.05  # a difference with Holm-adjusted p below this is called significant
# the smallest two-sided p of the exact signed-rank test on J pairs is 2 / 2**J: below ALPHA from 6 pairs
WILCOXON_MIN_PAIRS = 6
NO_TEST = {"test": None, "p_value": None, "p_adj": None, "significant": None, "best": True}


def best_index(values: list[float], mode: str) -> int:
    """The position of the best value (the first one on ties): highest for mode 'max', lowest for 'min'."""
    return int(np.argmax(values) if mode == "max" else np.argmin(values))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (statsmodels), in the order given."""
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, alpha=ALPHA, method="holm")[1]]


def _finish(rows: list[dict], best: int, test: str, raw: dict[int, float], extra: dict[int, dict]) -> None:
    """Write test, p_value, p_adj (Holm over the comparisons), significant and best into every row."""
    others = sorted(raw)
    adjusted = dict(zip(others, holm([raw[i] for i in others])))
    for i, row in enumerate(rows):
        if i == best:
            row |= NO_TEST
            continue
        row |= {"test": test, "p_value": _sig(raw[i]), "p_adj": _sig(adjusted[i]),
                "significant": bool(adjusted[i] < ALPHA), "best": False} | extra.get(i, {})


def _sig(p: float | None) -> float | None:
    return None if p is None else float(f"{p:.4g}")


# ---------------------------------------------------------------- holdout


def compare_holdout(rows: list[dict], y: np.ndarray, scores: list[np.ndarray], metric: str, mode: str, *,
                    split: str, classification: bool, seed: int) -> None:
    """Compare every row with the best on `metric` (its `<split>_<metric>` value, mode 'max' or 'min'),
    paired on the same examples: rung i's `scores[i]` (class probabilities, or predictions) against the
    truths `y`. Adds test ("mcnemar-exact" or "paired-bootstrap"), p_value, p_adj, significant and best."""
    best = best_index([row[f"{split}_{metric}"] for row in rows], mode)
    if metric == "accuracy" and classification:
        correct = [np.asarray(s).argmax(axis=1) == y for s in scores]
        raw = {i: mcnemar_p(correct[best], correct[i]) for i in range(len(rows)) if i != best}
        _finish(rows, best, "mcnemar-exact", raw, {})
        return
    raw = {i: paired_bootstrap_p(metric, y, scores[best], scores[i], classification=classification, seed=seed)
           for i in range(len(rows)) if i != best}
    _finish(rows, best, "paired-bootstrap", raw, {})


def mcnemar_p(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Exact (binomial) McNemar p on two rungs' paired correct / incorrect answers (statsmodels)."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    return float(mcnemar(table, exact=True).pvalue)


def paired_bootstrap_p(metric: str, y, scores_a, scores_b, *, classification: bool, seed: int,
                       resamples: int = RESAMPLES) -> float:
    """Two-sided p of the paired bootstrap test of metric(a) - metric(b) = 0: both rungs scored on the same
    resamples of the examples; p is the share of resampled differences, centred on the observed one, at
    least as far from it as the observed difference is from 0 (with the usual +1 on both counts)."""
    f = vectorised(metric, classification=classification)
    if f is None:
        raise ValueError(f"no paired bootstrap for metric '{metric}'")
    y = np.asarray(y)
    a, b = (np.asarray(s, dtype=np.float64) for s in (scores_a, scores_b))
    if classification:
        a, b = a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True)
    ones = np.ones((1, len(y)))
    observed = float(f(ones, y, a)[0] - f(ones, y, b)[0])
    diffs = np.concatenate([f(w, y, a) - f(w, y, b) for _, w in counts(len(y), seed, resamples)])
    return _bootstrap_p(observed, diffs)


def _bootstrap_p(observed: float, diffs: np.ndarray) -> float:
    """The share of resampled differences, centred on the observed one, at least as far from it as `observed`
    is from 0, with +1 on both counts (NaN draws left out)."""
    diffs = diffs[~np.isnan(diffs)]
    extreme = int(np.sum(np.abs(diffs - observed) >= abs(observed)))
    return (extreme + 1) / (len(diffs) + 1)


# ---------------------------------------------------------------- seq2seq


def compare_sequences(rows: list[dict], scores: list[dict[str, np.ndarray]], metric: str, mode: str, *,
                      split: str, seed: int) -> None:
    """compare_holdout for seq2seq rungs, paired on the same test sources: rung i's `scores[i]` are its
    per-source "word_error" (0/1), "phoneme_errors" and "phoneme_count" (evaluate/seq2seq.py sequence_scores).
    WER or exact match: exact McNemar on right / wrong; PER: the paired bootstrap of PER. With WER the rows also
    get per_p_adj: PER's paired bootstrap against the same best rung, Holm-adjusted over the comparisons."""
    best = best_index([row[f"{split}_{metric}"] for row in rows], mode)
    others = [i for i in range(len(rows)) if i != best]
    per = {i: paired_per_p(scores[best], scores[i], seed=seed) for i in others}
    if metric == "per":
        _finish(rows, best, "paired-bootstrap", per, {})
        return
    if metric not in ("wer", "exact_match"):
        raise ValueError(f"no paired test for seq2seq metric '{metric}'")
    right = [np.asarray(s["word_error"]) == 0 for s in scores]
    raw = {i: mcnemar_p(right[best], right[i]) for i in others}
    extra = {i: {"per_p_adj": _sig(p)} for i, p in zip(others, holm([per[i] for i in others]))}
    _finish(rows, best, "mcnemar-exact", raw, extra)
    rows[best]["per_p_adj"] = None


def paired_per_p(a: dict[str, np.ndarray], b: dict[str, np.ndarray], *, seed: int, resamples: int = RESAMPLES) -> float:
    """Two-sided p of the paired bootstrap test of PER(a) - PER(b) = 0, both rungs' summed edits and reference
    lengths taken over the same resamples of the sources (as paired_bootstrap_p)."""
    n = len(a["phoneme_errors"])
    if n == 0 or len(b["phoneme_errors"]) != n:
        raise ValueError(f"paired PER needs the same non-zero number of sources, got {n} and {len(b['phoneme_errors'])}")

    def per(weights, s):
        return weights @ np.asarray(s["phoneme_errors"], np.float64) / np.maximum(
            weights @ np.asarray(s["phoneme_count"], np.float64), 1)

    ones = np.ones((1, n))
    observed = float(per(ones, a)[0] - per(ones, b)[0])
    return _bootstrap_p(observed, np.concatenate([per(w, a) - per(w, b) for _, w in counts(n, seed, resamples)]))


# ---------------------------------------------------------------- k-fold


def compare_to_best(rows: list[dict], records: list[list[dict]], metric: str, mode: str) -> None:
    """Compare every k-fold row with the best on cv_<metric>_mean, pairing their fold values of `metric`:
    test "corrected-t", p_value, p_adj (Holm), significant, best, and wilcoxon_p.

    wilcoxon_p is None unless the signed-rank test can reach ALPHA at all: it needs at least
    WILCOXON_MIN_PAIRS folds (its smallest two-sided p is 2 / 2**J: 0.0625 at 5 folds) and a single
    repeat, since the folds of different repeats overlap and are not independent pairs.
    """
    best = best_index([row[f"cv_{metric}_mean"] for row in rows], mode)
    ref = records[best]
    n_train = float(np.mean([r["n_train"] for r in ref]))
    n_test = float(np.mean([r["n_test"] for r in ref]))
    single_repeat = len({r["repeat"] for r in ref}) == 1
    a = [r["metrics"][metric] for r in ref]
    raw, extra = {}, {}
    for i, recs in enumerate(records):
        if i == best:
            continue
        b = [r["metrics"][metric] for r in recs]
        raw[i] = corrected_ttest(a, b, n_train=n_train, n_test=n_test)[1]
        usable = single_repeat and len(a) >= WILCOXON_MIN_PAIRS
        extra[i] = {"wilcoxon_p": _sig(wilcoxon_p(a, b)) if usable else None}
    _finish(rows, best, "corrected-t", raw, extra)
    rows[best]["wilcoxon_p"] = None


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


def corrected_t_interval(values, *, n_train: float, n_test: float, metric: str | None = None,
                         level: float = 0.95) -> tuple[float, float]:
    """The corrected resampled t interval of the mean of J fold scores: mean ± t_{J-1} * sqrt((1/J +
    n_test/n_train) * var), clipped to the metric's range (intervals.RANGES) when it has one."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()), float(x.mean())
    half = stats.t.ppf((1 + level) / 2, df=len(x) - 1) * math.sqrt((1 / len(x) + n_test / n_train) * x.var(ddof=1))
    low, high = x.mean() - half, x.mean() + half
    if metric in RANGES:
        low, high = np.clip([low, high], *RANGES[metric])
    return float(low), float(high)


def wilcoxon_p(a, b) -> float:
    """Two-sided p of the Wilcoxon signed-rank test on paired scores (1 when they are all equal)."""
    from scipy import stats

    if np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)
