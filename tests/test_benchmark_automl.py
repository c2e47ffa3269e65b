"""The AutoML benchmark's helpers: the shared split, our command in either form, the best rung, accuracy with
its interval. AutoGluon itself runs only in the benchmark (its own environment, minutes): not here."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from benchmarks.automl import LABEL, accuracy, best_rung, export_split, ours_command
from tests.conftest import require_data


def test_the_split_is_adults_official_one_with_one_label_spelling(tmp_path):
    root = require_data("adult").parent
    train_csv, test_csv = export_split(root, tmp_path, limit=50)
    train, test = pd.read_csv(train_csv), pd.read_csv(test_csv)
    assert len(train) == len(test) == 50 and list(train.columns) == list(test.columns)
    assert set(train[LABEL]) | set(test[LABEL]) <= {"<=50K", ">50K"}
    assert test["age"].iloc[0] == 25  # adult.test's first row after its comment line


def test_ours_command_is_the_cli_form_or_a_ladder_of_adults_rungs(tmp_path):
    train_csv = tmp_path / "train.csv"
    cli = ours_command(train_csv, 30, tmp_path / "runs", cli_form=True)
    assert cli[3:] == ["run", str(train_csv), "--label", "income", "--time-limit", "30", "--runs-dir",
                       str(tmp_path / "runs"), "--overwrite"]
    untimed = ours_command(train_csv, 30, tmp_path / "runs", cli_form=True, timed=False)
    assert "--time-limit" not in untimed and untimed[5:7] == ["--label", "income"]
    fallback = ours_command(train_csv, 30, tmp_path / "runs", cli_form=False)
    config = yaml.safe_load((tmp_path / "automl-adult.yaml").read_text())
    assert fallback[4] == str(tmp_path / "automl-adult.yaml")
    assert [r["name"] for r in config["rungs"]] == ["logreg", "hist_gb", "mlp"]
    assert config["data"] == {"dataset": "csv", "path": str(train_csv), "label": "income", "split": {"val": 0.1}}


def test_best_rung_skips_failed_rows_and_accuracy_has_a_wilson_interval(tmp_path):
    (tmp_path / "adult").mkdir()
    rows = [{"rung": "linear", "test_accuracy": 0.85}, {"rung": "mlp", "status": "failed", "error": "boom"},
            {"rung": "hist_gb", "test_accuracy": 0.87}]
    (tmp_path / "adult" / "leaderboard.json").write_text(json.dumps(rows))
    assert best_rung(tmp_path) == tmp_path / "adult" / "hist_gb"
    result = accuracy(["a", "b", "a", "a"], ["a", "b", "b", "a"])
    assert result["accuracy"] == 0.75 and 0.2 < result["low"] < 0.75 < result["high"] < 1
    with pytest.raises(RuntimeError, match="expected one ladder"):
        best_rung(tmp_path / "adult")
