"""Config conveniences: rungs listed by model name alone, and paths resolved from the config file's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelladder.config import load_ladder_config, load_run_config, rung_configs, validate_ladder
from modelladder.errors import InputError
from tests.e2e.helpers import ladder

LONG = {"rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                  {"name": "wide", "model": {"name": "mlp", "hidden": [64]}},
                  {"name": "mlp", "model": {"name": "mlp"}}],
        "train": {"epochs": 1}}


def dumps(ladder_cfg) -> list[dict]:
    return [cfg.model_dump(mode="json") for cfg in rung_configs(ladder_cfg)]


def test_shorthand_rungs_validate_to_the_long_form():
    short = {**LONG, "rungs": ["logreg", LONG["rungs"][1], "mlp"]}  # mixed with a mapping
    assert dumps(validate_ladder(short)) == dumps(validate_ladder(LONG))
    assert [r.name for r in validate_ladder(short).rungs] == ["logreg", "wide", "mlp"]


def test_shorthand_unknown_model_gets_did_you_mean():
    with pytest.raises(InputError) as err:
        validate_ladder({"rungs": ["logreg", "mlpp"]})
    (problem,) = err.value.problems
    assert problem.startswith("rungs[1].model.name must be one of [")
    assert "'hist_gb'" in problem and "got 'mlpp'" in problem and "did you mean 'mlp'" in problem


def test_shorthand_duplicates_refused():
    with pytest.raises(InputError) as err:
        validate_ladder({"rungs": ["logreg", {"name": "logreg", "model": {"name": "mlp"}}]})
    assert "rungs[1].name 'logreg' is used by more than one rung" in err.value.problems


def test_shorthand_with_set_overrides(tmp_path):
    (tmp_path / "l.yaml").write_text("rungs: [logreg, mlp]\n")
    cfg = load_ladder_config(tmp_path / "l.yaml", ["train.epochs=2", "data.limit=300"])
    assert [(c.name, c.model.name, c.train.epochs, c.data.limit) for c in rung_configs(cfg)] == [
        ("logreg", "logreg", 2, 300), ("mlp", "mlp", 2, 300)]
    cfg = load_ladder_config(tmp_path / "l.yaml", ["rungs=[hist_gb, logreg]"])
    assert [c.model.name for c in rung_configs(cfg)] == ["hist_gb", "logreg"]


@pytest.fixture
def sub(tmp_path, monkeypatch):
    """tmp/sub/cfg.yaml naming data.csv (in tmp/sub), loaded from tmp/elsewhere."""
    folder = tmp_path / "sub"
    folder.mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return folder


def test_config_paths_resolve_from_the_config_folder(sub, tmp_path):
    (sub / "cfg.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "csv", "path": "data.csv", "label": "y", "root": "../store"},
        "model": {"name": "hf", "model": "sentence-transformers/all-MiniLM-L6-v2"},  # a hub id, not a folder
        "eval": {"classifier": "runs/clf"}}))  # no such folder next to the config: left for the current one
    cfg = load_run_config(sub / "cfg.yaml")
    assert cfg.data.path == (sub / "data.csv").resolve() and cfg.data.path.is_absolute()
    assert cfg.data.root == (tmp_path / "store").resolve()
    assert cfg.model.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert str(cfg.eval.classifier) == "runs/clf"
    # --set paths stay relative to the current directory (and are stored absolute)
    cfg = load_run_config(sub / "cfg.yaml", ["data.path=other.csv"])
    assert cfg.data.path == Path.cwd() / "other.csv"


def test_ladder_paths_resolve_but_stage_names_stay(sub):
    (sub / "pre").mkdir()
    (sub / "ladder.yaml").write_text(yaml.safe_dump({
        "data": {"dataset": "text", "path": "texts.csv", "text": "t", "label": "y"},
        "pretrain": [{"name": "lm", "data": {"dataset": "text8"}, "model": {"name": "transformer"}}],
        "rungs": ["tfidf_logreg",
                  {"name": "a", "model": {"name": "transformer"}, "finetune": {"from": "lm"}},
                  {"name": "b", "model": {"name": "transformer"}, "finetune": {"from": "pre"}}]}))
    from modelladder.config import load_raw

    raw = load_raw(sub / "ladder.yaml")
    assert raw["data"]["path"] == str((sub / "texts.csv").resolve())
    assert raw["rungs"][1]["finetune"]["from"] == "lm"
    assert raw["rungs"][2]["finetune"]["from"] == str((sub / "pre").resolve())


def test_saved_config_holds_absolute_path_so_other_folders_work(tmp_path):
    """Train from one folder with a config elsewhere, then evaluate and explain the run from a third folder."""
    sub, there, third = tmp_path / "sub", tmp_path / "there", tmp_path / "third"
    for folder in (sub, there, third):
        folder.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": np.where(x[:, 0] > 0, "p", "n")}).to_csv(
        sub / "data.csv", index=False)
    (sub / "cfg.yaml").write_text(yaml.safe_dump({"name": "t", "data": {"dataset": "csv", "path": "data.csv",
                                                                         "label": "y"}, "model": {"name": "logreg"}}))
    result = ladder("train", "../sub/cfg.yaml", "--runs-dir", str(tmp_path / "runs"), cwd=there)
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((tmp_path / "runs" / "t" / "config.yaml").read_text())
    assert saved["data"]["path"] == str((sub / "data.csv").resolve())
    pd.DataFrame({"a": [1.0, -1.0], "b": [0.0, 0.0], "c": [0.0, 0.0]}).to_csv(third / "rows.csv", index=False)
    for args in (["evaluate"], ["explain", "--input", "rows.csv", "--max-inputs", "2"]):
        result = ladder(args[0], tmp_path / "runs" / "t", *args[1:], cwd=third)
        assert result.returncode == 0, f"{args[0]}: {result.stderr}"
