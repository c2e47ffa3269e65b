"""MNIST from the real IDX files in ../shared/data, and clear errors for damaged copies."""

from __future__ import annotations

import gzip
import re
import shutil

import numpy as np
import pytest

from modelladder.config import DataConfig
from modelladder.data.load import load_data
from modelladder.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from modelladder.errors import InputError
from tests.conftest import require_data

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    """One load for the module: decoding 70,000 images takes about a second."""
    return load_data(DataConfig(dataset="mnist", root=require_data("mnist").parent), seed=0)


def test_official_split_shapes_and_label_counts(mnist, mnist_dir):
    assert mnist.source == f"mnist: {mnist_dir}"
    assert mnist.input_shape == (1, 28, 28) and mnist.classes == [str(d) for d in range(10)]
    assert mnist.X_train.shape == (54000, 1, 28, 28) and mnist.X_val.shape == (6000, 1, 28, 28)
    assert mnist.X_test.shape == (10000, 1, 28, 28) and mnist.X_test.dtype == np.float32
    assert (np.bincount(mnist.y_train) + np.bincount(mnist.y_val)).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS
    assert np.bincount(mnist.y_val).min() >= 540  # stratified validation split


def test_normalisation_statistics(mnist):
    assert mnist.preprocess["mean"][0] == pytest.approx(0.1307, abs=5e-4)
    assert mnist.preprocess["std"][0] == pytest.approx(0.3081, abs=5e-4)
    assert mnist.X_train.mean() == pytest.approx(0, abs=1e-4)
    assert mnist.X_test.min() == pytest.approx(-mnist.preprocess["mean"][0] / mnist.preprocess["std"][0])


def corrupt_copy(mnist_dir, tmp_path, name: str, content: bytes):
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_dir, folder)
    (folder / name).chmod(0o644)
    (folder / name).write_bytes(content)
    return folder / name


def labels_bytes(mnist_dir) -> bytes:
    return gzip.decompress((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())


def test_truncated_idx_file_is_named_through_load_data(mnist_dir, tmp_path):
    raw = labels_bytes(mnist_dir)
    path = corrupt_copy(mnist_dir, tmp_path, "train-labels-idx1-ubyte.gz", gzip.compress(raw[:30008]))
    with pytest.raises(InputError) as err:
        load_data(DataConfig(dataset="mnist", root=tmp_path), seed=0)
    assert str(err.value) == (
        f"MNIST file {path} declares shape (60000,) (60000 bytes of data) but holds 30000: "
        "the file is truncated or corrupted"
    )


@pytest.mark.parametrize("damage, message", [
    (lambda raw: gzip.compress(raw)[:5000], "is not a complete gzip file"),
    (lambda raw: raw, "is not a complete gzip file"),  # not gzipped at all
    (lambda raw: gzip.compress(IMAGES_MAGIC + raw[4:]),
     "starts with bytes 00000803, expected the IDX magic 00000801"),
    (lambda raw: gzip.compress(raw[:-1] + bytes([(raw[-1] + 1) % 10])),  # one label changed
     "not the canonical content (sha256 mismatch)"),
])
def test_damaged_idx_files(mnist_dir, tmp_path, damage, message):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(damage(labels_bytes(mnist_dir)))
    with pytest.raises(InputError, match=rf"^MNIST file {re.escape(str(path))} .*{re.escape(message)}"):
        read_idx(path, LABELS_MAGIC)


def test_missing_files_in_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("a data root below a regular file cannot be created")
    monkeypatch.setattr("modelladder.data.download.urlopen", lambda *a, **k: pytest.fail("no download"))
    with pytest.raises(InputError) as err:
        load_data(DataConfig(dataset="mnist", root=blocked), seed=0)
    assert str(err.value).startswith("MNIST files ['train-images-idx3-ubyte.gz', ")
    assert f"are missing from {blocked / 'mnist'}, and that folder is not writable" in str(err.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/" in str(err.value)
