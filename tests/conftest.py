"""Shared fixtures. Tests that need ../shared/data fail loudly under CI=true instead of skipping.

`make test` runs the suite on 2 pytest-xdist workers (`-n 2 --dist loadgroup`); the hooks at the end keep each
worker to one thread and keep tests that share an expensive fixture on one worker.
"""

from __future__ import annotations

import os
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


def _group(item: pytest.Item) -> str | None:
    """The xdist group of a test: the folder of a session fixture it shares (a conftest's), else its file when it
    uses a module-scoped fixture, else None (the test goes to whichever worker is free)."""
    path = item.nodeid.split("::")[0]
    for prefix, name in SERIAL_GROUPS.items():
        if path.startswith(prefix):
            return name
    group = None
    for defs in item._fixtureinfo.name2fixturedefs.values():
        fixture = defs[-1]
        if fixture.scope == "session" and fixture.baseid not in ("", "tests"):
            return fixture.baseid if not fixture.baseid.endswith(".py") else path  # a conftest's folder
        if fixture.scope in ("module", "package", "class", "session") and fixture.baseid:
            group = path
    return group


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: every test that shares a fixture wider than itself gets an xdist_group mark (with --dist
    loadgroup a group runs on one worker, so the fixture is built once), and the slow tests go first, so that
    neither worker is left with one long test at the end while the other waits. A group keeps its order: its
    modules' tests stay together, so each module fixture is built once."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    grouped = set()
    for item in items:
        if (group := _group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            grouped.add(item.nodeid)
    # stable: all but the ungrouped slow tests keep their order
    items.sort(key=lambda item: item.nodeid in grouped or item.get_closest_marker("slow") is None)
