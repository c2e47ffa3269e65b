"""Tokenizers for the text rungs, built on the `tokenizers` library: char, word, BPE and WordPiece.

A scratch tokenizer reserves [PAD]=0, [UNK]=1, [CLS]=2 and [MASK]=3 ([MASK] for masked-LM pretraining)
and prepends [CLS] to every sequence, so [CLS] pooling works and no sequence is empty. Truncation
(max_length, [CLS] included; the end of a long text is cut) and the padding id are set on the Tokenizer
itself, so one tokenizer.json holds the whole encoder. Kinds:

- char: one token per Unicode code point, spaces and newlines included, and decode gives the text back:
  the tokenizer for character-level language models (Tiny Shakespeare).
- word: runs of word characters and runs of punctuation (\\w+ and [^\\w\\s]+) from a word-level vocabulary;
  decode joins tokens with spaces.
- bpe: byte-level BPE as in GPT-2: the 256 byte tokens are always in the vocabulary, so no text ever maps
  to [UNK] and decode gives it back exactly; it needs vocab_size >= 260 (256 bytes + 4 special tokens).
- wordpiece: BERT-style WordPiece (punctuation split off, '##' marks a word's continuation). Its training
  is not reproducible: tokenizers' trainer breaks ties in hash-map order, so two trainings on the same
  texts can differ (huggingface/tokenizers#1794). The run folder's tokenizer.json keeps the one a model
  was trained with; char, word and bpe train identically every time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

from modelladder.errors import InputError
from modelladder.schema import Strict

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[MASK]"]  # trainers give them ids 0, 1, 2, 3 in this order
PAD_ID, UNK_ID, CLS_ID, MASK_ID = range(len(SPECIAL))
BYTES = 256  # byte-level BPE's base alphabet


class TokenizerConfig(Strict):
    kind: Literal["char", "word", "bpe", "wordpiece"] = "word"
    # at most this many tokens, special tokens included; None: the model's vocab_size
    vocab_size: int | None = Field(None, gt=len(SPECIAL))
    # None: 2 for word, so that rare training words become [UNK] and [UNK] gets trained; 1 for the others
    min_frequency: int | None = Field(None, ge=1)
    lowercase: bool = False

    @model_validator(mode="after")
    def _room_for_the_alphabet(self):
        if self.vocab_size is not None and self.vocab_size < self.min_vocab_size():
            raise ValueError(f"vocab_size must be >= {self.min_vocab_size()} for kind 'bpe' "
                             f"({BYTES} bytes and {len(SPECIAL)} special tokens), got {self.vocab_size}")
        return self

    def min_vocab_size(self) -> int:
        return BYTES + len(SPECIAL) if self.kind == "bpe" else len(SPECIAL) + 1

    def sized(self, vocab_size: int) -> TokenizerConfig:
        """This config, with vocab_size set to `vocab_size` where it is None."""
        return self if self.vocab_size is not None else self.model_copy(update={"vocab_size": vocab_size})


def check_fits(tokenizer: TokenizerConfig, vocab_size: int | None) -> TokenizerConfig:
    """For a model's config validator: the tokenizer's vocabulary must fit the model's embedding rows."""
    if vocab_size is None:  # the model's own vocab_size failed validation and is reported already
        return tokenizer
    if tokenizer.vocab_size is not None and tokenizer.vocab_size > vocab_size:
        raise ValueError(f"vocab_size must be <= the model's vocab_size ({vocab_size}), got {tokenizer.vocab_size}")
    if vocab_size < tokenizer.min_vocab_size():
        raise ValueError(f"kind {tokenizer.kind!r} needs the model's vocab_size to be >= "
                         f"{tokenizer.min_vocab_size()}, got {vocab_size}")
    return tokenizer


class TextEncoder:
    """Texts -> int64 id arrays through one tokenizers.Tokenizer that carries its truncation and padding."""

    def __init__(self, tokenizer: Tokenizer):
        if tokenizer.truncation is None or tokenizer.padding is None:
            raise ValueError("a TextEncoder's tokenizer needs truncation and padding enabled")
        self.tokenizer = tokenizer
        # encode returns ragged sequences (the training loop pads each batch to its own longest)
        self._unpadded = Tokenizer.from_str(tokenizer.to_str())
        self._unpadded.no_padding()

    @property
    def pad_id(self) -> int:
        return self.tokenizer.padding["pad_id"]

    @property
    def max_length(self) -> int:
        return self.tokenizer.truncation["max_length"]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Iterable[str]) -> list[np.ndarray]:
        """One int64 array per text: special tokens added, truncated to max_length, never empty."""
        encodings = self._unpadded.encode_batch(list(texts))
        # a lone [PAD] keeps pooling well-defined for foreign tokenizers that add no special tokens
        return [np.asarray(e.ids or [self.pad_id], dtype=np.int64) for e in encodings]

    def encode_corpus(self, text: str) -> np.ndarray:
        """The whole of `text` as one id stream, with no special tokens and no truncation (language modelling)."""
        stream = Tokenizer.from_str(self._unpadded.to_str())
        stream.no_truncation()
        return np.asarray(stream.encode(text, add_special_tokens=False).ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        """The text for `ids`, special tokens left out."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def save(self, path: str | Path) -> None:
        """One tokenizer.json, written under a temporary name and renamed, so a crash leaves no half file."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(self.tokenizer.to_str(), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | Path) -> TextEncoder:
        path = Path(path)
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception for a missing file and for bad JSON alike
            raise InputError(f"tokenizer file {path} is not a readable tokenizer.json: {err}") from None
        if tokenizer.truncation is None or tokenizer.padding is None:
            raise InputError(f"tokenizer file {path} sets no truncation or no padding: "
                             "it was not written by TextEncoder.save")
        return cls(tokenizer)


def _untrained(cfg: TokenizerConfig) -> tuple[Tokenizer, trainers.Trainer]:
    """The empty tokenizer for `cfg.kind` and the trainer that fills its vocabulary."""
    options = {"special_tokens": SPECIAL, "show_progress": False,
               "min_frequency": cfg.min_frequency or (2 if cfg.kind == "word" else 1)}
    if cfg.vocab_size is not None:  # otherwise the trainers' own default, 30,000
        options["vocab_size"] = cfg.vocab_size
    if cfg.kind in ("char", "word"):
        tokenizer = Tokenizer(models.WordLevel(unk_token=SPECIAL[UNK_ID]))
        trainer = trainers.WordLevelTrainer(**options)
        if cfg.kind == "char":
            tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
            tokenizer.decoder = decoders.Fuse()
        else:
            tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    elif cfg.kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **options)
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=SPECIAL[UNK_ID]))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        if cfg.vocab_size is not None:  # each kept character also enters as a '##' continuation: half the room
            options["limit_alphabet"] = (cfg.vocab_size - len(SPECIAL)) // 2
        trainer = trainers.WordPieceTrainer(**options)
    if cfg.lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    return tokenizer, trainer


def train_encoder(cfg: TokenizerConfig, texts: Iterable[str], max_length: int) -> TextEncoder:
    """A tokenizer of kind `cfg.kind` trained on `texts` only, with at most cfg.vocab_size tokens."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 ([CLS] and one token), got {max_length}")
    tokenizer, trainer = _untrained(cfg)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single=f"{SPECIAL[CLS_ID]} $A",
                                                             special_tokens=[(SPECIAL[CLS_ID], CLS_ID)])
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=PAD_ID, pad_token=SPECIAL[PAD_ID])
    return TextEncoder(tokenizer)


def pretrained_encoder(path_or_id: str | Path, max_length: int) -> TextEncoder:
    """The tokenizer of a Hugging Face model: a local folder, or a hub id (when there is a hub)."""
    from transformers import AutoTokenizer  # imported here: it takes seconds, and only pretrained rungs need it

    local = Path(path_or_id).exists()
    try:
        pretrained = AutoTokenizer.from_pretrained(str(path_or_id), local_files_only=local)
    except (OSError, ValueError) as err:
        raise InputError(f"tokenizer {path_or_id} could not be loaded: {err}") from None
    backend = getattr(pretrained, "backend_tokenizer", None)
    if backend is None:
        raise InputError(f"tokenizer {path_or_id} has no fast (tokenizers) version: "
                         f"{type(pretrained).__name__} is not supported")
    if pretrained.pad_token_id is None:
        raise InputError(f"tokenizer {path_or_id} has no pad token")
    tokenizer = Tokenizer.from_str(backend.to_str())  # a copy: the settings below stay out of `pretrained`
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=pretrained.pad_token_id, pad_token=pretrained.pad_token)
    return TextEncoder(tokenizer)
