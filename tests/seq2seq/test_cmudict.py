"""Dataset cmudict: parsing, the fixed split by word, data.limit, stress, and what the bundle holds."""

from __future__ import annotations

import numpy as np
import pytest

from modelladder.config import DataConfig
from modelladder.data.cmudict import read_dictionary, split_words
from modelladder.data.load import load_data
from modelladder.errors import InputError

SAMPLE = """a AH0
a(2) EY1
aalborg AO1 L B AO0 R G # place, danish
aalborg(2) AA1 L B AO0 R G
record R EH1 K ER0 D
record(2) R IH0 K AO1 R D
record(3) R EH0 K ER0 D
"""


def test_comments_variants_and_stress():
    plain = read_dictionary(SAMPLE, stress=False)
    assert plain["a"] == ["AH", "EY"]
    assert plain["aalborg"] == ["AO L B AO R G", "AA L B AO R G"]  # the comment is gone
    assert plain["record"] == ["R EH K ER D", "R IH K AO R D"]  # (3) differs from (1) in stress only
    stressed = read_dictionary(SAMPLE, stress=True)
    assert stressed["record"] == ["R EH1 K ER0 D", "R IH0 K AO1 R D", "R EH0 K ER0 D"]


def test_the_split_is_by_word_fixed_and_a_limit_keeps_part_of_it():
    words = [f"w{i}" for i in range(1000)]
    full = split_words(words, None)
    assert [len(full[s]) for s in ("train", "val", "test")] == [900, 50, 50]
    assert not set(full["train"]) & set(full["test"]) and not set(full["val"]) & set(full["test"])
    assert split_words(words, None) == full  # the same words whatever the run's seed
    small = split_words(words, 100)
    assert [len(small[s]) for s in ("train", "val", "test")] == [90, 5, 5]
    assert all(set(small[s]) <= set(full[s]) for s in small)


@pytest.fixture(scope="module")
def bundle():
    return load_data(DataConfig(dataset="cmudict", limit=400), seed=0, task="seq2seq")


def test_the_bundle(bundle):
    assert bundle.kind == "seq2seq" and bundle.input_shape == () and bundle.classes == []
    assert len(bundle.X_val) == len(bundle.y_val) == 20 and len(bundle.X_test) == 20
    assert all(isinstance(refs, tuple) and len(refs) == 1 for refs in bundle.y_train)  # one row per pronunciation
    assert all(isinstance(refs, tuple) and len(refs) >= 1 for refs in bundle.y_test)  # all of a word's
    assert not set(bundle.X_train) & set(bundle.X_test)
    assert all(not any(c.isdigit() for c in ref) for refs in bundle.y_train for ref in refs)
    vocab = bundle.preprocess["target_vocab"]
    assert vocab[:4] == ["<pad>", "<s>", "</s>", "<unk>"] and bundle.n_outputs == len(vocab)
    assert bundle.preprocess["split_words"]["test"] == list(bundle.X_test)
    assert bundle.preprocess["source_units"] == "chars" and bundle.preprocess["target_units"] == "symbols"


def test_words_with_several_pronunciations_stay_together(bundle):
    train_words = list(bundle.X_train)
    repeated = {w for w in train_words if train_words.count(w) > 1}
    assert repeated  # some training words have two pronunciations, as two rows
    assert not repeated & set(bundle.X_val)


def test_cmudict_needs_the_seq2seq_task():
    with pytest.raises(InputError, match="task.name 'seq2seq'"):
        load_data(DataConfig(dataset="cmudict", limit=50), seed=0, task="classification")


def test_targets_encode_and_decode():
    from modelladder.data.seq2seq import EOS, PAD, decode_targets, encode_targets, target_vocabulary

    y = np.empty(2, dtype=object)
    y[0], y[1] = ("L AE D ER",), ("T UW", "T AH")
    vocab = target_vocabulary(y)
    ids = encode_targets(y, vocab)
    assert ids.shape == (2, 5) and ids[1, 2] == EOS and ids[1, 3] == PAD
    assert decode_targets(ids[0], vocab) == "L AE D ER"
