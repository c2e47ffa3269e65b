"""Images paired with captions, for task clip: coco_mini (real human captions), and digits and MNIST with
SYNTHETIC captions made from their labels.

A caption dataset's features are images, exactly as any image dataset's (data/images.py). Its labels are an
int64 array (N, 1 + K): column 0 the class id (-1 where the dataset has no classes), columns 1..K the indices
of the image's K captions in preprocess["captions"], the dataset's caption table. preprocess["prompts"]
holds one zero-shot prompt per class ("a photo of the digit seven"; empty without classes) and
preprocess["synthetic_captions"] says whether the captions were generated from the labels.

- digits_captions, mnist_captions: scikit-learn's 8x8 digits and MNIST (the splits of `digits` and `mnist`),
  each image paired with K = len(TEMPLATES) captions written from its label ("a handwritten seven", "the
  number 7", ...). These captions are SYNTHETIC: they say nothing but the class, and every image of a class
  shares the same ones, so learning them is learning a classifier by another route. The zero-shot prompt
  "a photo of the digit {name}" is not one of the templates.
- coco_mini: 159 real COCO 2017 images with 5 human captions each (the COCO-MINI debugging subset). The 80
  train2017 images are the training split (data.split.val of them held out), the 79 val2017 images the test
  split. That is very small: enough to show the pipeline and to measure retrieval over 79 images and 395
  captions, not to train a real model. Images are decoded with Pillow, centre-cropped to a square and resized
  to data.image_size (default 64), RGB unless data.channels is 1. The files are looked up in
  <data root>/coco_mini/ and downloaded there when missing: the caption JSONs from the COCO-MINI repository
  at a pinned commit, the images from images.cocodataset.org, each checked against coco_mini.sha256.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from modelladder.data.bundle import DataBundle
from modelladder.data.download import data_root, ensure_files
from modelladder.data.images import PIL_MODES, fit_image_preprocess, transform_images
from modelladder.data.splits import train_val
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

TASK = "clip"  # the one task these datasets serve
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# SYNTHETIC captions: {name} is the digit's word, {digit} its numeral
TEMPLATES = ["a handwritten {name}", "the digit {name}", "an image of the number {digit}",
             "a {name} written by hand", "a picture of a {digit}"]
PROMPT = "a photo of the digit {name}"  # the zero-shot prompt, deliberately not one of TEMPLATES

COCO_CAPTIONS = 5  # captions kept per COCO image (COCO gives each image at least five)
COCO_SIZE = 64  # default square side of a decoded COCO image
COCO_SPLITS = {"train": "train2017", "test": "val2017"}
COCO_MINI_REPO = ("https://raw.githubusercontent.com/Obmutescence/COCO-MINI/"
                  "644f29e7c1d2eefd9c4412d39bc5b0ee6fd0afd4/")
COCO_IMAGES = "http://images.cocodataset.org/"


def load_digits_captions(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """scikit-learn's digits (the `digits` splits) with synthetic captions."""
    from modelladder.data.sources import load_digits

    _check_task(task, cfg.dataset)
    return with_synthetic_captions(load_digits(cfg, seed=seed, task="classification"))


def load_mnist_captions(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """MNIST (the `mnist` splits, same files) with synthetic captions."""
    from modelladder.data.mnist import load_mnist

    _check_task(task, cfg.dataset)
    return with_synthetic_captions(load_mnist(cfg, seed=seed, task="classification"))


def _check_task(task: str, dataset: str) -> None:
    if task != TASK:
        raise InputError(f"data.dataset '{dataset}' pairs images with captions for task.name '{TASK}', "
                         f"got task.name '{task}'")


def with_synthetic_captions(bundle: DataBundle) -> DataBundle:
    """A digit bundle whose labels become (class, caption indices): class c's captions are TEMPLATES filled
    with its name, at rows c * K .. c * K + K - 1 of the caption table."""
    names = [DIGIT_NAMES[int(c)] for c in bundle.classes]
    table = [t.format(name=name, digit=c) for c, name in zip(bundle.classes, names) for t in TEMPLATES]
    k = len(TEMPLATES)

    def labels(y: np.ndarray) -> np.ndarray:
        return np.concatenate([y[:, None], y[:, None] * k + np.arange(k)], axis=1).astype(np.int64)

    preprocess = {**bundle.preprocess, "captions": table, "prompts": [PROMPT.format(name=n) for n in names],
                  "synthetic_captions": True}
    return replace(bundle, y_train=labels(bundle.y_train), y_val=labels(bundle.y_val), y_test=labels(bundle.y_test),
                   preprocess=preprocess, source=f"{bundle.source}, with SYNTHETIC captions from the labels")


# ---------------------------------------------------------------- coco_mini


def load_coco_mini(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """coco_mini's 80 training and 79 test images with their human captions (see the module's docstring)."""
    _check_task(task, cfg.dataset)
    folder = ensure_coco(data_root(cfg.root) / "coco_mini")
    size, channels = cfg.image_size or COCO_SIZE, cfg.channels or 3
    table: list[str] = []
    raw, labels = {}, {}
    for split, name in COCO_SPLITS.items():
        paths, captions = read_captions(folder, name)
        raw[split] = read_images(paths, size, channels)
        labels[split] = _caption_labels(captions, table)
    train, val, scored = train_val(labels["train"][:, 0], cfg, seed=seed, task=TASK)
    if scored is not None:  # a cross-validation fold: the scored fold is this run's test split
        raw["test"], labels["test"] = raw["train"][scored], labels["train"][scored]
    preprocess = fit_image_preprocess(raw["train"][train], pixel_max=255.0, normalize=cfg.normalize)
    preprocess |= {"captions": table, "prompts": [], "synthetic_captions": False}
    return DataBundle(
        X_train=transform_images(preprocess, raw["train"][train]), y_train=labels["train"][train],
        X_val=transform_images(preprocess, raw["train"][val]), y_val=labels["train"][val],
        X_test=transform_images(preprocess, raw["test"]), y_test=labels["test"],
        kind="image", input_shape=(channels, size, size), classes=[], preprocess=preprocess,
        source=f"coco_mini: {folder} (train2017: 80 images, val2017: 79 images, human captions)",
    )


def _caption_labels(captions: list[list[str]], table: list[str]) -> np.ndarray:
    """Labels (N, 1 + K) for images without classes: -1, then the rows their captions get in `table`."""
    rows = []
    for own in captions:
        rows.append([-1, *range(len(table), len(table) + len(own))])
        table.extend(own)
    return np.asarray(rows, np.int64).reshape(len(captions), 1 + COCO_CAPTIONS)


def coco_files() -> dict[str, str]:
    """Relative path -> sha256 of every coco_mini file the loader reads (the packaged coco_mini.sha256)."""
    lines = (files("modelladder.data") / "coco_mini.sha256").read_text().splitlines()
    return {path: digest for digest, path in (line.split() for line in lines if line.strip())}


def ensure_coco(folder: Path) -> Path:
    """`folder`, after downloading any coco_mini file it lacks: caption JSONs from COCO-MINI's pinned commit,
    images from the COCO image server, each checked against its sha256."""
    by_folder: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for path, digest in coco_files().items():
        sub, _, name = path.partition("/")
        base = COCO_MINI_REPO if sub == "annotations" else COCO_IMAGES
        by_folder[sub][name] = (base + path, digest)
    for sub, wanted in by_folder.items():
        ensure_files(folder / sub, wanted, "coco_mini")
    return folder


def read_captions(folder: Path, split: str) -> tuple[list[Path], list[list[str]]]:
    """(image paths, their first COCO_CAPTIONS captions by annotation id) from captions_<split>.json, sorted
    by file name."""
    path = folder / "annotations" / f"captions_{split}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        images = {im["id"]: im["file_name"] for im in data["images"]}
        notes = sorted(data["annotations"], key=lambda a: a["id"])
        by_image: dict[int, list[str]] = defaultdict(list)
        for note in notes:
            by_image[note["image_id"]].append(" ".join(str(note["caption"]).split()))
    except FileNotFoundError:
        raise InputError(f"coco_mini annotation file {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(f"coco_mini annotation file {path} is not a COCO captions JSON "
                         f"(images with id and file_name, annotations with id, image_id and caption): "
                         f"{type(err).__name__}: {err}") from None
    paths, captions = [], []
    for image_id, name in sorted(images.items(), key=lambda item: item[1]):
        own = by_image.get(image_id, [])
        if len(own) < COCO_CAPTIONS:
            raise InputError(f"coco_mini annotation file {path} gives image {name} {len(own)} captions; "
                             f"{COCO_CAPTIONS} or more are needed")
        paths.append(folder / split / name)
        captions.append(own[:COCO_CAPTIONS])
    if not paths:
        raise InputError(f"coco_mini annotation file {path} lists no images")
    return paths, captions


def read_images(paths: list[Path], size: int, channels: int) -> np.ndarray:
    """uint8 images (N, C, size, size): each centre-cropped to a square and resized (bicubic)."""
    out = np.zeros((len(paths), channels, size, size), np.uint8)
    for i, path in enumerate(paths):
        if not path.is_file():
            raise InputError(f"coco_mini image file {path} is missing")
        try:
            with Image.open(path) as img:
                square = ImageOps.fit(img.convert(PIL_MODES[channels]), (size, size), Image.Resampling.BICUBIC)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise InputError(f"coco_mini image file {path} is not a readable JPEG image: {err}") from None
        out[i] = np.asarray(square, np.uint8).reshape(size, size, channels).transpose(2, 0, 1)
    return out
