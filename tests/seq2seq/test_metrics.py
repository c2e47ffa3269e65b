"""WER / PER / exact match against the closest of several references, and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_corpus_bleu_and_chrf_are_sacrebleus_with_a_seeded_interval():
    import sacrebleu

    from modelladder.evaluate.seq2seq import corpus_metrics

    hyps = ["the cat sat on the mat", "a dog barks", "hello there world", "", "one two three four"] * 8
    refs = [("the cat sat on a mat", "a cat sat on the mat"), ("the dog barks",), ("hello world there",), ("x",),
            ("one two three four",)] * 8
    values, intervals, signatures = corpus_metrics(hyps, refs, seed=0)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(2)]
    assert values["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
    assert values["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, streams).score)
    for name in ("bleu", "chrf"):
        assert 0 <= intervals[name][0] <= values[name] <= intervals[name][1] <= 100
    assert "tok:13a" in signatures["bleu"] and "nc:6|nw:0" in signatures["chrf"]
    assert corpus_metrics(hyps, refs, ("chrf",), seed=0)[1]["chrf"] == intervals["chrf"]  # seeded: the same draws
    with pytest.raises(ValueError, match="corpus metrics are"):
        corpus_metrics(hyps, refs, ("ter",), seed=0)
