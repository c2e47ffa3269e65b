"""What every dataset loader returns: split arrays plus the fitted preprocessing that made them; and what the
training loop trains on, where texts have become token containers (data/batches.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from modelladder.data.batches import TokenSequences, TokenWindows


@dataclass
class DataBundle:
    """Preprocessed, split data.

    As a loader returns it, every split is a numpy array: float32 features, images (N, C, H, W) and tabular rows
    (N, F), or for text a 1-D object array of cleaned strings (input_shape ()), tokenised by each rung with its own
    tokenizer. A seq2seq bundle (data/seq2seq.py) holds source strings and, as labels, tuples of reference target
    strings (symbols separated by spaces; one reference per training row, all of a word's on val and test). Labels are int64 class indices for classification, float32 for regression. `preprocess` is the
    JSON-ready state that turns raw inputs into features (fitted on the training split only); it is saved with the
    run as preprocess.json so that prediction applies exactly the same transformation.

    What the training loop receives may hold token containers instead (data/batches.py): a text run's train and
    val texts as TokenSequences (verbs/build.py encoded()), and a pretraining run's corpus as TokenWindows of a
    memory-mapped token stream, with kind "corpus" and empty labels (verbs/pretrain.py).
    """

    X_train: np.ndarray | TokenSequences | TokenWindows
    y_train: np.ndarray
    X_val: np.ndarray | TokenSequences | TokenWindows
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    kind: Literal["image", "tabular", "text", "corpus", "seq2seq"]
    input_shape: tuple[int, ...]
    classes: list[str] = field(default_factory=list)  # empty for regression
    feature_names: list[str] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where the data came from, for the run's records

    @property
    def n_outputs(self) -> int:
        if self.kind == "seq2seq":  # the target vocabulary fitted on train (data/seq2seq.py)
            return len(self.preprocess["target_vocab"])
        return len(self.classes) if self.classes else 1

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return getattr(self, f"X_{name}"), getattr(self, f"y_{name}")
