"""MNIST from the four canonical IDX files in <data root>/mnist/, downloaded there when missing.

The official split is kept: 60,000 training images (of which data.split.val go to validation)
and 10,000 test images, (N, 1, 28, 28) with pixels 0..255.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.data.download import data_root, download, writable_folder
from modelladder.data.images import image_bundle
from modelladder.errors import InputError

if TYPE_CHECKING:
    from modelladder.config import DataConfig

URLS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]

# sha256 of the UNCOMPRESSED IDX content: the same for LeCun's .gz files and any re-gzipped copy
FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# the leading bytes of an IDX file: two zero bytes, 0x08 for uint8 data, the number of dimensions
IMAGES_MAGIC, LABELS_MAGIC = b"\x00\x00\x08\x03", b"\x00\x00\x08\x01"


def load_mnist(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    folder = ensure_files(data_root(cfg.root) / "mnist")
    x_train = read_idx(folder / "train-images-idx3-ubyte.gz", IMAGES_MAGIC)
    y_train = read_idx(folder / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)
    x_test = read_idx(folder / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)
    y_test = read_idx(folder / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)
    for images, labels, name in [(x_train, y_train, "train"), (x_test, y_test, "t10k")]:
        if len(images) != len(labels):
            raise InputError(
                f"{folder}: {name} images hold {len(images)} examples but {name} labels hold {len(labels)}"
            )
    return image_bundle(
        x_train[:, None], y_train, x_test[:, None], y_test,
        cfg=cfg, seed=seed, task=task, pixel_max=255.0, source=f"mnist: {folder}",
    )


def ensure_files(folder: Path) -> Path:
    """`folder`, after downloading any of the four files it lacks."""
    missing = [name for name in FILES if not (folder / name).is_file()]
    if not missing:
        return folder
    if not writable_folder(folder):
        raise InputError(
            f"MNIST files {missing} are missing from {folder}, and that folder is not writable so they "
            f"cannot be downloaded there. Put the four files ({', '.join(FILES)}) from {URLS[0]} into "
            f"{folder}, or set data.root / $MODELLADDER_DATA to a writable folder"
        )
    for name in missing:
        download([url + name for url in URLS], folder / name, FILES[name])
    return folder


def read_idx(path: Path, magic: bytes) -> np.ndarray:
    """A uint8 IDX array from a .gz file, checked for magic, size and checksum."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(
            f"MNIST file {path} is not a complete gzip file ({err}); delete it to download it again"
        ) from None
    if raw[:4] != magic:
        raise InputError(
            f"MNIST file {path} starts with bytes {raw[:4].hex()}, expected the IDX magic {magic.hex()}: "
            "not an MNIST IDX file of this kind"
        )
    ndim = magic[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise InputError(
            f"MNIST file {path} declares shape {dims} ({int(np.prod(dims))} bytes of data) but holds "
            f"{max(len(raw) - header, 0)}: the file is truncated or corrupted"
        )
    expected = FILES.get(path.name)
    if expected and hashlib.sha256(raw).hexdigest() != expected:
        raise InputError(
            f"MNIST file {path} has the right shape but not the canonical content (sha256 mismatch)"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)
