"""Sequence-to-sequence metrics: word error rate, phoneme (symbol) error rate and exact match, with intervals.

A hypothesis is scored against the CLOSEST of its references (the fewest edits), as published G2P work scores
words with several pronunciations: it is a word error unless it equals one of them, and its symbol errors are the
edit distance (substitutions, insertions, deletions; rapidfuzz's Levenshtein over symbol lists) to the closest
reference, whose length is what the PER divides by. WER and exact match are proportions of independent words
(Wilson intervals); PER is a ratio of sums, whose interval is a seeded bootstrap over words (evaluate/intervals.py).

Parallel text (translation) also gets corpus BLEU and chrF through sacrebleu, on its 0-100 scale, with sacrebleu's
defaults: BLEU over the 13a tokenisation (sacrebleu's standard detokenised-text tokeniser), 4-grams, exponential
smoothing; chrF over character 6-grams (no word n-grams: chrF, not chrF++), beta 2. Every reference of a source
counts (a source with fewer references than others: sacrebleu's variable number of references). Both are corpus
statistics, not means over sentences: their interval resamples the sources with the run's seed (the same counts as
PER's bootstrap), sums each resample's per-sentence sacrebleu statistics and scores the sums, so the seed is the
run's, not sacrebleu's SACREBLEU_SEED environment variable.
"""

from __future__ import annotations

import numpy as np
from rapidfuzz.distance import Levenshtein

from modelladder.data.seq2seq import CORPUS_METRICS
from modelladder.evaluate.intervals import RESAMPLES, counts, percentile_interval, wilson

PROPORTIONS = ("wer", "exact_match")  # shares of independent sources: Wilson intervals


def sequence_scores(hypotheses: list[str], references: list[tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Per example: "word_error" (0/1), "phoneme_errors" (edits to the closest reference) and "phoneme_count"
    (that reference's length in symbols)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    word_error = np.zeros(len(hypotheses), dtype=np.int64)
    errors = np.zeros(len(hypotheses), dtype=np.int64)
    lengths = np.zeros(len(hypotheses), dtype=np.int64)
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if isinstance(refs, str):
            refs = (refs,)
        symbols = hyp.split()
        best = min(((Levenshtein.distance(symbols, ref.split()), len(ref.split())) for ref in refs),
                   key=lambda pair: (pair[0], -pair[1]))
        errors[i], lengths[i] = best
        word_error[i] = int(best[0] > 0)
    return {"word_error": word_error, "phoneme_errors": errors, "phoneme_count": lengths}


def metrics_from_scores(scores: dict[str, np.ndarray]) -> dict[str, float]:
    n = len(scores["word_error"])
    wer = float(scores["word_error"].mean()) if n else float("nan")
    per = float(scores["phoneme_errors"].sum() / max(int(scores["phoneme_count"].sum()), 1))
    exact = float((scores["word_error"] == 0).mean()) if n else float("nan")
    return {"wer": wer, "per": per, "exact_match": exact}


def sequence_metrics(hypotheses: list[str], references: list[tuple[str, ...]]) -> dict[str, float]:
    """{"wer", "per", "exact_match"} as fractions in [0, 1] (PER = sum of edits / sum of reference lengths)."""
    return metrics_from_scores(sequence_scores(hypotheses, references))


def sequence_intervals(scores: dict[str, np.ndarray], *, seed: int,
                       resamples: int = RESAMPLES) -> tuple[dict[str, list[float]], dict[str, str]]:
    """({metric: [low, high]}, {metric: method}) at 95%: Wilson for WER and exact match, a bootstrap for PER."""
    n, wrong = len(scores["word_error"]), int(scores["word_error"].sum())
    intervals = {"wer": wilson(wrong, n), "exact_match": wilson(n - wrong, n)}
    draws = []
    for _, weights in counts(n, seed, resamples):
        draws.append(weights @ scores["phoneme_errors"] / np.maximum(weights @ scores["phoneme_count"], 1))
    intervals["per"] = percentile_interval(np.concatenate(draws), (0.0, np.inf))
    methods = {"wer": "wilson", "exact_match": "wilson", "per": "bootstrap"}
    return {k: intervals[k] for k in ("wer", "per", "exact_match")}, {k: methods[k] for k in ("wer", "per",
                                                                                             "exact_match")}


def corpus_metrics(hypotheses: list[str], references: list[tuple[str, ...]], names=CORPUS_METRICS, *, seed: int,
                   resamples: int = RESAMPLES) -> tuple[dict[str, float], dict[str, list[float]], dict[str, str]]:
    """({name: value}, {name: [low, high]} at 95%, {name: sacrebleu's signature}) for corpus BLEU and / or chrF of
    `names`, 0-100 (module docstring); the signature says how it was tokenised and scored."""
    unknown = [n for n in names if n not in CORPUS_METRICS]
    if unknown:
        raise ValueError(f"corpus metrics are {CORPUS_METRICS}, got {unknown}")
    references = [(refs,) if isinstance(refs, str) else tuple(refs) for refs in references]
    width = max((len(refs) for refs in references), default=1)
    streams = [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]
    values, intervals, signatures = {}, {}, {}
    for name in names:
        metric = _sacrebleu(name)
        # per-sentence sufficient statistics (what sacrebleu's own bootstrap resamples), summed per resample
        stats = np.asarray(metric._extract_corpus_statistics(list(hypotheses), streams), dtype=np.float64)
        values[name] = float(metric._compute_score_from_stats(stats.sum(0)).score)
        draws = [metric._compute_score_from_stats(row).score
                 for _, weights in counts(len(stats), seed, resamples) for row in weights @ stats]
        intervals[name] = percentile_interval(np.asarray(draws, dtype=np.float64), (0.0, 100.0))
        signatures[name] = str(metric.get_signature())
    return values, intervals, signatures


def _sacrebleu(name: str):
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU() if name == "bleu" else CHRF()
