"""The G2P benchmark's helpers: CMUdict's split by word and the error rates with alternative pronunciations.
Sequitur itself runs only in the benchmark (its own environment, minutes): not here."""

from __future__ import annotations

import pytest

from benchmarks.g2p import cmudict_split, error_rates


def test_the_split_is_by_word_90_5_5_without_stress():
    train, test = cmudict_split()
    train_words = {w for w, _ in train}
    assert not train_words & set(test)
    assert 0.049 < len(test) / (len(train_words) + 2 * len(test)) < 0.051
    assert not any(ch.isdigit() for _, p in train[:1000] for ch in p)
    assert sum(len(refs) > 1 for refs in test.values()) > 100  # alternatives are kept for scoring
    assert list(test)[:3] == ["villers", "stoker", "inconclusive"]  # fixed (seed 18), whatever the run's seed


def test_a_prediction_is_right_if_it_matches_any_pronunciation():
    refs = {"either": ["IY DH ER", "AY DH ER"], "ladder": ["L AE D ER"]}
    assert error_rates({"either": "AY DH ER", "ladder": "L AE D ER"}, refs) == {"wer": 0.0, "per": 0.0}
    rates = error_rates({"either": "AY D ER", "ladder": "L AE T"}, refs)  # 1 error of 3, 2 errors of 4
    assert rates["wer"] == 1.0 and rates["per"] == pytest.approx(3 / 7)
    assert error_rates({}, refs)["per"] == 1.0  # a word without a prediction: every phoneme missing
