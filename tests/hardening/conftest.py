from __future__ import annotations

import pytest

from tests.serve.runs import image_run, tabular_run, text_run, train


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict:
    """One run of each kind, never changed: tests copy the one they tamper with."""
    folder = tmp_path_factory.mktemp("hardening-runs")
    runs = {"tabular": tabular_run(folder), "text": text_run(folder), "image": image_run(folder)}
    runs["classic"] = train(folder, "people-logreg", {
        "data": {"dataset": "csv", "path": str(folder / "people.csv"), "label": "label"},
        "model": {"name": "logreg"}})
    return runs
