"""What a rung costs: training FLOPs, time, CPU time, peak memory, energy and CO2, and inference latency.

Wrap training in `measure_training()`; count FLOPs with `training_flops()`. scikit-learn rungs get
None for FLOPs: their work is not a tensor program and is never guessed.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from modelladder.errors import InputError

COUNTRY = "USA"  # grid carbon intensity for CO2 unless the caller names another ISO 3166 alpha-3 country
MIB = 2**20
SAMPLE_SECONDS = 0.01  # how often the resident memory is read while training runs

# What a run's summary carries about its cost (train_run: params, flops_train, train_seconds and
# TrainingCost.record(); latency from inference_latency), in leaderboard order.
COST_COLUMNS = ["params", "flops_train", "train_seconds", "cpu_s", "peak_mem_mb", "peak_gpu_mem_mb",
                "energy_kwh", "co2_kg", "latency_ms_p50", "latency_ms_p95", "batch_ms_per_sample"]


@dataclass
class TrainingCost:
    """Filled in when the `measure_training` block ends.

    wall_s: elapsed seconds; cpu_s: CPU seconds of this process (all threads); peak_mem_mb: peak
    resident memory above what the process held when the block began (MiB, sampled every 10 ms);
    peak_gpu_mem_mb: peak CUDA memory allocated above the start (None on CPU); energy_kwh and
    co2_kg: codecarbon's offline estimate for this process (CPU: RAPL where readable, otherwise TDP
    x this process's load, 4 W per thread for an unknown CPU; a RAM model; the whole power of any
    NVIDIA GPU, through NVML; times the grid intensity of `country`).
    """

    wall_s: float | None = None
    cpu_s: float | None = None
    peak_mem_mb: float | None = None
    peak_gpu_mem_mb: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None

    def record(self) -> dict[str, float | None]:
        return asdict(self)


@contextmanager
def measure_training(device: str | torch.device = "cpu", *, country: str = COUNTRY) -> Iterator[TrainingCost]:
    """`with measure_training(device) as cost: ...` then `cost.record()`; measured even if the block raises."""
    cuda = _is_cuda(device)
    cost = TrainingCost()
    tracker = _emissions_tracker(country)
    memory = _PeakMemory()
    gpu_base = _gpu_start(device) if cuda else None
    tracker.start()
    memory.start()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        cost.wall_s = time.perf_counter() - wall
        cost.cpu_s = time.process_time() - cpu
        cost.peak_mem_mb = memory.stop()
        if cuda:
            cost.peak_gpu_mem_mb = (torch.cuda.max_memory_allocated(device) - gpu_base) / MIB
        cost.co2_kg = tracker.stop()
        cost.energy_kwh = tracker.final_emissions_data.energy_consumed


def _is_cuda(device: str | torch.device) -> bool:
    if device == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def _gpu_start(device) -> int:
    device = torch.device("cuda") if device == "auto" else device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def _emissions_tracker(country: str):
    from codecarbon import OfflineEmissionsTracker
    from codecarbon.input import DataSource

    if country not in DataSource().get_global_energy_mix_data():
        raise InputError(f"country must be an ISO 3166 alpha-3 code that codecarbon knows (such as 'USA', "
                         f"'FRA', 'DEU'), got {country!r}")
    # codecarbon logs its hardware probing at INFO before it applies log_level
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    return OfflineEmissionsTracker(country_iso_code=country, output_methods=[], log_level="error",
                                   tracking_mode="process")


class _PeakMemory:
    """The peak resident memory of this process, sampled by a background thread."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.baseline = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, name="modelladder-peak-memory", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> float:
        """MiB above the baseline."""
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        return (self.peak - self.baseline) / MIB


# ---------------------------------------------------------------- FLOPs


def training_flops(model: nn.Module, task, x, y, steps: int) -> int:
    """FLOPs of `steps` training steps: one forward and backward of the batch (x, y) through
    `task.loss`, counted by torch.utils.flop_counter.FlopCounterMode, times `steps`.

    The counter covers matrix products, convolutions and attention (not elementwise ops, the loss
    or the optimizer update), and every step is counted as a full batch like (x, y): the last,
    smaller batch of an epoch is counted in full, and text batches vary with their padded length.
    The count runs on a copy of the model, so its weights, buffers (BatchNorm statistics),
    gradients and the random state are left as they were.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    counted = copy.deepcopy(model).train()
    devices = [p.device.index or 0 for p in counted.parameters() if p.is_cuda][:1]
    with torch.random.fork_rng(devices=devices), FlopCounterMode(display=False) as counter:
        loss, _ = task.loss(counted, x, y)
        loss.backward()
    return int(counter.get_total_flops()) * int(steps)


def one_batch(X, y: np.ndarray | None, task, batch_size: int, device: torch.device | str = "cpu"):
    """One full training batch (x, y) on `device`, drawn as the loop draws them (token sequences
    come length-bucketed). X is an array of features or a data.batches token source's input."""
    from modelladder.data.batches import make_source

    source = make_source(X, y, task.target_dtype, torch.device("cpu"))  # no second copy of the data on a GPU
    batches = source.epoch(torch.Generator().manual_seed(0), batch_size)
    x, y = source.take(max(batches, key=len))
    return _to(x, device), _to(y, device)


def _to(value, device):
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return None if value is None else value.to(device)


# ---------------------------------------------------------------- inference


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
