"""The "step up the ladder" table: each rung against the one below it (ladder order), what it gains on the
headline metric with a paired 95% interval, and how many times more it costs.

Holdout: the two rungs' per-example predictions on the same test rows (predictions_test.csv), a paired
bootstrap (evaluate/paired.py). K-fold: the two rungs' scores on the same folds (cv.json), the corrected
resampled t interval. Without either, the difference of the leaderboard values, and no interval.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from modelladder.evaluate.paired import Difference, corrected_t_interval, paired_bootstrap
from modelladder.report.pareto import Headline, number
from modelladder.runs import read_json

# metrics on a 0-1 scale whose differences read as percentage points
POINTS = {"accuracy", "f1_macro", "precision_macro", "recall_macro", "roc_auc", "ece", "wer", "exact_match"}
RATIOS = {"train_seconds": "training time", "latency_ms_p50": "latency p50", "params": "parameters",
          "energy_kwh": "energy"}


def step_table(folder: Path, rows: list[dict], head: Headline, *, seed: int = 0) -> dict | None:
    """Rows for the template: step, change with interval, verdict and cost ratios; None for one rung."""
    if len(rows) < 2:
        return None
    steps, methods = [], set()
    for lower, upper in itertools.pairwise(rows):
        diff = _difference(folder, lower, upper, head, seed)
        if diff is not None:
            methods.add(diff.method)
        steps.append({"step": f"{lower['rung']} → {upper['rung']}", "lower": str(lower["rung"]),
                      "upper": str(upper["rung"]), **_change_cells(diff, head),
                      "ratios": [_ratio(lower.get(c), upper.get(c)) for c in RATIOS]})
    unit = "percentage points" if head.metric in POINTS else f"{head.metric} units"
    return {"metric": head.label, "unit": unit, "ratio_columns": [f"{v} ×" for v in RATIOS.values()],
            "rows": steps, "methods": sorted(methods)}


def _change_cells(diff: Difference | None, head: Headline) -> dict:
    if diff is None:
        return {"change": "-", "interval": "-", "verdict": "not known", "value": None}
    scale = 100 if head.metric in POINTS else 1
    fmt = (lambda v: f"{v * scale:+.1f}") if scale == 100 else (lambda v: f"{v:+.4g}")
    if diff.method == "leaderboard":
        interval, verdict = "-", "no interval: per-example predictions missing"
    else:
        interval = f"{fmt(diff.low)} to {fmt(diff.high)}"
        verdict = "no clear difference" if not diff.excludes_zero else (
            "better" if head.better(diff.value, 0.0) else "worse")
    return {"change": fmt(diff.value), "interval": interval, "verdict": verdict, "value": diff.value,
            "method": diff.method}


def _ratio(lower, upper) -> str:
    lo, up = number(lower), number(upper)
    if lo is None or up is None or lo <= 0:
        return "-"
    ratio = up / lo
    return f"×{ratio:.3g}" if ratio < 1000 else f"×{ratio:,.0f}"


def _difference(folder: Path, lower: dict, upper: dict, head: Headline, seed: int) -> Difference | None:
    if head.kfold:
        paired = _fold_scores(folder, lower, upper, head)
    else:
        paired = _example_scores(folder, lower, upper, head, seed)
    if paired is not None:
        return paired
    a, b = head.value(lower), head.value(upper)
    return None if a is None or b is None else Difference(b - a, b - a, b - a, "leaderboard")


def _fold_scores(folder: Path, lower: dict, upper: dict, head: Headline) -> Difference | None:
    """Scores of the same (repeat, fold) from the two rungs' cv.json, the corrected t interval."""
    records = [_fold_records(folder / str(r["rung"]) / "cv.json", head.metric) for r in (lower, upper)]
    if records[0] is None or records[1] is None:
        return None
    shared = sorted(set(records[0]) & set(records[1]))
    if len(shared) < 2:
        return None
    a = [records[0][k][0] for k in shared]
    b = [records[1][k][0] for k in shared]
    n_train = float(np.mean([records[1][k][1] for k in shared]))
    n_test = float(np.mean([records[1][k][2] for k in shared]))
    return corrected_t_interval(a, b, n_train=n_train, n_test=n_test)


def _fold_records(path: Path, metric: str) -> dict | None:
    """(repeat, fold) -> (score, n_train, n scored); the scored fold's size is n_test (or n_val before)."""
    if not path.is_file():
        return None
    cv = read_json(path)
    out = {}
    for rec in cv.get("folds", []) if isinstance(cv, dict) else []:
        score = number((rec.get("metrics") or {}).get(metric))
        n_train, n_test = number(rec.get("n_train")), number(rec.get("n_test", rec.get("n_val")))
        if score is not None and n_train and n_test:
            out[(rec.get("repeat"), rec.get("fold"))] = (score, n_train, n_test)
    return out


def _example_scores(folder: Path, lower: dict, upper: dict, head: Headline, seed: int) -> Difference | None:
    """Per-example values of the two rungs on the same test rows, a paired bootstrap of their difference."""
    frames = [load_predictions(folder / str(r["rung"]) / "predictions_test.csv") for r in (lower, upper)]
    if frames[0] is None or frames[1] is None or len(frames[0]) != len(frames[1]) \
            or not (frames[0]["true"].to_numpy() == frames[1]["true"].to_numpy()).all():
        return None  # not the same rows: no pairing
    per_example = [per_example_values(f, head.metric) for f in frames]
    if per_example[0] is not None and per_example[1] is not None:
        return paired_bootstrap(per_example[0], per_example[1], seed=seed)
    statistic = _statistic(head.metric)
    if statistic is None:
        return None
    columns = [(f["true"].to_numpy(), f["predicted"].to_numpy()) for f in frames]
    return paired_bootstrap(columns[0], columns[1], seed=seed, statistic=statistic)


def per_example_values(frame, metric: str) -> np.ndarray | None:
    """The values whose mean is `metric` on these rows (1/0 correct, squared error, ...), None when it has none."""
    true, predicted = frame["true"].to_numpy(), frame["predicted"].to_numpy()
    if metric in ("wer", "exact_match") and "word_error" in frame.columns:  # seq2seq (tasks/seq2seq.py)
        wrong = frame["word_error"].to_numpy(np.float64)
        return wrong if metric == "wer" else 1 - wrong
    if metric == "accuracy":
        return (true == predicted).astype(np.float64)
    if metric in ("mse", "mae"):
        error = predicted.astype(np.float64) - true.astype(np.float64)
        return error**2 if metric == "mse" else np.abs(error)
    if metric == "log_loss" and f"proba_{true[0]}" in frame.columns:
        p = np.array([frame.at[i, f"proba_{t}"] for i, t in zip(frame.index, true)], dtype=np.float64)
        return -np.log(np.clip(p, 1e-15, 1.0))
    return None


def _statistic(metric: str):
    from sklearn.metrics import f1_score, precision_score, r2_score, recall_score

    averaged = {"f1_macro": f1_score, "precision_macro": precision_score, "recall_macro": recall_score}
    if metric in averaged:
        return lambda y, p: float(averaged[metric](y, p, average="macro", zero_division=0))
    if metric == "r2":
        return lambda y, p: float(r2_score(y.astype(np.float64), p.astype(np.float64)))
    if metric == "rmse":  # not a mean of per-example values: the root of the resample's mean squared error
        return lambda y, p: float(np.sqrt(np.mean((p.astype(np.float64) - y.astype(np.float64)) ** 2)))
    return None


def load_predictions(path: Path):
    import pandas as pd

    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, dtype={"true": str, "predicted": str})
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return frame if {"true", "predicted"} <= set(frame.columns) and len(frame) else None
