"""A regression ladder on scikit-learn's diabetes table (442 rows, target 25..346): linear (Ridge), random forest,
gradient boosting and an MLP trained on the standardised target; every metric with its interval, the paired
comparison, predictions in the target's units from the Predictor, `ladder predict` and the HTTP API."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from rich.console import Console

from modelladder.config import validate_ladder
from modelladder.report.leaderboard import leaderboard_table
from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from modelladder.verbs.ladder import run_ladder
from tests.e2e.helpers import ladder

RUNGS = ["ridge", "random_forest", "hist_gb", "mlp"]


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> tuple[Path, Path]:
    """(the CSV, the ladder folder): the default split, stratify left at its default (ignored for regression)."""
    from sklearn.datasets import load_diabetes

    root = tmp_path_factory.mktemp("diabetes")
    csv = root / "diabetes.csv"
    load_diabetes(as_frame=True).frame.to_csv(csv, index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(root / "cache"))
        ladder_cfg = validate_ladder({
            "name": "diabetes", "seed": 0,
            "data": {"dataset": "csv", "path": str(csv), "label": "target"},
            "task": {"name": "regression"},
            "train": {"epochs": 30, "batch_size": 64, "progress": False,
                      "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.01}},
            "rungs": [{"name": "ridge", "model": {"name": "linear"}},
                      {"name": "random_forest", "model": {"name": "random_forest", "n_estimators": 50}},
                      {"name": "hist_gb", "model": {"name": "hist_gb", "max_iter": 50}},
                      {"name": "mlp", "model": {"name": "mlp", "hidden": [64]}}],
        })
        run_ladder(ladder_cfg, root / "runs", console=Console(file=io.StringIO()))
    return csv, root / "runs" / "diabetes"


@pytest.mark.slow
def test_every_rung_has_rmse_mae_r2_mse_with_intervals_and_the_mlp_learns(diabetes):
    rows = json.loads((diabetes[1] / "leaderboard.json").read_text())
    assert [r["rung"] for r in rows] == RUNGS
    for row in rows:
        for metric in ("rmse", "mae", "r2", "mse"):
            assert row[f"test_{metric}_low"] <= row[f"test_{metric}"] <= row[f"test_{metric}_high"], (row, metric)
        assert row["test_rmse"] == pytest.approx(np.sqrt(row["test_mse"]), rel=1e-3)
    by_rung = {r["rung"]: r for r in rows}
    assert by_rung["ridge"]["estimator"] == "Ridge"
    # the MLP's target is standardised: before, its test R^2 was -4.4 (it predicted near 0 for targets near 150)
    assert 0.2 < by_rung["mlp"]["test_r2"] < 0.7
    assert by_rung["mlp"]["test_rmse"] < 70  # the target's standard deviation is 77
    # every rung against the best on rmse, by the paired bootstrap
    assert sum(r["best"] for r in rows) == 1
    best = next(r for r in rows if r["best"])
    assert best["test_rmse"] == min(r["test_rmse"] for r in rows)
    assert all(r["test"] == "paired-bootstrap" and 0 < r["p_adj"] <= 1 for r in rows if not r["best"])
    console = Console(file=io.StringIO(), width=200)
    console.print(leaderboard_table(rows, "diabetes"))
    text = console.file.getvalue()
    assert "test rmse [95% CI]" in text and "test r2 [95% CI]" in text and "linear (Ridge)" in text


@pytest.mark.slow
def test_only_networks_save_the_target_scale_and_predict_in_the_targets_units(diabetes):
    csv, folder = diabetes
    table = pd.read_csv(csv)
    mlp = json.loads((folder / "mlp" / "preprocess.json").read_text())
    predictions = pd.read_csv(folder / "mlp" / "predictions_test.csv")
    assert 100 < mlp["target"]["mean"] < 200 and 60 < mlp["target"]["std"] < 90  # the training split's
    assert "target" not in json.loads((folder / "ridge" / "preprocess.json").read_text())
    assert predictions["predicted"].between(0, 400).all()
    predictor = Predictor.load(folder / "mlp")
    values = predictor.predict(table.drop(columns="target").head(20))
    assert values.dtype.kind == "f" and 50 < values.mean() < 250


@pytest.mark.slow
def test_a_run_saved_before_target_scaling_loads_with_identity(diabetes, tmp_path):
    run = Path(shutil.copytree(diabetes[1] / "mlp", tmp_path / "mlp"))
    preprocess = json.loads((run / "preprocess.json").read_text())
    target = preprocess.pop("target")
    (run / "preprocess.json").write_text(json.dumps(preprocess))
    rows = pd.read_csv(diabetes[0]).drop(columns="target").head(5)
    old, new = Predictor.load(run).predict(rows), Predictor.load(diabetes[1] / "mlp").predict(rows)
    np.testing.assert_allclose(old * target["std"] + target["mean"], new, rtol=1e-5)


@pytest.mark.slow
def test_ladder_predict_and_serve_return_numbers(diabetes, tmp_path):
    csv, folder = diabetes
    rows = pd.read_csv(csv).drop(columns="target").head(6)
    rows.to_csv(tmp_path / "new.csv", index=False)
    expected = Predictor.load(folder / "mlp").predict(rows)
    done = ladder("predict", folder / "mlp", tmp_path / "new.csv", "--out", tmp_path / "out.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["prediction"], expected, rtol=1e-5)
    with TestClient(create_app(Predictor.load(folder / "mlp"), ServeSettings())) as client:
        answer = client.post("/predict", json={"rows": rows.to_dict(orient="records")})
    assert answer.status_code == 200, answer.text
    served = answer.json()["predictions"]
    assert all(isinstance(v, float) for v in served)
    np.testing.assert_allclose(served, expected, rtol=1e-5)
