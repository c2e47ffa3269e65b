"""`ladder run PATH --label COLUMN` as a new user types it, on tiny data: a table with string labels, a regression
target, an image folder and a text table. Networks train for 2 epochs (--set); most of each test's time is the
process start and report.html's plots."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.e2e.helpers import ladder
from tests.tiny_data import churn_frame, house_frame, reviews_frame, write_shapes


def board(cwd, name) -> pd.DataFrame:
    root = cwd / "runs" / name
    assert (root / "report.html").is_file()
    return pd.read_csv(root / "leaderboard.csv")


@pytest.mark.slow
def test_a_table_with_string_labels(tmp_path):
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    result = ladder("run", "churn.csv", "--label", "churned", "--set", "train.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for said in ["ladder 'churn' on csv", "task: classification", "change with --task regression",
                 "rungs: linear", "results: runs/churn/"]:
        assert said in result.stderr, said
    rows = board(tmp_path, "churn")
    assert list(rows["rung"]) == ["linear", "random_forest", "hist_gb", "mlp"]
    assert rows["test_accuracy"].max() >= 0.85
    config = yaml.safe_load((tmp_path / "runs" / "churn" / "mlp" / "config.yaml").read_text())
    assert config["data"]["label"] == "churned" and config["data"]["path"] == str(tmp_path / "churn.csv")
    assert json.loads((tmp_path / "runs" / "churn" / "mlp" / "preprocess.json").read_text())["classes"] == ["no", "yes"]


@pytest.mark.slow
def test_a_regression_target(tmp_path):
    house_frame().to_csv(tmp_path / "house.csv", index=False)
    result = ladder("run", "house.csv", "--label", "price", "--set", "train.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "task: regression (label 'price' is numeric with" in result.stderr
    rows = board(tmp_path, "house")
    assert list(rows["rung"]) == ["ridge", "random_forest", "hist_gb", "mlp"]
    assert rows.set_index("rung").loc["ridge", "test_r2"] > 0.9  # the target is linear in the features


@pytest.mark.slow
def test_an_image_folder(tmp_path):
    write_shapes(tmp_path / "shapes")
    result = ladder("run", "shapes", "--set", "train.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "task: classification (2 classes" in result.stderr
    assert list(board(tmp_path, "shapes")["rung"]) == ["linear", "random_forest", "mlp", "cnn"]


@pytest.mark.slow
def test_a_text_table(tmp_path):
    """The text ladder's own rungs are checked in tests/test_auto.py; here two of them run (MiniLM takes minutes
    on a CPU), with the text read from the table's free-text column."""
    reviews_frame().to_csv(tmp_path / "reviews.csv", index=False)
    result = ladder("run", "reviews.csv", "--label", "sentiment", "--set", "train.epochs=1",
                    "--set", "rungs=[tfidf_logreg, transformer]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "text: column 'review' holds free text, so this is a text ladder" in result.stderr
    rows = board(tmp_path, "reviews")
    assert list(rows["rung"]) == ["tfidf_logreg", "transformer"]
    assert rows.set_index("rung").loc["tfidf_logreg", "test_accuracy"] >= 0.9


def test_a_table_without_label_exits_2(tmp_path):
    """The other bad inputs are in tests/test_auto.py."""
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    result = ladder("run", "churn.csv", cwd=tmp_path)
    assert result.returncode == 2
    assert "--label is required for a table: name the column to predict, one of ['tenure'" in result.stderr
    assert not (tmp_path / "runs").exists()
