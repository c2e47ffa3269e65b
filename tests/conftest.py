"""Shared fixtures. Tests that need ../shared/data fail loudly under CI=true instead of skipping."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MODELLADDER_DATA", REPO.parent / "shared" / "data"))


def require_data(name: str) -> Path:
    """The folder of a real dataset under $MODELLADDER_DATA; fails under CI, skips elsewhere."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        message = f"dataset folder {folder} is missing (set MODELLADDER_DATA to ../shared/data)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


@pytest.fixture
def mnist_dir() -> Path:
    return require_data("mnist")


@pytest.fixture(autouse=True)
def _data_env(monkeypatch, tmp_path):
    """Point the library at the shared data (read-only) and a per-test writable cache."""
    monkeypatch.setenv("MODELLADDER_DATA", str(SHARED_DATA))
    monkeypatch.setenv("MODELLADDER_CACHE", str(tmp_path / "cache"))
