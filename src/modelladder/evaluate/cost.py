"""What a rung costs to use: inference latency per sample and per batch."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def inference_latency(predict: Callable[[np.ndarray], object], X: np.ndarray, *, singles: int = 50,
                      batch_size: int = 256) -> dict[str, float]:
    """p50 / p95 milliseconds for one sample at a time, and milliseconds per sample in batches.

    Single-sample calls are what a request to a served model pays; batched time is what bulk
    scoring pays. One warm-up call first so lazy initialisation is not counted.
    """
    if len(X) == 0:
        return {}
    predict(X[:1])
    n = min(singles, len(X))
    times = []
    for i in range(n):
        start = time.perf_counter()
        predict(X[i : i + 1])
        times.append(time.perf_counter() - start)
    batch = X[: min(len(X), 4 * batch_size)]
    start = time.perf_counter()
    for i in range(0, len(batch), batch_size):
        predict(batch[i : i + batch_size])
    per_sample_batched = (time.perf_counter() - start) / len(batch)
    return {
        "latency_ms_p50": float(np.percentile(times, 50) * 1e3),
        "latency_ms_p95": float(np.percentile(times, 95) * 1e3),
        "batch_ms_per_sample": float(per_sample_batched * 1e3),
    }
