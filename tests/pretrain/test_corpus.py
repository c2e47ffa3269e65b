"""Corpora: the 90/10 character split, token files made once in the cache and mapped from disk, windows
inside the stream, and clear errors for empty or unreadable corpora."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import torch

from modelladder.config import DataConfig
from modelladder.data.batches import TokenWindows, make_source
from modelladder.data.corpus import (
    corpus_tokens,
    split_pieces,
    text_files,
    tinyshakespeare,
)
from modelladder.data.tokenize import TokenizerConfig, train_encoder
from modelladder.errors import InputError
from modelladder.verbs.pretrain import prepare_data
from tests.conftest import require_data
from tests.pretrain.helpers import sample_text, tiny_config, write_corpus


def char_encoder(text: str):
    return train_encoder(TokenizerConfig(kind="char"), [text], max_length=64)


def test_the_split_is_the_first_90_percent_of_the_characters_like_nanogpt(tmp_path):
    text = sample_text()
    corpus = text_files(DataConfig(dataset="text", path=write_corpus(tmp_path, text)))
    train, val = split_pieces(corpus, 0.1, len(text))
    train, val = "".join(train), "".join(val)
    assert train == text[: int(0.9 * len(text))] and train + val == text
    tokens = corpus_tokens(corpus, 0.1, char_encoder(train))
    assert (len(tokens.train), len(tokens.val)) == (len(train), len(val))  # one token per character
    encoder = char_encoder(train)
    assert encoder.decode(tokens.train) + encoder.decode(tokens.val) == text
    assert tokens.meta["val"] == {"tokens": len(val), "chars": len(val), "unknown": 0}


def test_tiny_shakespeare_splits_as_nanogpt_does():
    require_data("tinyshakespeare")
    corpus = tinyshakespeare(DataConfig(dataset="tinyshakespeare"))
    train, val = split_pieces(corpus, 0.1, 1_115_394)
    assert sum(map(len, train)) == 1_003_854 and sum(map(len, val)) == 111_540


def test_token_files_are_uint16_memmaps_in_the_cache_written_once(tmp_path, monkeypatch):
    corpus = text_files(DataConfig(dataset="text", path=write_corpus(tmp_path)))
    encoder = char_encoder(sample_text())
    tokens = corpus_tokens(corpus, 0.1, encoder)
    assert isinstance(tokens.train, np.memmap) and tokens.train.dtype == np.uint16
    cache = os.environ["MODELLADDER_CACHE"]
    assert str(tokens.train.filename).startswith(cache)
    monkeypatch.setattr("modelladder.data.corpus._write_tokens", lambda *a: pytest.fail("tokenised again"))
    again = corpus_tokens(corpus, 0.1, encoder)
    assert np.array_equal(again.train, tokens.train) and again.train.filename == tokens.train.filename


def test_the_data_folder_is_only_read(tmp_path):
    root = tmp_path / "data"
    (root / "tinyshakespeare").mkdir(parents=True)
    (root / "tinyshakespeare" / "input.txt").write_text(sample_text())
    os.chmod(root / "tinyshakespeare", 0o555)
    try:
        cfg = tiny_config(tmp_path, data={"dataset": "tinyshakespeare", "root": str(root), "path": None})
        data = prepare_data(cfg)
        assert len(data.train) > 0 and os.listdir(root / "tinyshakespeare") == ["input.txt"]
    finally:
        os.chmod(root / "tinyshakespeare", 0o755)


@pytest.mark.parametrize("context", [1, 7, 32])
def test_random_windows_stay_inside_the_stream(context):
    tokens = np.arange(200, dtype=np.uint16)  # a token's id is its position
    source = make_source(TokenWindows(tokens, context), None, torch.long, torch.device("cpu"))
    for epoch in range(5):
        for starts in source.epoch(torch.Generator().manual_seed(epoch), batch_size=16):
            x, y = source.take(starts)
            assert x.shape == y.shape == (len(starts), context)
            assert int(starts.min()) >= 0 and int(y.max()) <= 199
            assert torch.equal(y, x + 1)  # targets are the next tokens
    windows = torch.cat(source.in_order(8))
    assert int(windows.max()) + context + 1 <= 200


def test_a_stream_of_exactly_one_window_has_one_start():
    source = make_source(TokenWindows(np.arange(9, dtype=np.uint16), 8), None, torch.long, torch.device("cpu"))
    assert torch.cat(source.epoch(torch.Generator().manual_seed(0), 4)).tolist() == [0]


def test_an_empty_corpus_is_an_input_error(tmp_path):
    path = write_corpus(tmp_path, text="")
    with pytest.raises(InputError, match=rf"^corpus text: {path} holds no text$"):
        prepare_data(tiny_config(path))


def test_a_corpus_shorter_than_a_window_is_an_input_error(tmp_path):
    path = write_corpus(tmp_path, text="to be or not to be\n" * 10)
    with pytest.raises(InputError, match=r"^the held-out text of corpus text: .* is 19 tokens long, shorter than one "
                                         r"window of model.max_length \+ 1 = 33 tokens"):
        prepare_data(tiny_config(path))


def test_a_corpus_folder_must_hold_text_files_and_files_must_be_utf8(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"is a folder without \.txt files"):
        prepare_data(tiny_config(tmp_path / "empty"))
    bad = tmp_path / "bad.txt"
    bad.write_bytes(sample_text().encode() + b"caf\xe9\n")
    with pytest.raises(InputError, match=r"bad.txt line 401 is not valid UTF-8 \(byte 0xe9\)"):
        prepare_data(tiny_config(bad))


def test_a_jsonl_corpus_reads_data_text_and_data_limit_cuts_it(tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in sample_text().splitlines():
            f.write(json.dumps({"body": line, "id": 1}) + "\n")
    corpus = text_files(DataConfig(dataset="text", path=path, text="body", limit=1000))
    text = "".join(corpus.pieces())
    assert len(text) == 1000 and text.startswith(sample_text().splitlines()[0] + "\n\n")
    with pytest.raises(InputError, match=r"line 1 is not a JSON object with a text under 'text'"):
        "".join(text_files(DataConfig(dataset="text", path=path)).pieces())
