"""Tiny data a user might bring, written in a test's folder: tables, an image folder, texts (seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

GOOD = ["great fun film, loved it", "a wonderful and touching story", "brilliant acting and a clever plot",
        "i enjoyed every minute of it", "superb and moving from start to end"]
BAD = ["boring and far too long", "a dull mess of a film", "terrible acting and a silly plot",
       "i hated every minute of it", "weak script and flat jokes throughout"]


def churn_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns, a categorical one, and a string label 'churned' (yes / no) that they predict."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "pro"], n)
    churned = np.where(x1 + 0.5 * x2 + (plan == "basic") > 0.3, "yes", "no")
    return pd.DataFrame({"tenure": x1.round(3), "spend": x2.round(3), "plan": plan, "churned": churned})


def house_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """A numeric target 'price' (a regression): a linear function of the features plus noise."""
    rng = np.random.default_rng(seed)
    rooms, age = rng.normal(size=n), rng.normal(size=n)
    area = rng.choice(["north", "south"], n)
    price = 3 * rooms - 2 * age + 1.5 * (area == "south") + rng.normal(scale=0.3, size=n)
    return pd.DataFrame({"rooms": rooms.round(3), "age": age.round(3), "area": area, "price": price.round(3)})


def reviews_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Free-text reviews and their sentiment."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        good = i % 2 == 0
        rows.append({"review": " ".join(rng.choice(GOOD if good else BAD, 2)) + f" (review {i})",
                     "sentiment": "pos" if good else "neg"})
    return pd.DataFrame(rows)


def write_shapes(folder: Path, per_class: int = 24, size: int = 16, seed: int = 0) -> Path:
    """An image folder: grayscale squares and circles on noise, one subfolder per class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = size // 2
    for cls in ("circle", "square"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 40, (size, size)).astype(np.uint8)
            if cls == "square":
                pixels[c // 2:c + c // 2, c // 2:c + c // 2] = 220
            else:
                pixels[(yy - c) ** 2 + (xx - c) ** 2 < (size // 4) ** 2] = 220
            Image.fromarray(pixels).save(folder / cls / f"{i}.png")
    return folder


def write_text_folder(folder: Path, per_class: int = 10) -> Path:
    """A text folder: one subfolder of .txt files per class."""
    for cls, texts in (("pos", GOOD), ("neg", BAD)):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (folder / cls / f"{i}.txt").write_text(f"{texts[i % len(texts)]} number {i}", encoding="utf-8")
    return folder
