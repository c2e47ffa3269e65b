"""imagefolder: images a user brings, one subfolder per class, decoded with Pillow.

data.path is the folder. Each subfolder is a class named after it (classes sorted by name); every file under a
class folder, at any depth, must be an image Pillow decodes (PNG, JPEG, BMP, GIF, WebP); hidden files such as
.DS_Store are skipped, and so are files lying directly in data.path (a README). A file that is not an image,
or that does not decode, is an InputError naming it.

Images are converted to data.channels (1 grayscale, 3 RGB; default: the first image's) and resized (bilinear)
to data.image_size square (default: the first image's size). data.split.test of them is held out as the test
split (stratified), then the training part is split and normalised as every image dataset (data/images.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from modelladder.data.bundle import DataBundle
from modelladder.data.images import image_bundle, read_image_files
from modelladder.data.splits import holdout
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def load_imagefolder(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    root = _root(cfg.path)
    classes, paths, labels = list_images(root)
    channels, height, width = _shape(paths[0], cfg)
    raw = read_image_files(paths, {"channels": channels, "height": height, "width": width, "pixel_max": 255.0})
    stratify = task == "classification" and cfg.split.stratify
    train, test = holdout(labels, cfg.split.test, seed=seed, stratify=stratify, name="data.split.test")
    bundle = image_bundle(raw[train], labels[train], raw[test], labels[test], cfg=cfg, seed=seed, task=task,
                          pixel_max=255.0, source=f"imagefolder: {root}")
    if bundle.classes:  # the folder names, not the label indices image_bundle would show
        bundle.classes = classes
    return bundle


def _root(path: Path | None) -> Path:
    if path is None:
        raise InputError("data.path is required for data.dataset 'imagefolder': a folder with one subfolder "
                         "of images per class")
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"data.path {root} is not a folder: data.dataset 'imagefolder' needs a folder with one "
                         "subfolder of images per class")
    return root


def list_images(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image paths, label per path): every class folder's files, sorted."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise InputError(f"imagefolder {root} holds {len(folders)} class subfolder(s); it needs at least 2, "
                         "one per class, each holding that class's images")
    paths, labels = [], []
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))
        if not files:
            raise InputError(f"imagefolder class folder {folder} holds no images")
        for path in files:
            if path.suffix.lower() not in SUFFIXES:
                raise InputError(f"imagefolder file {path} is not an image (allowed: {', '.join(SUFFIXES)}); "
                                 "move it out of the class folders")
        paths += files
        labels += [label] * len(files)
    return [f.name for f in folders], paths, np.asarray(labels, np.int64)


def _hidden(path: Path, folder: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def _shape(first: Path, cfg: DataConfig) -> tuple[int, int, int]:
    """(channels, height, width): from the config, or else from the first image."""
    try:
        with Image.open(first) as img:
            mode, (width, height) = img.mode, img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(f"image file {first} is not a readable PNG or JPEG image: {err}") from None
    channels = cfg.channels or (1 if mode in GRAY_MODES else 3)
    if cfg.image_size is not None:
        height = width = cfg.image_size
    return channels, height, width
