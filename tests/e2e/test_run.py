"""`ladder run`: the default digits ladder end to end, as `make demo` runs it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.e2e.helpers import ladder


@pytest.fixture(scope="module")
def digits_ladder(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("ladder")
    result = ladder("run", cwd=cwd)
    return cwd, result


def test_default_ladder_prints_leaderboard_and_writes_files(digits_ladder):
    cwd, result = digits_ladder
    assert result.returncode == 0, result.stderr
    assert "digits leaderboard" in result.stdout
    for rung in ["logreg", "random_forest", "mlp", "cnn"]:
        assert rung in result.stdout
    board = pd.read_csv(cwd / "runs" / "digits" / "leaderboard.csv")
    assert list(board["rung"]) == ["logreg", "random_forest", "mlp", "cnn"]
    assert json.loads((cwd / "runs" / "digits" / "leaderboard.json").read_text())[0]["rung"] == "logreg"
    # every rung learns the digits well; the deep rungs at least as well as the linear one
    acc = dict(zip(board["rung"], board["test_accuracy"]))
    assert min(acc.values()) >= 0.93, acc
    assert acc["cnn"] >= 0.97 and acc["mlp"] >= 0.96, acc
    sized = board.set_index("rung")
    assert (sized.drop("random_forest")["params"] > 0).all() and (board["train_seconds"] > 0).all()
    assert sized.loc["random_forest", "nodes"] > 0 and pd.isna(sized.loc["random_forest", "params"])  # trees: nodes
    assert (board["latency_ms_p50"] > 0).all() and (board["throughput_per_s"] > 0).all()
    assert sized.loc["cnn", "params"] > sized.loc["logreg", "params"]
    env = json.loads((cwd / "runs" / "digits" / "env.json").read_text())["cost"]
    assert env["latency_threads"] == 1 and env["load_average_end"] is not None
    # the verdict: every score with its 95% interval, every rung tested against the best (issue 15)
    assert (board["test_accuracy_low"] <= board["test_accuracy"]).all()
    assert (board["test_accuracy"] <= board["test_accuracy_high"]).all()
    assert board["best"].sum() == 1 and set(board["test"].dropna()) == {"mcnemar-exact"}
    assert "vs best" in result.stdout and "Holm-adjusted" in " ".join(result.stdout.split())


def test_each_rung_folder_is_a_complete_run(digits_ladder):
    cwd, _ = digits_ladder
    root = cwd / "runs" / "digits"
    for rung, weights in [("logreg", "model.skops"), ("random_forest", "model.skops"),
                          ("mlp", "model.safetensors"), ("cnn", "model.safetensors")]:
        for name in ["config.yaml", "preprocess.json", "env.json", "summary.json", "eval_test.json",
                     "predictions_test.csv", weights]:
            assert (root / rung / name).is_file(), (rung, name)
    lines = (root / "mlp" / "metrics.jsonl").read_text().splitlines()
    val = [json.loads(line) for line in lines if json.loads(line).get("split") == "val"]
    assert len(val) >= 2 and val[-1]["loss"] < val[0]["loss"]


def test_existing_ladder_is_not_overwritten(digits_ladder):
    cwd, _ = digits_ladder
    board = cwd / "runs" / "digits" / "leaderboard.csv"
    before = board.read_bytes()
    result = ladder("run", cwd=cwd)
    assert result.returncode == 2
    assert "already exists; pass --overwrite" in result.stderr
    assert board.read_bytes() == before


def test_evaluate_reproduces_the_leaderboard(digits_ladder):
    cwd, _ = digits_ladder
    board = pd.read_csv(cwd / "runs" / "digits" / "leaderboard.csv").set_index("rung")
    result = ladder("evaluate", "runs/digits/mlp", cwd=cwd)
    assert result.returncode == 0, result.stderr
    acc = float(result.stdout.split("accuracy=")[1].split()[0])
    assert acc == pytest.approx(board.loc["mlp", "test_accuracy"], abs=1e-4)
