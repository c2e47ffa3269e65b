"""Shared fixtures. Tests that need ../shared/data fail loudly under CI=true instead of skipping.

`make test` runs the suite on 2 pytest-xdist workers (`-n 2 --dist loadgroup`); the hooks at the end keep each
worker to one thread and keep tests that share an expensive fixture on one worker.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import pytest

from modelladder.openmp import set_wait_policy

set_wait_policy()  # before any test module imports torch: a short OpenMP spin, as the `ladder` command has
# Under xdist, the torch thread count a one-process run has (golden curves need it), kept in the environment:
# test modules import this file a second time as tests.conftest, when the worker has one thread already.
THREADS_ENV = "MODELLADDER_TEST_SERIAL_THREADS"
if os.environ.get("PYTEST_XDIST_WORKER") and THREADS_ENV not in os.environ:
    # two workers on two cores: one thread each (torch, numpy's BLAS, scikit-learn's OpenMP, and the `ladder`
    # subprocesses tests start), or their threads fight over the cores. A test that sets a count itself gets it.
    import torch
    from threadpoolctl import threadpool_limits

    os.environ[THREADS_ENV] = str(torch.get_num_threads())
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # libraries loaded from here on, and subprocesses
    _ONE_THREAD = threadpool_limits(limits=1)  # numpy's BLAS, loaded with torch already
SERIAL_THREADS = int(os.environ.get(THREADS_ENV, "0")) or None

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


# ---------------------------------------------------------------- pytest-xdist (make test: -n 2 --dist loadgroup)

# Tests that must not run beside each other: they go to one worker, one after another.
SERIAL_GROUPS = {
    "tests/distributed/": "distributed",  # DDP / FSDP: each test starts 2 processes of its own
}
WIDE_SCOPE = re.compile(r"scope=[\"'](module|class|package|session)[\"']")


@functools.cache
def _session_folders() -> tuple[str, ...]:
    """Folders whose conftest.py holds a session fixture (trained runs their tests share), as 'tests/x/'."""
    return tuple(f"{path.parent.relative_to(REPO).as_posix()}/" for path in sorted((REPO / "tests").rglob("conftest.py"))
                 if path.parent != REPO / "tests" and "session" in WIDE_SCOPE.findall(path.read_text()))


@functools.cache
def _shares_fixtures(path: str) -> bool:
    """Whether a test file defines a fixture wider than one test."""
    return WIDE_SCOPE.search((REPO / path).read_text()) is not None


def xdist_scope(nodeid: str) -> str:
    """The unit of work a test belongs to: the tests of one unit run on one worker, in order, so a fixture they
    share is built once. A folder with a session fixture is one unit, a file with a module (or wider) fixture is
    one, and any other test is a unit alone (it goes to whichever worker is free)."""
    path = nodeid.split("::")[0]
    for prefix, name in SERIAL_GROUPS.items():
        if path.startswith(prefix):
            return name
    for folder in _session_folders():
        if path.startswith(folder):
            return folder
    return path if _shares_fixtures(path) else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadgroup with the units of xdist_scope. (xdist 3.8's own loadgroup reads xdist_group marks through
    item._nodeid, which pytest 9 no longer has: the marks have no effect, so the groups are made here.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduler(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return Scheduler(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: the slow tests that are units alone go first, so that neither worker is left with one long
    test at the end while the other waits (the scheduler hands out the bigger units first). The others keep their
    order, so the tests of a module stay together and its fixtures are built once."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    items.sort(key=lambda item: xdist_scope(item.nodeid) != item.nodeid or item.get_closest_marker("slow") is None)
