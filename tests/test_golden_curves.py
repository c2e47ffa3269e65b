"""Every recipe, cut to a few steps (tests/golden/record.py), must still train as it did when its golden curve was
recorded: a refactor that changes training shows here at once. Re-record only for an intended change:
    MODELLADDER_DATA=../shared/data HF_HUB_OFFLINE=1 python -m tests.golden.record [RECIPE ...]
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import require_data
from tests.golden.record import (
    datasets,
    golden_cut,
    golden_path,
    recipe_id,
    recipes,
    run_recipe,
)

# Same machine and threads: bitwise equal. Another CPU (SIMD kernels, thread count, summation order) differs in
# float32's last bits (~1e-7), which a few steps leave far below 1e-4; a changed training moves losses by far more.
RTOL, ATOL = 1e-4, 1e-6
# leaderboard.json rounds to 4 decimals, and logreg's lbfgs stops short of convergence on these few rows, where
# BLAS threads move its log-loss by up to 3e-4 from run to run (seen on mnist_fewlabels and mnist_kfold)
SCORES_ATOL = 1e-3
DATA_FOLDERS = {"digits": None, "digits_captions": None, "cmudict": None, "mnist_captions": "mnist", "imdb_unsup": "imdb",
                "sst2": "sst"}  # dataset -> folder under $MODELLADDER_DATA (None: bundled with scikit-learn)
SLOW = {"configs.ladders.imdb", "configs.ladders.mnist_kfold", "configs.pretrain.smollm2_lora"}  # ~20 s or more here


def _param(path):
    marks = [pytest.mark.slow] if recipe_id(path) in SLOW else []
    return pytest.param(path, id=recipe_id(path), marks=marks)


@pytest.fixture
def serial_threads(monkeypatch):
    """The thread counts of a one-process run, which the curves were recorded with: under xdist a worker has one
    thread (tests/conftest.py), and one thread moves a CNN's losses by ~1e-3 within five steps."""
    from threadpoolctl import threadpool_limits

    from tests.conftest import SERIAL_THREADS
    from tests.threads import torch_threads

    if SERIAL_THREADS is None:
        yield
        return
    monkeypatch.setenv("OMP_NUM_THREADS", str(SERIAL_THREADS))
    with torch_threads(SERIAL_THREADS), threadpool_limits(limits=SERIAL_THREADS):
        yield


@pytest.mark.parametrize("recipe", [_param(path) for path in recipes()])
def test_golden_curve(recipe, tmp_path, monkeypatch, serial_threads):
    golden_file = golden_path(recipe)
    assert golden_file.is_file(), f"no golden curve for {recipe}: record one with python -m tests.golden.record {recipe}"
    golden = json.loads(golden_file.read_text())
    assert golden["cut"] == golden_cut(yaml.safe_load(recipe.read_text())), \
        f"{recipe} or the golden cut changed since {golden_file.name} was recorded: re-record it"
    for name in datasets(golden["cut"]):
        if (folder := DATA_FOLDERS.get(name, name)) is not None:
            require_data(folder)  # fails under CI, skips elsewhere
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    now = run_recipe(recipe, tmp_path)

    assert sorted(now["curves"]) == sorted(golden["curves"]), "the run folders with a loss curve changed"
    for folder, losses in golden["curves"].items():
        assert losses and len(now["curves"][folder]) == len(losses), f"{folder}: {now['curves'][folder]} vs {losses}"
        assert now["curves"][folder] == pytest.approx(losses, rel=RTOL, abs=ATOL), f"{folder}: the train losses changed"
    assert sorted(now["scores"]) == sorted(golden["scores"]), "the scikit-learn rungs changed"
    for folder, scores in golden["scores"].items():  # rungs without metrics.jsonl: their test / val scores
        assert now["scores"][folder] == pytest.approx(scores, rel=RTOL, abs=SCORES_ATOL), f"{folder}: the scores changed"


def test_every_golden_has_its_recipe():
    """A golden file left behind by a renamed or deleted recipe would hide that the recipe lost its check."""
    recorded = {path.stem for path in golden_path(recipes()[0]).parent.glob("*.json")}
    assert recorded == {recipe_id(path) for path in recipes()}
