"""ModelLadder: from scikit-learn baselines to deep and pretrained models under one protocol."""

__version__ = "0.1.0"
