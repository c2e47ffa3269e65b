"""The pretraining tests run tiny models: one thread each avoids the waits of two threads on a busy machine."""

from __future__ import annotations

import pytest

from tests.threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
