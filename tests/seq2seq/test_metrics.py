"""WER / PER / exact match against the closest of several references, and their intervals."""

from __future__ import annotations

import numpy as np

from modelladder.evaluate.seq2seq import sequence_intervals, sequence_metrics, sequence_scores


def test_closest_reference_counts():
    hyps = ["L AE D ER", "T OW", "A B"]
    refs = [("L AE D ER",), ("T UW", "T OW Z"), ("A",)]
    scores = sequence_scores(hyps, refs)
    assert scores["word_error"].tolist() == [0, 1, 1]
    assert scores["phoneme_errors"].tolist() == [0, 1, 1]
    assert scores["phoneme_count"].tolist() == [4, 3, 1]  # a tie in edits: the longer reference
    metrics = sequence_metrics(hyps, refs)
    assert metrics["wer"] == 2 / 3 and metrics["exact_match"] == 1 / 3 and metrics["per"] == 2 / 8


def test_any_reference_makes_a_word_right():
    assert sequence_metrics(["R IH K AO R D"], [("R EH K ER D", "R IH K AO R D")])["wer"] == 0.0


def test_intervals_cover_the_estimates():
    rng = np.random.default_rng(0)
    hyps = [" ".join(rng.choice(list("ABC"), size=4)) for _ in range(200)]
    refs = [("A B C A",) for _ in range(200)]
    scores = sequence_scores(hyps, refs)
    metrics = sequence_metrics(hyps, refs)
    intervals, methods = sequence_intervals(scores, seed=0)
    assert methods == {"wer": "wilson", "per": "bootstrap", "exact_match": "wilson"}
    for name, (low, high) in intervals.items():
        assert low <= metrics[name] <= high
