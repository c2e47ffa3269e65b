"""Synthetic tables with a sensitive column: one whose label depends on the group, one where it does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def group_table(path: Path, *, unfair: bool, n: int = 4000, seed: int = 0) -> Path:
    """Columns x (a useful feature), noise, group (A / B, half each) and label (yes / no). Unfair: group A
    adds 2 to the score behind the label, so a model that sees the group selects A far more often."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], size=n)
    x = rng.normal(size=n)
    score = x + (2.0 * (group == "A") - 1.0 if unfair else 0.0) + 0.3 * rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=n), "group": group,
                          "label": np.where(score > 0, "yes", "no")})
    frame.to_csv(path, index=False)
    return path
