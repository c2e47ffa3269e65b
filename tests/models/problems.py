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
