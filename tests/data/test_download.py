"""Downloads without a network: the URL opener is replaced by one that serves the shared files."""

from __future__ import annotations

import gzip
import io
from urllib.error import URLError

import numpy as np
import pytest

from modelladder.data.mnist import FILES, LABELS_MAGIC, URLS, ensure_files, read_idx
from modelladder.errors import InputError


class FakeOpener:
    """Stands in for urllib's urlopen: answers each URL from `served`, records what was asked."""

    def __init__(self, served: dict):
        self.served, self.asked = served, []

    def __call__(self, url, timeout=None):
        self.asked.append(url)
        answer = self.served.get(url, URLError("no route to host"))
        if isinstance(answer, Exception):
            raise answer
        return io.BytesIO(answer)


def test_missing_files_are_downloaded_checked_and_renamed(mnist_dir, tmp_path, monkeypatch):
    opener = FakeOpener({URLS[0] + name: (mnist_dir / name).read_bytes() for name in FILES})
    monkeypatch.setattr("modelladder.data.download.urlopen", opener)
    folder = ensure_files(tmp_path / "data" / "mnist")
    assert opener.asked == [URLS[0] + name for name in FILES]
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no temporary file left
    labels = read_idx(folder / "train-labels-idx1-ubyte.gz", LABELS_MAGIC)
    assert np.bincount(labels).tolist()[:3] == [5923, 6742, 5958]
    ensure_files(folder)
    assert len(opener.asked) == 4  # present files are not fetched again


def test_the_fallback_url_is_tried_when_the_first_fails(mnist_dir, tmp_path, monkeypatch):
    name = "t10k-labels-idx1-ubyte.gz"
    folder = tmp_path / "mnist"
    folder.mkdir()
    for other in FILES:
        if other != name:
            (folder / other).symlink_to(mnist_dir / other)
    opener = FakeOpener({URLS[1] + name: (mnist_dir / name).read_bytes()})
    monkeypatch.setattr("modelladder.data.download.urlopen", opener)
    ensure_files(folder)
    assert opener.asked == [URLS[0] + name, URLS[1] + name]
    assert (folder / name).is_file()


def test_a_checksum_failure_leaves_no_file_behind(tmp_path, monkeypatch):
    wrong = gzip.compress(b"\x00\x00\x08\x01" + bytes(10))
    opener = FakeOpener({url + name: wrong for url in URLS for name in FILES})
    monkeypatch.setattr("modelladder.data.download.urlopen", opener)
    folder = tmp_path / "mnist"
    with pytest.raises(InputError) as err:
        ensure_files(folder)
    message = str(err.value)
    assert message.startswith(f"could not download train-images-idx3-ubyte.gz into {folder}: {URLS[0]}")
    assert f"{URLS[1]}train-images-idx3-ubyte.gz: sha256 of the content is " in message
    assert f"expected {FILES['train-images-idx3-ubyte.gz']}" in message
    assert message.endswith(f"Download it by hand into {folder}")
    assert list(folder.iterdir()) == []
