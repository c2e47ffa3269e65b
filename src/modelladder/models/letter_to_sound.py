"""The classic letter-to-sound rung for seq2seq: EM-aligned letters -> phoneme chunks, a decision tree over letter windows.

The CART-style letter-to-sound rules of Black, Lenzo and Pagel (1998) learnt from a pronunciation dictionary:

1. Alignment. Every letter of a word emits a chunk of 0, 1 or 2 phonemes (a 1-to-{0,1,2} alignment: "x" -> "K S",
   the silent "e" of "make" -> nothing), the restricted case of the many-to-many aligner of Jiampojamarn, Kondrak
   and Sherif (2007) with one letter on the source side. The chunk probabilities p(chunk | letter) are learnt by
   EM (forward-backward over each word's alignment lattice, from uniform, with a fixed prior UNEVEN < 1 on
   letters that emit no phoneme or two), then each word is aligned by Viterbi.
   A pair that cannot be aligned that way (more than two phonemes a letter, e.g. the abbreviation "aaa" ->
   "T R IH P AH L EY") is left out of training and counted (`unaligned_`).
2. Classification. Each letter becomes one example: the letters `window` places either side of it (words padded
   with '#'), one-hot encoded, labelled by its aligned chunk; one scikit-learn CART decision tree learns letter window
   -> chunk (the letter itself is one of the features, so the tree's first splits make it a tree per letter, as in
   Black et al.). Multinomial logistic regression over the same features was tried and left out: no better on a
   700-word sample and ~10x slower to fit (lbfgs over ~100 chunk classes).
3. Prediction joins the predicted chunks of a word's letters, left to right.

Saved with skops (never pickle): the fitted Pipeline (OneHotEncoder + DecisionTreeClassifier), the chunk names and the window.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from modelladder.errors import InputError
from modelladder.models.base import Rung
from modelladder.models.classic import dump_skops, load_skops
from modelladder.schema import Strict

PAD = "#"  # what lies beyond either end of a word in a letter window
MAX_CHUNK = 2  # phonemes one letter may emit
# every alignment's probability is multiplied by this for each letter that emits no phoneme or two: where the data
# cannot tell (e.g. "bake": a -> EY, k -> K, e -> nothing, or a -> nothing, k -> nothing, e -> EY K), one phoneme
# a letter wins
UNEVEN = 0.5


# ---------------------------------------------------------------- alignment


def _edges(n: int, m: int) -> np.ndarray:
    """(E, 3) rows (letter i, phonemes before it j, chunk length k): the edges of an n-letter, m-phoneme alignment
    lattice that lie on a complete path, ordered by letter."""
    return np.array([(i, j, k) for i in range(n)
                     for j in range(max(0, m - MAX_CHUNK * (n - i)), min(m, MAX_CHUNK * i) + 1)
                     for k in range(min(MAX_CHUNK, m - j) + 1) if m - j - k <= MAX_CHUNK * (n - i - 1)],
                    np.int64).reshape(-1, 3)


class _Shape:
    """The pairs of one (letters, phonemes) length pair, aligned together: their lattices are the same, so forward,
    backward and Viterbi run over all of them at once with numpy. `param[w, e]`: the (letter, chunk) parameter
    that edge e of pair w uses."""

    def __init__(self, letters: np.ndarray, phones: np.ndarray, n_chunks: int, n_phones: int):
        self.n, self.m = letters.shape[1], phones.shape[1]
        self.edges = _edges(self.n, self.m)
        i, j, k = self.edges.T
        chunk = np.zeros((len(letters), len(self.edges)), np.int64)  # 0: no phoneme; 1 + p; 1 + P + p1 * P + p2
        one, two = k == 1, k == 2
        chunk[:, one] = 1 + phones[:, j[one]]
        chunk[:, two] = 1 + n_phones + phones[:, j[two]] * n_phones + phones[:, j[two] + 1]
        self.param = letters[:, i] * n_chunks + chunk
        self.prior = np.where(k == 1, 1.0, UNEVEN)

    def posterior(self, weight: np.ndarray) -> np.ndarray:
        """(W, E) posterior probability of each edge given p(chunk | letter) as `weight` (forward-backward)."""
        w = weight[self.param] * self.prior
        alpha = np.zeros((len(w), self.n + 1, self.m + 1))
        beta = np.zeros_like(alpha)
        alpha[:, 0, 0] = beta[:, self.n, self.m] = 1.0
        for e, (i, j, k) in enumerate(self.edges):
            alpha[:, i + 1, j + k] += alpha[:, i, j] * w[:, e]
        for e in range(len(self.edges) - 1, -1, -1):
            i, j, k = self.edges[e]
            beta[:, i, j] += w[:, e] * beta[:, i + 1, j + k]
        i, j, k = self.edges.T
        total = np.maximum(alpha[:, self.n, self.m], np.finfo(float).tiny)[:, None]
        return alpha[:, i, j] * w * beta[:, i + 1, j + k] / total

    def viterbi(self, log_weight: np.ndarray) -> np.ndarray:
        """(W, n) the parameter (letter, chunk) each letter uses on its pair's most probable alignment."""
        w = log_weight[self.param] + np.log(self.prior)
        score = np.full((len(w), self.n + 1, self.m + 1), -np.inf)
        score[:, 0, 0] = 0.0
        back = np.zeros((len(w), self.n + 1, self.m + 1), np.int64)  # the edge that reached each node best
        for e, (i, j, k) in enumerate(self.edges):
            candidate = score[:, i, j] + w[:, e]
            better = candidate > score[:, i + 1, j + k]
            score[better, i + 1, j + k] = candidate[better]
            back[better, i + 1, j + k] = e
        rows, j = np.arange(len(w)), np.full(len(w), self.m)
        out = np.zeros((len(w), self.n), np.int64)
        for i in range(self.n, 0, -1):
            e = back[rows, i, j]
            out[:, i - 1] = self.param[rows, e]
            j = j - self.edges[e, 2]
        return out


def align(pairs: list[tuple[str, list[str]]], iterations: int) -> list[list[str]]:
    """Each pair's chunk per letter (its phonemes joined by spaces, "" for none), by `iterations` EM steps of
    p(chunk | letter) from uniform, then Viterbi. Every pair must be alignable (len(phones) <= MAX_CHUNK * len(word))."""
    letter_names = sorted({c for word, _ in pairs for c in word})
    phone_names = sorted({p for _, phones in pairs for p in phones})
    letter_id = {c: i for i, c in enumerate(letter_names)}
    phone_id = {p: i for i, p in enumerate(phone_names)}
    n_phones = len(phone_names)
    n_chunks = 1 + n_phones + n_phones ** 2
    groups = defaultdict(list)
    for index, (word, phones) in enumerate(pairs):
        groups[len(word), len(phones)].append(index)
    shapes = []
    for index in groups.values():
        letters = np.array([[letter_id[c] for c in pairs[x][0]] for x in index], np.int64)
        phones = np.array([[phone_id[p] for p in pairs[x][1]] for x in index], np.int64).reshape(len(index), -1)
        shapes.append((index, _Shape(letters, phones, n_chunks, n_phones)))
    size = len(letter_names) * n_chunks
    counts = np.zeros(size)  # uniform start: every chunk a letter could emit counts once
    for _, shape in shapes:
        counts[shape.param.ravel()] = 1.0
    for _ in range(iterations):
        weight = _normalise(counts, n_chunks)
        counts = np.zeros(size)
        for _, shape in shapes:
            counts += np.bincount(shape.param.ravel(), weights=shape.posterior(weight).ravel(), minlength=size)
    with np.errstate(divide="ignore"):
        log_weight = np.log(_normalise(counts, n_chunks))
    names = [""] + phone_names + [f"{a} {b}" for a in phone_names for b in phone_names]
    out: list[list[str]] = [[] for _ in pairs]
    for index, shape in shapes:
        for x, params in zip(index, shape.viterbi(log_weight)):
            out[x] = [names[p % n_chunks] for p in params]
    return out


def _normalise(counts: np.ndarray, n_chunks: int) -> np.ndarray:
    """p(chunk | letter) from counts laid out letter-major."""
    table = counts.reshape(-1, n_chunks)
    return (table / np.maximum(table.sum(axis=1, keepdims=True), np.finfo(float).tiny)).ravel()


# ---------------------------------------------------------------- the estimator


def windows(words: list[str], window: int) -> np.ndarray:
    """(letters, 2 * window + 1) code points: for each letter of each word, the letters from `window` places before
    it to `window` after it (PAD beyond the word)."""
    rows = [np.lib.stride_tricks.sliding_window_view(np.array([ord(c) for c in PAD * window + w + PAD * window]),
                                                     2 * window + 1) for w in words if w]
    return np.concatenate(rows) if rows else np.zeros((0, 2 * window + 1), np.int64)


class LetterToSound:
    """A scikit-learn-style estimator: fit(words, pronunciations) -> self, predict(words) -> pronunciations, where a
    pronunciation is its symbols separated by single spaces (module docstring)."""

    def __init__(self, *, window: int = 3, min_samples_leaf: int = 1, max_depth: int | None = None,
                 em_iterations: int = 5, seed: int = 0):
        self.window, self.min_samples_leaf, self.max_depth = window, min_samples_leaf, max_depth
        self.em_iterations, self.seed = em_iterations, seed

    def _make_pipeline(self) -> Pipeline:
        model = DecisionTreeClassifier(min_samples_leaf=self.min_samples_leaf, max_depth=self.max_depth,
                                       random_state=self.seed)
        return Pipeline([("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)), ("model", model)])

    def fit(self, sources: Iterable[str], targets: Iterable[str]) -> LetterToSound:
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise ValueError(f"fit needs one target per source, got {len(sources)} sources and {len(targets)} targets")
        start = time.perf_counter()
        pairs = [(s, t.split()) for s, t in zip(sources, targets)]
        alignable = [(s, p) for s, p in pairs if s and len(p) <= MAX_CHUNK * len(s)]
        if not alignable:
            raise ValueError("no source could be aligned to its target (each letter emits at most "
                             f"{MAX_CHUNK} symbols)")
        self.unaligned_ = len(pairs) - len(alignable)
        chunks = align(alignable, self.em_iterations)
        self.align_seconds_ = time.perf_counter() - start
        rows = windows([s for s, _ in alignable], self.window)
        names = sorted({c for word in chunks for c in word})
        index = {c: i for i, c in enumerate(names)}
        labels = np.array([index[c] for word in chunks for c in word], np.int64)
        self.pipeline_ = self._make_pipeline().fit(rows, labels)
        self.chunks_ = names
        return self

    def _fitted(self) -> Pipeline:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError("LetterToSound is not fitted yet: call fit or load first")
        return self.pipeline_

    def predict(self, sources: Iterable[str]) -> list[str]:
        pipeline, sources = self._fitted(), list(sources)
        rows = windows(sources, self.window)
        if not len(rows):
            return ["" for _ in sources]
        ids = pipeline.predict(rows)
        out, start = [], 0
        for s in sources:
            out.append(" ".join(c for c in (self.chunks_[i] for i in ids[start:start + len(s)]) if c))
            start += len(s)
        return out

    def n_nodes(self) -> int:
        return int(self._fitted()[-1].tree_.node_count)

    def save(self, path: Path) -> None:
        """A skops file, written under a temporary name and renamed, so a crash leaves no half file."""
        dump_skops({"pipeline": self._fitted(), "chunks": list(self.chunks_), "window": self.window}, path)

    @classmethod
    def load(cls, path: Path) -> LetterToSound:
        """The estimator saved at `path`; InputError for an unreadable file or one holding types it does not trust."""
        state = load_skops(path, TRUSTED, "letter_to_sound")
        if not isinstance(state, dict) or not isinstance(state.get("pipeline"), Pipeline):
            raise InputError(f"model file {path} holds no letter_to_sound model")
        out = cls(window=state["window"])
        out.pipeline_, out.chunks_ = state["pipeline"], list(state["chunks"])
        return out


TRUSTED = ("sklearn.tree._tree.Tree",)  # types outside skops' safe defaults that a saved model holds


# ---------------------------------------------------------------- the registered rung


class LetterToSoundConfig(Strict):
    name: Literal["letter_to_sound"] = "letter_to_sound"
    window: int = Field(3, ge=0)  # letters on each side of the one classified
    min_samples_leaf: int = Field(1, gt=0)  # the fewest letters a leaf of the tree keeps
    max_depth: int | None = Field(None, gt=0)  # None grows the tree until its leaves are pure
    em_iterations: int = Field(5, ge=0)  # EM steps of the letter-phoneme alignment before Viterbi


class LetterToSoundRung(Rung):
    """The `letter_to_sound` rung: a LetterToSound estimator built from its config, trained on source strings and
    target strings (or tuples of reference targets, of which the first is learnt), predicting target strings."""

    Config = LetterToSoundConfig
    family = "classic"
    input_kind = "text"
    tasks = ("seq2seq",)
    search_space: ClassVar[dict[str, dict]] = {"model.window": {"low": 1, "high": 4, "int": True},
                                               "model.min_samples_leaf": {"low": 1, "high": 20, "int": True,
                                                                          "log": True}}

    def __init__(self, cfg: LetterToSoundConfig, input_shape: tuple[int, ...] = (), n_outputs: int = 1, *,
                 seed: int = 0, task: str = "seq2seq"):
        # `task` is the run's; whether this rung trains with it is `tasks`, which the run layer checks
        self.cfg, self.input_shape, self.n_outputs, self.seed, self.task = cfg, tuple(input_shape), n_outputs, seed, task
        self.estimator = LetterToSound(window=cfg.window, min_samples_leaf=cfg.min_samples_leaf,
                                       max_depth=cfg.max_depth, em_iterations=cfg.em_iterations, seed=seed)

    def estimator_name(self) -> str:
        return "EM alignment + DecisionTreeClassifier"

    def fit(self, X, y) -> LetterToSoundRung:
        self.estimator.fit(list(X), [t if isinstance(t, str) else t[0] for t in y])
        return self

    def predict(self, X) -> list[str]:
        return self.estimator.predict(list(X))

    def n_params(self) -> int | None:
        """None: a tree's size is n_nodes."""
        return None

    def n_nodes(self) -> int | None:
        return self.estimator.n_nodes()

    @contextmanager
    def one_job(self) -> Iterator[None]:
        """Already one job: a decision tree predicts in one thread."""
        yield

    def save(self, path: Path) -> None:
        self.estimator.save(path)

    @classmethod
    def load(cls, path: Path, cfg: LetterToSoundConfig, input_shape: tuple[int, ...] = (), n_outputs: int = 1, *,
             task: str = "seq2seq") -> LetterToSoundRung:
        rung = cls(cfg, input_shape, n_outputs, task=task)
        estimator = LetterToSound.load(path)
        if estimator.window != cfg.window:
            raise InputError(f"model file {path} holds a model of letter windows {estimator.window} wide either "
                             f"side, the config asks for model.window {cfg.window}")
        estimator.min_samples_leaf, estimator.max_depth = cfg.min_samples_leaf, cfg.max_depth
        estimator.em_iterations, estimator.seed = cfg.em_iterations, rung.seed
        rung.estimator = estimator
        return rung
