"""Small synthetic problems shared by the model tests."""

import numpy as np

TOPICS = [["goal", "match", "team", "score"], ["vote", "party", "law", "election"],
          ["chip", "code", "cpu", "software"]]
FILLER = ["the", "a", "of", "and", "to", "is", "in", "it"]


def text_problem(n: int = 96, seed: int = 0):
    """Three classes of short texts: filler words plus at least one word from the class's own topic."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    texts = []
    for label in y:
        words = [rng.choice(TOPICS[label] if rng.random() < 0.5 else FILLER) for _ in range(rng.integers(3, 12))]
        words[rng.integers(len(words))] = rng.choice(TOPICS[label])
        texts.append(" ".join(words))
    return np.array(texts, dtype=object), y.astype(np.int64), (), 3


LETTERS = list("abcdefgh")


def seq2seq_problem(n: int = 96, seed: int = 0):
    """Short lower-case words -> their letters upper-cased and space-separated ("bad" -> "B A D"): a one-to-one,
    monotone mapping that a letter-context classifier and an encoder-decoder both learn. y: 1-tuples of references
    (data/seq2seq.py); the last value is the size of the target vocabulary (special tokens included)."""
    from modelladder.data.seq2seq import target_vocabulary

    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(LETTERS, size=rng.integers(2, 6))) for _ in range(n)]
    y = np.empty(n, dtype=object)
    for i, word in enumerate(words):
        y[i] = (" ".join(word.upper()),)
    return np.array(words, dtype=object), y, (), len(target_vocabulary(y))
