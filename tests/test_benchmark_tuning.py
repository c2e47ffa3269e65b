"""The tuning benchmark's helpers: its two commands, the restricted ladder, trial seconds, the paired difference and
the per-rung lines. The two ladders themselves run only in the benchmark (minutes): not here."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from benchmarks.tuning import LADDER, ladder_command, paired, restricted_config, rung_lines, table, trial_seconds


def test_the_two_commands_differ_only_in_the_tuning_budget(tmp_path):
    untuned = ladder_command(LADDER, tmp_path, None, quick=False)
    tuned = ladder_command(LADDER, tmp_path, 20, quick=False)
    assert untuned[2:5] == ["modelladder", "run", str(LADDER)]
    assert tuned == untuned + ["--set", "tune.trials=20"]
    assert "data.limit=2000" in ladder_command(LADDER, tmp_path, 2, quick=True)


def test_restricted_config_keeps_the_named_rungs_and_everything_else(tmp_path):
    assert restricted_config([], tmp_path) == LADDER
    path = restricted_config(["mlp", "logreg"], tmp_path)
    original, kept = yaml.safe_load(LADDER.read_text()), yaml.safe_load(path.read_text())
    assert [r["name"] for r in kept["rungs"]] == ["logreg", "mlp"]  # the ladder's order
    assert {k: v for k, v in kept.items() if k != "rungs"} == {k: v for k, v in original.items() if k != "rungs"}
    with pytest.raises(SystemExit, match="no rung cnn"):
        restricted_config(["cnn"], tmp_path)


def test_trial_seconds_sums_the_finished_trials_durations(tmp_path):
    path = tmp_path / "trials.csv"
    assert trial_seconds(path) == 0.0
    pd.DataFrame({"number": [0, 1, 2], "state": ["COMPLETE", "PRUNED", "FAIL"],
                  "duration_s": [1.5, 0.25, None]}).to_csv(path, index=False)
    assert trial_seconds(path) == pytest.approx(1.75)


def _predictions(folder, predicted):
    folder.mkdir(parents=True)
    pd.DataFrame({"true": ["a", "b", "a", "b"], "predicted": predicted}).to_csv(folder / "predictions_test.csv",
                                                                                index=False)
    return folder / "predictions_test.csv"


def test_paired_difference_and_rung_lines(tmp_path):
    untuned = _predictions(tmp_path / "u" / "mlp", ["a", "a", "a", "a"])  # 2 of 4 right
    tuned = _predictions(tmp_path / "t" / "mlp", ["a", "b", "a", "a"])  # 3 of 4 right
    pair = paired(untuned, tuned, seed=0)
    assert pair["diff"] == pytest.approx(0.25) and pair["low"] <= 0.25 <= pair["high"] and pair["mcnemar_p"] == 1.0
    (tmp_path / "t" / "mlp" / "tune").mkdir()
    pd.DataFrame({"number": [0, 1], "duration_s": [2.0, 3.0]}).to_csv(tmp_path / "t" / "mlp" / "tune" / "trials.csv")
    row = {"rung": "mlp", "status": "ok", "test_accuracy": 0.5, "test_accuracy_low": 0.1, "test_accuracy_high": 0.9,
           "train_seconds": 1.0}
    lines = rung_lines([row], [row | {"test_accuracy": 0.75, "tune_trials": 2, "tune_budget": "2 trials"}],
                       tmp_path / "u", tmp_path / "t", seed=0)
    assert lines[0]["tuned_total_s"] == 6.0 and lines[0]["tune_trials"] == 2 and lines[0]["paired"]["diff"] == 0.25
    assert "mlp" in table(lines).splitlines()[1]
    failed = rung_lines([row | {"status": "failed"}], [row], tmp_path / "u", tmp_path / "t", seed=0)
    assert failed[0]["status"] == "untuned failed, tuned ok" and "untuned failed" in table(failed)
