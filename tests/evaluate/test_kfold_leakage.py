"""K-fold without leakage: the scored fold of each fold run is its test split and reaches no choice.

Early stopping, the best checkpoint (and anything else fitted on validation) use an inner validation
split carved from the other folds. The proof: the index sets are disjoint, and a fold run whose scored
rows are changed (their features, or under an unstratified split their labels) trains to the same
bytes: the same validation curve, the same early-stopping epoch, the same weights; only its test
score moves (while the folds that train on those rows do change).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from modelladder.config import DataConfig, deep_merge, validate_run
from modelladder.data.splits import holdout, train_val
from modelladder.verbs.build import load_run_data
from modelladder.verbs.cv import cross_validate, fold_config

QUIET = {"console": Console(file=io.StringIO())}
FOLDS = 3
N_ROWS = 300


@pytest.mark.parametrize("folds, repeat, limit", [(3, 0, None), (5, 1, 80), (4, 2, None)])
def test_the_scored_fold_never_reaches_train_or_validation(folds, repeat, limit):
    y = np.repeat(np.arange(4), 30)
    pools, scored_folds = [], []
    for fold in range(folds):
        cfg = DataConfig.model_validate({"limit": limit, "split": {"folds": folds, "fold": fold, "repeat": repeat,
                                                                   "val": 0.2}})
        train, val, scored = train_val(y, cfg, seed=3, task="classification")
        assert not set(train) & set(val) and not set(train) & set(scored) and not set(val) & set(scored)
        pools.append(np.sort(np.concatenate([train, val, scored])))
        assert len(val) == int(np.ceil(0.2 * (len(pools[-1]) - len(scored))))  # 20% of the other folds
        assert np.bincount(y[val], minlength=4).min() >= 1  # stratified: every class in validation
        scored_folds.append(scored)
    assert all(np.array_equal(pool, pools[0]) for pool in pools)  # the same (limited) training pool
    assert len(pools[0]) == (limit or len(y))
    assert np.array_equal(np.sort(np.concatenate(scored_folds)), pools[0])  # the scored folds partition it


def table(seed: int = 0) -> pd.DataFrame:
    """A three-class table that a small MLP learns within a few epochs."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(3), N_ROWS // 3)
    features = rng.normal(size=(N_ROWS, 4)) + label[:, None] * np.array([1.0, -0.5, 0.3, 0.0])
    frame = pd.DataFrame(features, columns=["a", "b", "c", "d"])
    frame["label"] = np.array(["x", "y", "z"])[label]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def config(path, *, stratify: bool) -> dict:
    return {"name": "leak", "seed": 0, "model": {"name": "mlp", "hidden": [16]},
            "data": {"dataset": "csv", "path": str(path), "label": "label",
                     "split": {"test": 0.2, "val": 0.15, "stratify": stratify}},
            "train": {"epochs": 30, "batch_size": 32, "progress": False, "threads": 1,
                      "optimizer": {"name": "adamw", "lr": 0.01},
                      "early_stopping": {"metric": "val_loss", "mode": "min", "patience": 2}}}


def run_cv(frame: pd.DataFrame, folder, *, stratify: bool):
    folder.mkdir()
    frame.to_csv(folder / "t.csv", index=False)
    cfg = validate_run(config(folder / "t.csv", stratify=stratify))
    cross_validate(cfg, FOLDS, 1, folder / "runs", **QUIET)
    return folder / "runs" / "leak"


def choices(run_dir) -> dict:
    """Everything a fold run chose on validation: its validation curve (timings left out), where early
    stopping stopped and kept, and the weights it ended with."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"val": [r for r in records if r.get("split") == "val"],
            "train": [{k: v for k, v in r.items() if k != "samples_per_s"} for r in records if r.get("split") == "train"],
            "stopped": (summary["epochs"], summary["steps"], summary["stopped_early"]),
            "best": json.loads((run_dir / "checkpoints" / "best" / "state.json").read_text())["step"],
            "weights": (run_dir / "model.safetensors").read_bytes()}


@pytest.mark.parametrize("perturb, stratify", [("features", True), ("labels", False)])
def test_changing_the_scored_rows_changes_no_choice(tmp_path, perturb, stratify, monkeypatch):
    monkeypatch.setenv("MODELLADDER_CACHE", str(tmp_path / "cache"))
    frame = table()
    root = run_cv(frame, tmp_path / "original", stratify=stratify)
    plan = json.loads((root / "folds.json").read_text())
    # the pool is the table less its test split (data/tabular.py): map pool indices back to table rows
    labels = frame["label"].to_numpy()
    pool_rows, _ = holdout(labels, 0.2, seed=0, stratify=stratify, name="data.split.test")
    name = "fold-0-0"
    scored_rows = pool_rows[plan["test_indices"][name]]
    val_rows = pool_rows[plan["val_indices"][name]]
    assert not set(scored_rows) & set(val_rows)
    truths = pd.read_csv(root / name / "predictions_test.csv", dtype={"true": str})["true"]
    assert list(truths) == list(labels[scored_rows])  # the run was scored on exactly these rows

    changed = frame.copy()
    if perturb == "features":  # leaves the labels, hence every stratified split, as they were
        changed.loc[scored_rows, ["a", "b", "c", "d"]] = -changed.loc[scored_rows, ["a", "b", "c", "d"]] * 3
    else:  # an unstratified split does not look at the labels
        changed.loc[scored_rows, "label"] = changed.loc[scored_rows, "label"].map({"x": "y", "y": "z", "z": "x"})
    again = run_cv(changed, tmp_path / "changed", stratify=stratify)
    assert json.loads((again / "folds.json").read_text())["test_indices"] == plan["test_indices"]

    first, second = choices(root / name), choices(again / name)
    assert first["val"] and first["stopped"][2] is True  # early stopping chose an epoch on validation
    assert first == second
    # a control: in the other folds these rows are training rows, and there they do change what is learnt
    assert choices(root / "fold-0-1")["weights"] != choices(again / "fold-0-1")["weights"]
    original = json.loads((root / name / "eval_test.json").read_text())["metrics"]
    perturbed = json.loads((again / name / "eval_test.json").read_text())["metrics"]
    assert perturbed["accuracy"] != original["accuracy"]  # the scored rows did change, and so did the score


def test_the_loaded_fold_holds_the_planned_rows(tmp_path, monkeypatch):
    """What the fold run trains, validates and is scored on, row for row (run_folds checks this too)."""
    monkeypatch.setenv("MODELLADDER_CACHE", str(tmp_path / "cache"))
    root = run_cv(table(), tmp_path / "t", stratify=True)
    plan = json.loads((root / "folds.json").read_text())
    cfg = validate_run(config(tmp_path / "t" / "t.csv", stratify=True))
    pool = load_run_data(validate_run(deep_merge(cfg.model_dump(mode="json"), {"data": {"split": {"val": 0}}})))
    for fold in range(FOLDS):
        data = load_run_data(fold_config(cfg, FOLDS, fold, 0))
        test, val = plan["test_indices"][f"fold-0-{fold}"], plan["val_indices"][f"fold-0-{fold}"]
        assert np.array_equal(data.y_test, pool.y_train[test]) and np.array_equal(data.y_val, pool.y_train[val])
        assert len(data.y_train) + len(val) + len(test) == plan["n_pool"] == len(pool.y_train)
