"""What every sequence-to-sequence dataset shares: the target vocabulary (fitted on the training targets only),
targets as padded id arrays for the training loop, and raw sources cleaned at predict time as in training.

A seq2seq DataBundle (kind "seq2seq") holds source strings in X and, in y, tuples of reference target strings
whose symbols are separated by single spaces: one reference per training row (a source with two targets is two
rows), every reference of a source on the val and test rows (a prediction is right if it equals any of them).
"""

from __future__ import annotations

import numpy as np

from modelladder.errors import InputError

TARGET_SPECIAL = ["<pad>", "<s>", "</s>", "<unk>"]  # target ids 0..3, before the training symbols
PAD, BOS, EOS, UNK = range(len(TARGET_SPECIAL))
# the corpus metrics (evaluate/seq2seq.py, through sacrebleu) a dataset may name in preprocess["corpus_metrics"]:
# parallel text gets them, pronunciations (cmudict) keep WER / PER / exact match only
CORPUS_METRICS = ("bleu", "chrf")


def target_vocabulary(y_train) -> list[str]:
    """The special tokens, then every symbol of the training targets in sorted order."""
    symbols = {s for refs in y_train for ref in refs for s in ref.split()}
    return [*TARGET_SPECIAL, *sorted(symbols)]


def encode_targets(y, vocab: list[str]) -> np.ndarray:
    """(N, T) int64: each row's first reference as symbol ids, then </s>, padded with <pad> to the longest."""
    index = {s: i for i, s in enumerate(vocab)}
    rows = [[index.get(s, UNK) for s in refs[0].split()] + [EOS] for refs in y]
    out = np.full((len(rows), max((len(r) for r in rows), default=1)), PAD, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def encode_references(y, vocab: list[str]) -> np.ndarray:
    """(N, R, T) int64: every reference of each row (R the most any row has) as encode_targets writes one; a row
    with fewer references is padded with all-<pad> ones. The validation targets: the loss teacher-forces the first
    reference, and validation WER counts an output right when it equals any of them."""
    width = max((len(refs) for refs in y), default=1)
    ids = encode_targets([(ref,) for refs in y for ref in refs], vocab)
    out = np.full((len(y), width, ids.shape[1]), PAD, dtype=np.int64)
    start = 0
    for i, refs in enumerate(y):
        out[i, : len(refs)] = ids[start: start + len(refs)]
        start += len(refs)
    return out


def decode_targets(ids, vocab: list[str]) -> str:
    """Symbol ids up to the first </s> as a space-separated string (special tokens left out)."""
    symbols = []
    for i in ids:
        if int(i) == EOS:
            break
        if int(i) >= len(TARGET_SPECIAL):
            symbols.append(vocab[int(i)])
    return " ".join(symbols)


def with_target_vocabulary(preprocess: dict, y_train) -> dict:
    """`preprocess` with the target vocabulary and the longest training target (for decoding) filled in."""
    if "target_vocab" in preprocess:
        return preprocess
    longest = max((len(ref.split()) for refs in y_train for ref in refs), default=1)
    return {**preprocess, "target_vocab": target_vocabulary(y_train), "max_target_length": longest}


def decoding_length(preprocess: dict) -> int:
    """The most tokens decoding writes for one source: twice the longest training target, and some room."""
    return 2 * int(preprocess.get("max_target_length", 50)) + 5


def normalize_whitespace(text: str) -> str:
    """`text` with every whitespace run (spaces, tabs, newlines) made one space and none at either end: how a
    seq2seq dataset's sources and targets are read (data/parallel.py) and how `ladder predict`, `ladder serve` and
    evaluation clean a raw source (clean_sources), so a source is the same string wherever it comes from."""
    return " ".join(text.split())


def clean_sources(preprocess: dict, raw, names=None) -> np.ndarray:
    """Raw source strings cleaned as the training sources were (normalize_whitespace; lower-cased where the
    dataset was); an empty source is refused, `names[i]` naming source i."""
    lower = preprocess.get("lowercase", False)
    out = []
    for i, text in enumerate(raw):
        if not isinstance(text, str):
            raise InputError(f"{names[i] if names else f'input {i + 1}'}: a source must be a string, got {text!r}")
        text = normalize_whitespace(text)
        if not text:
            raise InputError(f"{names[i] if names else f'input {i + 1}'} is empty: there is nothing to convert")
        out.append(text.lower() if lower else text)
    return np.asarray(out, dtype=object)
