"""Text corpora for language-model pretraining, tokenised once into memory-mapped token files.

A corpus is a text read as a stream of pieces: Tiny Shakespeare is one file, the Gutenberg folder three
novels, IMDB's unlabelled reviews 50,000 documents; documents are joined by a blank line. The text is
split by characters: the first (1 - data.split.val) is the training text and the rest the held-out text
(for Tiny Shakespeare with the default 0.1, nanoGPT's 90/10 split). The tokenizer is trained on the
training text only. Both parts are tokenised and written as raw uint16 ids (uint32 when the vocabulary
has 65,536 tokens or more), nanoGPT's train.bin / val.bin, into $MODELLADDER_CACHE/corpora/, keyed by
the corpus content, the split and the tokenizer: later runs map the files from disk without reading the
corpus again, so corpora larger than memory train as well. The data folder is only ever read.

Text is used as it is, except IMDB reviews, which are cleaned with data.clean (HTML tags such as <br />)
as the imdb classification dataset cleans them. data.limit keeps the first that many characters.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tokenizers import Tokenizer

from modelladder.data.download import data_root, ensure_files
from modelladder.data.text import clean_texts
from modelladder.data.text_sources import cache_root, imdb_folder
from modelladder.data.tokenize import SPECIAL, UNK_ID, TextEncoder
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

SEPARATOR = "\n\n"  # between documents
PIECE_CHARS = 1 << 20  # text is read, split and tokenised in pieces of about this many characters
FORMAT = 1  # of the cached token files

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
GUTENBERG_FILES = ["anna_karenina_pg1399.txt", "crime_and_punishment_pg2554.txt", "war_and_peace_pg2600.txt"]


@dataclass
class Corpus:
    """Where a corpus's text comes from: `files`, each read by `read` as documents made of pieces."""

    name: str
    where: Path  # the file or folder, for messages
    files: list[Path]
    read: Callable[[Path], Iterator[Iterator[str]]]  # a file -> its documents, each an iterator of pieces
    limit: int | None = None  # keep the first this many characters
    settings: dict = field(default_factory=dict)  # anything else that changes the text (cleaning): in the cache key

    @property
    def source(self) -> str:
        return f"{self.name}: {self.where}"

    def pieces(self) -> Iterator[str]:
        """The whole text as consecutive pieces (documents joined by SEPARATOR), cut at `limit` characters."""
        left = self.limit
        for text in self._texts():
            if left is not None:
                text = text[:left]
                left -= len(text)
            if text:
                yield text
            if left == 0:
                return

    def _texts(self) -> Iterator[str]:
        first = True
        for path in self.files:
            for document in self.read(path):
                if not first:
                    yield SEPARATOR
                first = False
                yield from document

    @cached_property
    def fingerprint(self) -> str:
        """sha256 over the files' names and contents and the settings: the text's identity for the cache."""
        digest = hashlib.sha256(json.dumps({"name": self.name, "limit": self.limit, **self.settings},
                                           sort_keys=True).encode())
        for path in self.files:
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        return digest.hexdigest()


# ---------------------------------------------------------------- the corpora (registry.CORPORA)


def tinyshakespeare(cfg: DataConfig) -> Corpus:
    """Tiny Shakespeare (karpathy/char-rnn input.txt, 1,115,394 characters), downloaded when missing."""
    folder = ensure_files(data_root(cfg.root) / "tinyshakespeare",
                          {"input.txt": (SHAKESPEARE_URL, SHAKESPEARE_SHA256)}, "Tiny Shakespeare")
    return Corpus("tinyshakespeare", folder / "input.txt", [folder / "input.txt"], read_text_file, cfg.limit)


def gutenberg(cfg: DataConfig) -> Corpus:
    """Three Project Gutenberg novels (Anna Karenina, Crime and Punishment, War and Peace; 6.3 M characters)."""
    folder = data_root(cfg.root) / "gutenberg"
    missing = [name for name in GUTENBERG_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"gutenberg files {missing} are missing from {folder}: they are Project Gutenberg "
                         "ebooks #1399, #2554 and #2600 without the PG header and footer, as UTF-8 (see the "
                         "data folder's MANIFEST.md); put them there or set data.root / $MODELLADDER_DATA")
    return Corpus("gutenberg", folder, [folder / name for name in GUTENBERG_FILES], read_text_file, cfg.limit)


def imdb_unsup(cfg: DataConfig) -> Corpus:
    """IMDB's 50,000 unlabelled reviews (unsup.jsonl.gz), cleaned with data.clean; converted from the
    canonical archive (downloaded when missing) as the imdb dataset is."""
    path = imdb_folder(data_root(cfg.root) / "imdb") / "unsup.jsonl.gz"
    if not path.is_file():
        raise InputError(f"{path} is missing: the imdb folder holds train and test but not the unlabelled "
                         "reviews; delete it to convert the aclImdb archive again")
    clean = cfg.clean.model_dump(mode="json")
    return Corpus("imdb_unsup", path, [path], lambda p: _jsonl_documents(p, "text", clean), cfg.limit,
                  {"clean": clean})


def text_files(cfg: DataConfig) -> Corpus:
    """Your own text: data.path is a UTF-8 text file, a folder of .txt files (read in name order, sub-folders
    included, one document each), or a JSON Lines file (.jsonl, .jsonl.gz) with the text under data.text
    (default 'text')."""
    allowed = "a .txt file, a .jsonl or .jsonl.gz file, or a folder of .txt files"
    if cfg.path is None:
        raise InputError(f"data.path is required for corpus 'text': {allowed}")
    path = Path(cfg.path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise InputError(f"data.path {path} is a folder without .txt files")
        return Corpus("text", path, files, read_text_file, cfg.limit)
    if not path.is_file():
        raise InputError(f"data.path {path} does not exist")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        key = cfg.text or "text"
        return Corpus("text", path, [path], lambda p: _jsonl_documents(p, key, None), cfg.limit, {"text": key})
    if path.suffix.lower() != ".txt":
        raise InputError(f"data.path {path} must be {allowed}, got a '{path.suffix}' file")
    return Corpus("text", path, [path], read_text_file, cfg.limit)


def read_text_file(path: Path) -> Iterator[Iterator[str]]:
    """One document: the file's lines, grouped into pieces of about PIECE_CHARS characters."""
    yield _lines_in_pieces(path)


def _lines_in_pieces(path: Path) -> Iterator[str]:
    with open(path, "rb") as f:
        if f.read(3) != b"\xef\xbb\xbf":  # keep everything but a byte-order mark
            f.seek(0)
        piece, size = [], 0
        for number, raw in enumerate(f, 1):
            piece.append(_decode_line(raw, path, number))
            size += len(piece[-1])
            if size >= PIECE_CHARS:
                yield "".join(piece)
                piece, size = [], 0
        if piece:
            yield "".join(piece)


def _decode_line(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path} line {number} is not valid UTF-8 (byte {raw[err.start]:#04x}); "
                         "save the file as UTF-8") from None


def _jsonl_documents(path: Path, key: str, clean: dict | None) -> Iterator[Iterator[str]]:
    """Each record's `key` string (cleaned with `clean` when given) as one document."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    text = json.loads(_decode_line(raw, path, number))[key]
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise InputError(f"{path} line {number} is not a JSON object with a text under '{key}' "
                                     f"({type(err).__name__}: {err})") from None
                if not isinstance(text, str):
                    raise InputError(f"{path} line {number}: '{key}' must be a string, got {text!r}")
                yield iter([clean_texts([text], clean)[0] if clean else text])
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path} is not a readable {'gzip' if opener is gzip.open else 'text'} file ({err})") \
            from None


# ---------------------------------------------------------------- splitting and tokenising


def count_chars(corpus: Corpus) -> int:
    total = sum(len(piece) for piece in corpus.pieces())
    if total == 0:
        raise InputError(f"corpus {corpus.source} holds no text")
    return total


def split_pieces(corpus: Corpus, val: float, total: int) -> tuple[Iterator[str], Iterator[str]]:
    """(training pieces, held-out pieces): the text before and after character int((1 - val) * total)
    (nanoGPT's n = int(0.9 * len(data)))."""
    cut = int((1 - val) * total)

    def part(train: bool) -> Iterator[str]:
        position = 0
        for piece in corpus.pieces():
            start, position = position, position + len(piece)
            if train and start < cut:
                yield piece[: cut - start]
            elif not train and position > cut:
                yield piece[max(cut - start, 0):]
            elif train:
                return

    return part(True), part(False)


@dataclass
class CorpusTokens:
    """The token files of one corpus under one tokenizer: memory-mapped id arrays plus their counts."""

    train: np.ndarray
    val: np.ndarray
    meta: dict  # source, split, dtype, and per part: tokens, characters, unknown tokens

    @property
    def chars_per_token(self) -> float:
        """Held-out characters per held-out token (bits per character = loss / ln 2 / chars_per_token)."""
        part = self.meta["val"] if self.meta["val"]["tokens"] else self.meta["train"]
        return part["chars"] / part["tokens"]


def corpus_key(corpus: Corpus, val: float) -> str:
    return hashlib.sha256(f"{corpus.fingerprint} {val!r} {FORMAT}".encode()).hexdigest()[:16]


def corpus_encoder(corpus: Corpus, val: float, recipe: dict, train: Callable[[Iterator[str]], TextEncoder]
                   ) -> TextEncoder:
    """The tokenizer `train` makes from the training text, cached by corpus, split and `recipe` (the
    tokenizer's settings), so every run with the same settings tokenises the same way."""
    name = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    path = _corpus_dir(corpus, val) / "tokenizers" / f"{name}.json"
    if path.is_file():
        return TextEncoder.load(path)
    train_text, _ = split_pieces(corpus, val, count_chars(corpus))
    encoder = train(train_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder.save(path)
    return encoder


def corpus_tokens(corpus: Corpus, val: float, encoder: TextEncoder) -> CorpusTokens:
    """The corpus tokenised by `encoder` into train.bin / val.bin in the cache (written the first time)."""
    stream = _stream_tokenizer(encoder)
    digest = hashlib.sha256(stream.to_str().encode()).hexdigest()[:16]
    folder = _corpus_dir(corpus, val) / f"tokens-{digest}"
    if not (folder / "meta.json").is_file():
        _write_tokens(corpus, val, stream, folder, encoder.vocab_size)
    meta = json.loads((folder / "meta.json").read_text())
    return CorpusTokens(_map(folder / "train.bin", meta), _map(folder / "val.bin", meta), meta)


def _corpus_dir(corpus: Corpus, val: float) -> Path:
    return cache_root() / "corpora" / f"{corpus.name}-{corpus_key(corpus, val)}"


def _stream_tokenizer(encoder: TextEncoder) -> Tokenizer:
    """The encoder's tokenizer without truncation or padding: a corpus is one long stream of ids."""
    stream = Tokenizer.from_str(encoder.tokenizer.to_str())
    stream.no_truncation()
    stream.no_padding()
    return stream


def _write_tokens(corpus: Corpus, val: float, stream: Tokenizer, folder: Path, vocab_size: int) -> None:
    """Tokenise both parts into a temporary folder beside `folder`, then rename it into place."""
    dtype = np.uint16 if vocab_size < 2**16 else np.uint32
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        meta = {"format": FORMAT, "source": corpus.source, "val_fraction": val, "dtype": np.dtype(dtype).name}
        for name, pieces in zip(("train", "val"), split_pieces(corpus, val, count_chars(corpus))):
            meta[name] = _tokenise(pieces, stream, tmp / f"{name}.bin", dtype)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process wrote the same folder first: keep that one
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _tokenise(pieces: Iterator[str], stream: Tokenizer, path: Path, dtype) -> dict:
    """Write the ids of `pieces` to `path`; the counts of tokens, characters and [UNK] tokens."""
    counts = {"tokens": 0, "chars": 0, "unknown": 0}
    unknown = stream.token_to_id(SPECIAL[UNK_ID])  # None for a pretrained tokenizer without one

    def write(batch: list[str]) -> None:
        for encoding in stream.encode_batch(batch, add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=dtype)
            counts["tokens"] += len(ids)
            counts["unknown"] += int((ids == unknown).sum()) if unknown is not None else 0
            out.write(ids.tobytes())

    with open(path, "wb") as out:
        batch = []
        for piece in pieces:
            batch.append(piece)
            counts["chars"] += len(piece)
            if len(batch) == 64:  # encode_batch tokenises a batch on all cores
                write(batch)
                batch = []
        write(batch)
    return counts


def _map(path: Path, meta: dict) -> np.ndarray:
    dtype = np.dtype(meta["dtype"])
    expected = meta[path.stem]["tokens"]
    if path.stat().st_size != expected * dtype.itemsize:
        raise InputError(f"token file {path} holds {path.stat().st_size} bytes, expected {expected} tokens of "
                         f"{dtype.name}: delete its folder to tokenise the corpus again")
    if expected == 0:  # numpy cannot map an empty file
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(expected,))
