"""Image datasets: per-channel normalisation fitted on train, image files in, random shift/rotate.

Raw images are in the dataset's own pixel scale (MNIST 0..255, digits 0..16). Features are
raw / pixel_max, standardised with one mean and std per channel computed on the training split.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from modelladder.data.bundle import DataBundle
from modelladder.data.splits import train_val
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

PIL_MODES = {1: "L", 3: "RGB"}


def fit_image_preprocess(x_train: np.ndarray, *, pixel_max: float, normalize: bool) -> dict:
    """JSON-ready state for (N, C, H, W) raw training images."""
    _, channels, height, width = x_train.shape
    stats = [_channel_stats(x_train[:, c], pixel_max) for c in range(channels)] if normalize else []
    return {
        "kind": "image",
        "channels": channels,
        "height": height,
        "width": width,
        "pixel_max": float(pixel_max),
        "normalize": normalize,
        "mean": [m for m, _ in stats] or [0.0] * channels,
        "std": [s if s > 0 else 1.0 for _, s in stats] or [1.0] * channels,
    }


def _channel_stats(pixels: np.ndarray, pixel_max: float) -> tuple[float, float]:
    """Mean and std of pixels / pixel_max, accumulated in float64."""
    if pixels.dtype == np.uint8:
        # a histogram of the 256 levels is exact, and far faster than a float64 copy of MNIST
        counts = np.bincount(pixels.ravel(), minlength=256)
        levels = np.arange(256) / pixel_max
        mean = counts @ levels / counts.sum()
        return float(mean), float(np.sqrt(counts @ (levels - mean) ** 2 / counts.sum()))
    scaled = pixels.astype(np.float64) / pixel_max
    return float(scaled.mean()), float(scaled.std())


def transform_images(preprocess: dict, raw) -> np.ndarray:
    """Features (N, C, H, W) float32 from raw images (N, H, W) or (N, C, H, W) in pixel scale."""
    raw = np.asarray(raw)
    c, h, w = preprocess["channels"], preprocess["height"], preprocess["width"]
    given = raw.shape
    if raw.ndim == 3 and c == 1:
        raw = raw[:, None]
    if raw.ndim != 4 or raw.shape[1:] != (c, h, w):
        allowed = f"(N, {h}, {w}) or (N, {c}, {h}, {w})" if c == 1 else f"(N, {c}, {h}, {w})"
        raise InputError(f"images must have shape {allowed}, got {given}")
    if not np.issubdtype(raw.dtype, np.number):
        raise InputError(f"images must hold numbers, got dtype {raw.dtype}")
    mean = np.asarray(preprocess["mean"], np.float32).reshape(1, c, 1, 1)
    std = np.asarray(preprocess["std"], np.float32).reshape(1, c, 1, 1)
    x = raw.astype(np.float32)
    x /= np.float32(preprocess["pixel_max"])
    x -= mean
    x /= std
    return x


def read_image_files(paths: list[Path], preprocess: dict) -> np.ndarray:
    """Raw images (N, C, H, W) in the dataset's pixel scale, decoded from PNG / JPEG files."""
    c, h, w = preprocess["channels"], preprocess["height"], preprocess["width"]
    images = []
    for path in map(Path, paths):
        if not path.is_file():
            raise InputError(f"image file {path} does not exist")
        try:
            with Image.open(path) as img:
                img = img.convert(PIL_MODES[c]).resize((w, h), Image.Resampling.BILINEAR)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InputError(f"image file {path} is not a readable PNG or JPEG image: {err}") from None
        pixels = np.asarray(img, np.float32).reshape(h, w, c).transpose(2, 0, 1)
        images.append(pixels * (preprocess["pixel_max"] / 255.0))
    return np.stack(images) if images else np.zeros((0, c, h, w), np.float32)


def image_bundle(
    x_train, y_train, x_test, y_test, *,
    cfg: DataConfig, seed: int, task: str, pixel_max: float, source: str,
) -> DataBundle:
    """Split off validation, fit normalisation on what is left for training, transform every split.

    Images are raw (N, C, H, W); labels are integer class ids 0..K-1.
    """
    labels = _label_encoder(task, cfg.dataset)
    train, val, scored = train_val(y_train, cfg, seed=seed, task=task)
    if scored is not None:  # a cross-validation fold: the scored fold is this run's test split
        x_test, y_test = x_train[scored], y_train[scored]
    x_fit = x_train[train]
    preprocess = fit_image_preprocess(x_fit, pixel_max=pixel_max, normalize=cfg.normalize)
    classes = [str(c) for c in np.unique(y_train)]
    return DataBundle(
        X_train=transform_images(preprocess, x_fit),
        y_train=labels(y_train[train]),
        X_val=transform_images(preprocess, x_train[val]),
        y_val=labels(y_train[val]),
        X_test=transform_images(preprocess, x_test),
        y_test=labels(y_test),
        kind="image",
        input_shape=tuple(x_train.shape[1:]),
        classes=classes if task == "classification" else [],
        preprocess=preprocess,
        source=source,
    )


def _label_encoder(task: str, dataset: str):
    if task == "classification":
        return lambda y: np.asarray(y, np.int64)
    if task == "regression":
        return lambda y: np.asarray(y, np.float32)
    raise InputError(
        f"dataset '{dataset}' supports task.name 'classification' or 'regression', got '{task}'"
    )


def augment(x: torch.Tensor, shift: int, rotate: float, generator: torch.Generator) -> torch.Tensor:
    """Each image of a (N, C, H, W) batch shifted by up to `shift` whole pixels and rotated by up to
    `rotate` degrees, drawn from `generator`. The uncovered border takes the image's darkest value."""
    if shift == 0 and rotate == 0:
        return x
    n, _, h, w = x.shape
    device = generator.device
    offsets = torch.randint(-shift, shift + 1, (n, 2), generator=generator, device=device).to(x.dtype)
    angles = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(rotate)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=device)
    # a rotation in pixel space, written in affine_grid's [-1, 1] coordinates (exact for H != W too)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    # whole-pixel offsets in [-1, 1] units, so that a pure shift moves pixels exactly
    theta[:, 0, 2] = offsets[:, 0] * 2 / w
    theta[:, 1, 2] = offsets[:, 1] * 2 / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    # normalised images have a nonzero background: pad with each image's minimum, not with 0
    fill = x.amin(dim=(2, 3), keepdim=True)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
