"""A ladder folder shaped like issue 15's contract, written without training: leaderboard.json rows with
intervals, the test against the best, ECE and the new cost columns, env.json, and per rung a run folder
with eval_test.json, predictions_test.csv (the same 360 test rows for every rung) and summary.json.

`contract_ladder(path)` for holdout, `contract_ladder(path, kfold=True)` for a k-fold ladder (cv_ columns,
cv.json with the fold scores, no per-example predictions).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

N_TEST, CLASSES = 360, [str(d) for d in range(10)]
# rung, model, family, test accuracy, mean confidence, costs: params, nodes, train s, latency ms p50, kWh, throughput
RUNGS = [
    ("logreg", "logreg", "classic", 0.9639, 0.93, 650, None, 0.21, 0.05, 2.1e-7, 41000.0),
    ("random_forest", "random_forest", "classic", 0.9722, 0.754, None, 21000, 0.62, 12.4, 6.0e-7, 2100.0),
    ("mlp", "mlp", "neural", 0.9778, 0.97, 50250, None, 3.8, 0.09, 3.1e-6, 52000.0),
    ("cnn", "cnn", "neural", 0.9833, 0.985, 61000, None, 14.2, 0.41, 1.2e-5, 9000.0),
]


def _predictions(rng, true: np.ndarray, accuracy: float, confidence: float) -> pd.DataFrame:
    """Rows right for a fraction `accuracy` of the test rows, top-class probability about `confidence`."""
    n = len(true)
    wrong = rng.permutation(n)[: round(n * (1 - accuracy))]
    predicted = true.copy()
    predicted[wrong] = (true[wrong] + rng.integers(1, 10, len(wrong))) % 10
    top = np.clip(rng.normal(confidence, 0.05, n), 0.11, 0.999)
    proba = np.repeat(((1 - top) / 9)[:, None], 10, axis=1)
    proba[np.arange(n), predicted] = top
    frame = pd.DataFrame(proba, columns=[f"proba_{c}" for c in CLASSES])
    frame.insert(0, "predicted", predicted.astype(str))
    frame.insert(0, "true", true.astype(str))
    return frame


def _wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    return round(float(low), 4), round(float(high), 4)


def contract_ladder(folder: Path, *, kfold: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ladder.yaml").write_text(f"name: {folder.name}\nseed: {seed}\ndata: {{dataset: digits}}\n")
    env = {"versions": {"python": "3.11.2", "torch": "2.5.1"},
           "hardware": {"processor": "x86_64", "cpu_count": 2, "torch_threads": 4},
           "cost": {"cpu_model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "cores": 2, "torch_threads": 4,
                    "latency_threads": 1, "load_average_start": [0.42, 0.3, 0.2],
                    "load_average_end": [0.9, 0.5, 0.3], "country": "FRA", "rapl_readable": False}}
    (folder / "env.json").write_text(json.dumps(env))
    true = rng.integers(0, 10, N_TEST)
    rows = []
    for rung, model, family, acc, conf, params, nodes, train_s, latency, kwh, throughput in RUNGS:
        run = folder / rung
        run.mkdir(exist_ok=True)
        frame = _predictions(rng, true, acc, conf)
        correct = int((frame["true"] == frame["predicted"]).sum())
        row = {"rung": rung, "model": model, "family": family}
        if kfold:
            folds = [{"repeat": 0, "fold": k, "n_train": 1293, "n_test": 324, "family": family,
                      "metrics": {"accuracy": float(np.clip(acc + rng.normal(0, 0.006), 0, 1))}} for k in range(5)]
            scores = np.array([f["metrics"]["accuracy"] for f in folds])
            (run / "cv.json").write_text(json.dumps({"summary": {}, "folds": folds}))
            row |= {"cv_accuracy_mean": round(float(scores.mean()), 4), "cv_accuracy_std": round(float(scores.std(ddof=1)), 4),
                    "cv_accuracy_low": round(float(scores.mean() - 0.01), 4),
                    "cv_accuracy_high": round(float(min(scores.mean() + 0.01, 1.0)), 4), "folds": 5}
        else:
            low, high = _wilson(correct, N_TEST)
            row |= {"test_accuracy": round(correct / N_TEST, 4), "test_accuracy_low": low, "test_accuracy_high": high,
                    "test_ece": None, "test_ece_low": None, "test_ece_high": None}
            frame.to_csv(run / "predictions_test.csv", index_label="row")
            latency_record = {"latency_ms_p50": latency, "latency_ms_p95": latency * 1.3,
                              "throughput_per_s": throughput, "batch_size": 1, "throughput_batch_size": 256,
                              "threads": 1, "calls": 200}
            (run / "eval_test.json").write_text(json.dumps({"split": "test", "n": N_TEST,
                                                            "metrics": {"accuracy": correct / N_TEST},
                                                            "latency": latency_record}))
            (run / "summary.json").write_text(json.dumps({"model": model, "family": family, "params": params,
                                                          "train_seconds": train_s, "train_examples": 1077}))
            (run / "config.yaml").write_text(f"name: {rung}\nmodel: {{name: {model}}}\ndata: {{dataset: digits}}\n")
        row |= {"params": params, "nodes": nodes, "flops_train": None if family == "classic" else int(params * 6e4),
                "train_seconds": train_s, "cpu_s": train_s * 1.8, "peak_mem_mb": 40.0, "peak_gpu_mem_mb": None,
                "energy_cpu_kwh": None, "energy_modelled_kwh": kwh, "energy_kwh": kwh, "co2_kg": kwh * 0.06,
                "co2_country": "FRA", "latency_ms_p50": latency, "latency_ms_p95": round(latency * 1.3, 4),
                "throughput_per_s": throughput, "calibration": None}
        rows.append(row)
    _compare(rows, kfold)
    if not kfold:
        from modelladder.report.reliability import from_predictions

        for row in rows:
            frame = pd.read_csv(folder / row["rung"] / "predictions_test.csv", dtype={"true": str, "predicted": str})
            ece = round(from_predictions(frame)["ece"], 4)
            row |= {"test_ece": ece, "test_ece_low": round(max(ece - 0.02, 0.0), 4), "test_ece_high": round(ece + 0.02, 4)}
    (folder / "leaderboard.json").write_text(json.dumps(rows, indent=1))
    return folder


def _compare(rows: list[dict], kfold: bool) -> None:
    """The contract's comparison fields: the best row, and made-up p-values for the others."""
    key = "cv_accuracy_mean" if kfold else "test_accuracy"
    best = max(range(len(rows)), key=lambda i: rows[i][key])
    p_values = {"logreg": 0.004, "random_forest": 0.21, "mlp": 0.48, "cnn": 0.6}
    for i, row in enumerate(rows):
        if i == best:
            row |= {"test": None, "p_value": None, "p_adj": None, "significant": None, "best": True}
        else:
            p = p_values[row["rung"]]
            p_adj = min(1.0, p * (len(rows) - 1))
            row |= {"test": "corrected-t" if kfold else "mcnemar-exact", "p_value": p, "p_adj": p_adj,
                    "significant": p_adj < 0.05, "best": False}
