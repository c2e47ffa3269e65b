"""What a rung costs: training FLOPs, time, CPU time, peak memory, energy and CO2, and inference latency.

Wrap training in `measure_training()`; count FLOPs with `training_flops()`; time predictions with
`inference_latency()`, which runs every rung alike: one thread (`one_thread`), batch 1 for latency and
batch 256 for throughput. scikit-learn rungs get None for FLOPs: their work is not a tensor program and
is never guessed. docs/ladder-run.md ("Cost columns") says how each column is measured.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.config import known_countries
from modelladder.errors import InputError
from modelladder.runs import rapl_energy_uj

COUNTRY = "USA"  # grid carbon intensity for CO2 unless cost.country names another ISO 3166 alpha-3 country
MIB = 2**20
SAMPLE_SECONDS = 0.01  # how often the resident memory is read while training runs
LATENCY = {"warmup": 3, "min_calls": 30, "max_calls": 300, "seconds": 0.5}  # batch-1 timing: enough calls
THROUGHPUT_BATCH = 256
COST_FILE = "cost.json"  # in each checkpoint folder: the cost so far (CheckpointCost)

# What a run's summary carries about its cost (train_run: params / nodes, flops_train, train_seconds and
# TrainingCost.record(); latency from inference_latency), in leaderboard order. Text columns: co2_country.
COST_COLUMNS = ["params", "nodes", "flops_train", "train_seconds", "cpu_s", "peak_mem_mb", "peak_gpu_mem_mb",
                "energy_cpu_kwh", "energy_modelled_kwh", "energy_kwh", "co2_kg", "co2_country",
                "latency_ms_p50", "latency_ms_p95", "throughput_per_s"]


@dataclass
class TrainingCost:
    """Filled in when the `measure_training` block ends (and added to an earlier segment's after --resume).

    wall_s: elapsed seconds; cpu_s: CPU seconds of this process (all threads); peak_mem_mb: peak
    resident memory above what the process held when the block began (MiB, sampled every 10 ms);
    peak_gpu_mem_mb: peak CUDA memory allocated above the start (None on CPU);
    energy_cpu_kwh: measured, the CPU packages' RAPL counters over the block (the whole package: other
    processes' work included), None where RAPL is not readable; energy_modelled_kwh: codecarbon's model
    for what is not measured (RAM at a fixed wattage, the CPU at TDP x this process's load where RAPL is
    unreadable, NVIDIA GPUs through NVML); energy_kwh: their sum; co2_kg: energy_kwh x the grid
    intensity of co2_country.
    """

    wall_s: float | None = None
    cpu_s: float | None = None
    peak_mem_mb: float | None = None
    peak_gpu_mem_mb: float | None = None
    energy_cpu_kwh: float | None = None
    energy_modelled_kwh: float | None = None
    energy_kwh: float | None = None
    co2_kg: float | None = None
    co2_country: str = COUNTRY

    def record(self) -> dict[str, float | str | None]:
        return asdict(self)

    def plus(self, earlier: dict | None) -> TrainingCost:
        """This segment's cost added to an earlier segment's record (sums; maxima for peak memory)."""
        if not earlier:
            return self
        total = TrainingCost(co2_country=self.co2_country)
        for key in ("wall_s", "cpu_s", "energy_cpu_kwh", "energy_modelled_kwh", "energy_kwh", "co2_kg"):
            setattr(total, key, _add(getattr(self, key), earlier.get(key)))
        for key in ("peak_mem_mb", "peak_gpu_mem_mb"):
            values = [v for v in (getattr(self, key), earlier.get(key)) if v is not None]
            setattr(total, key, max(values) if values else None)
        return total


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


class _Measurement:
    """The running measurements of one `measure_training` block; `so_far()` reads them without stopping."""

    def __init__(self, device, country: str):
        self.cuda = _is_cuda(device)
        self.device, self.country = device, country
        self.tracker = _emissions_tracker(country)
        self.memory = _PeakMemory()
        self.rapl = rapl_energy_uj()
        self.gpu_base = _gpu_start(device) if self.cuda else None
        self.tracker.start()
        self.memory.start()
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def so_far(self, *, stop: bool = False) -> TrainingCost:
        cost = TrainingCost(co2_country=self.country)
        cost.wall_s = time.perf_counter() - self.wall
        cost.cpu_s = time.process_time() - self.cpu
        cost.peak_mem_mb = self.memory.stop() if stop else self.memory.now()
        if self.cuda:
            cost.peak_gpu_mem_mb = (torch.cuda.max_memory_allocated(self.device) - self.gpu_base) / MIB
        if stop:
            self.tracker.stop()
            data = self.tracker.final_emissions_data
        else:  # codecarbon's own flush() measures, then builds the same record
            self.tracker.flush()
            data = self.tracker._prepare_emissions_data()
        rapl = rapl_energy_uj()
        if self.rapl is not None and rapl is not None:
            cost.energy_cpu_kwh = _rapl_kwh(self.rapl, rapl)
            modelled = data.ram_energy + data.gpu_energy  # codecarbon read RAPL too: its CPU part is not a model
        else:
            modelled = data.cpu_energy + data.ram_energy + data.gpu_energy
        cost.energy_modelled_kwh = float(modelled)
        cost.energy_kwh = (cost.energy_cpu_kwh or 0.0) + cost.energy_modelled_kwh
        intensity = data.emissions / data.energy_consumed if data.energy_consumed else 0.0  # kg per kWh
        cost.co2_kg = cost.energy_kwh * intensity
        return cost


@contextmanager
def measure_training(device: str | torch.device = "cpu", *, country: str = COUNTRY,
                     earlier: dict | None = None) -> Iterator[TrainingCost]:
    """`with measure_training(device) as cost: ...` then `cost.record()`; measured even if the block raises.

    `earlier`: the record of the segments before a resume, added in. Inside the block, `cost.so_far()`
    returns the total up to now (what a checkpoint keeps: train/loop.py's cost callback).
    """
    measurement = _Measurement(device, country)
    cost = TrainingCost(co2_country=country)
    cost.so_far = lambda: measurement.so_far().plus(earlier)
    try:
        yield cost
    finally:
        final = measurement.so_far(stop=True).plus(earlier)
        for key, value in final.record().items():
            setattr(cost, key, value)


class CheckpointCost:
    """A training-loop callback: every checkpoint keeps the run's cost so far as cost.json beside its state, so a
    resumed run (earlier_cost) reports the whole run's time, CPU, energy and peak memory, not its last segment."""

    def __init__(self, cost: TrainingCost):
        self.cost = cost

    def on_checkpoint(self, path: Path) -> None:
        from modelladder.runs import write_json

        write_json(Path(path) / COST_FILE, self.cost.so_far().record())


def earlier_cost(run_dir: Path) -> dict | None:
    """The cost record kept with the newest checkpoint of run_dir (what --resume continues from), if any."""
    from modelladder.runs import read_json
    from modelladder.train.checkpoint import latest_checkpoint

    last = latest_checkpoint(Path(run_dir) / "checkpoints")
    return read_json(last / COST_FILE) if last is not None and (last / COST_FILE).is_file() else None


def _rapl_kwh(before: dict, after: dict) -> float:
    joules = 0.0
    for name, (start, wrap) in before.items():
        end = after.get(name, (start, wrap))[0]
        joules += ((end - start) % (wrap + 1)) / 1e6  # the counter wraps around at max_energy_range_uj
    return joules / 3.6e6


def _is_cuda(device: str | torch.device) -> bool:
    if device == "auto":
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def _gpu_start(device) -> int:
    device = torch.device("cuda") if device == "auto" else device
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


@functools.cache
def check_country(country: str, field: str = "cost.country") -> str:
    """`country` if codecarbon knows its grid, else an InputError naming `field`."""
    if not isinstance(country, str) or country not in known_countries():
        raise InputError(f"{field} must be an ISO 3166 alpha-3 code that codecarbon knows (such as 'USA', "
                         f"'FRA', 'DEU'), got {country!r}")
    return country


def _emissions_tracker(country: str):
    from codecarbon import OfflineEmissionsTracker

    check_country(country, "country")
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

    def now(self) -> float:
        """MiB above the baseline so far."""
        self.peak = max(self.peak, self.process.memory_info().rss)
        return (self.peak - self.baseline) / MIB

    def stop(self) -> float:
        """MiB above the baseline."""
        self.done.set()
        self.thread.join()
        return self.now()


# ---------------------------------------------------------------- FLOPs


def training_flops(model: nn.Module, task, x, y, steps: int) -> int:
    """FLOPs of `steps` training steps: one forward and backward of the batch (x, y) through
    `task.loss`, counted by torch.utils.flop_counter.FlopCounterMode, times `steps`.

    The counter covers matrix products, convolutions and attention (not elementwise ops, the loss
    or the optimizer update), and every step is counted as a full batch like (x, y): the last,
    smaller batch of an epoch is counted in full. Text is counted by text_training_flops instead, over
    the lengths its batches were padded to. The count runs on a copy of the model, so its weights,
    buffers (BatchNorm statistics), gradients and the random state are left as they were.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    with _counting(model) as count:
        return count(x, y, task) * int(steps)


def text_training_flops(model: nn.Module, task, X, y: np.ndarray | None, examples_by_length: dict[int, int],
                        device: torch.device | str = "cpu") -> int:
    """FLOPs of a text run: for every padded length L its batches had (FitResult.examples_by_length), the
    examples trained at L times the FLOPs of one example padded to L (one of the training texts that is
    exactly L tokens long: a batch pads to its longest text). Batch size does not change the FLOPs per
    example of matrix products, convolutions or attention, so this is the sum over the batches that ran."""
    from modelladder.data.batches import make_source

    source = make_source(X, y, task.target_dtype, torch.device("cpu"))
    lengths = X.lengths.numpy()
    total = 0
    with _counting(model) as count:
        for length, examples in sorted(examples_by_length.items()):
            exact = np.flatnonzero(lengths == int(length))
            if not len(exact):
                raise ValueError(f"no training text is {length} tokens long: examples_by_length is not this data's")
            x, yb = source.take(torch.from_numpy(exact[:1]))
            total += count(_to(x, device), _to(yb, device), task) * int(examples)
    return total


@contextmanager
def _counting(model: nn.Module):
    """count(x, y, task): the FLOPs of one forward and backward of (x, y), on a copy of `model` in train mode,
    with the random state forked (dropout draws are given back)."""
    from torch.utils.flop_counter import FlopCounterMode

    counted = copy.deepcopy(model).train()
    devices = [p.device.index or 0 for p in counted.parameters() if p.is_cuda][:1]

    def count(x, y, task) -> int:
        with FlopCounterMode(display=False) as counter:
            loss, _ = task.loss(counted, x, y)
            loss.backward()
        counted.zero_grad(set_to_none=True)
        return int(counter.get_total_flops())

    with torch.random.fork_rng(devices=devices):
        yield count


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


def inference_latency(predict: Callable[[np.ndarray], object], X: np.ndarray, *, model=None) -> dict:
    """What one prediction costs, measured alike for every rung: under `one_thread(model)`, three warm-up calls,
    then batch-1 calls on successive rows until at least 30 calls and 0.5 s (at most 300): p50 / p95 ms; then
    batches of 256 rows for the throughput (examples per second) bulk scoring gets.

    Single-sample calls are what a request to a served model pays; throughput is what bulk scoring pays.
    """
    if len(X) == 0:
        return {}
    with one_thread(model):
        for i in range(LATENCY["warmup"]):
            predict(X[i % len(X) : i % len(X) + 1])
        times, cpu, spent = [], [], 0.0
        while len(times) < LATENCY["max_calls"] and (len(times) < LATENCY["min_calls"] or spent < LATENCY["seconds"]):
            i = len(times) % len(X)
            start, start_cpu = time.perf_counter(), time.thread_time()
            predict(X[i : i + 1])
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            spent += times[-1]
        throughput, batch = _throughput(predict, X, float(np.percentile(times, 50) * 1e3))
    return {"latency_ms_p50": float(np.percentile(times, 50) * 1e3),
            "latency_ms_p95": float(np.percentile(times, 95) * 1e3),
            "throughput_per_s": throughput, "batch_size": 1, "throughput_batch_size": batch,
            "threads": 1, "calls": len(times),
            # the calling thread's CPU time: what the call costs without the waits a loaded machine adds
            "cpu_ms_p50": float(np.percentile(cpu, 50) * 1e3)}


def _throughput(predict: Callable[[np.ndarray], object], X: np.ndarray, single_ms: float) -> tuple[float, int]:
    """(examples per second, batch size) over batches of THROUGHPUT_BATCH rows (fewer if X is smaller): after a
    warm-up batch, at least 3 batches and 0.25 s, at most 50. A model whose batch would take longer than that
    (judged from its batch-1 latency `single_ms`: a pretrained Transformer's takes seconds) gets one timed batch,
    whose allocation overhead is then small beside its compute."""
    batch = X[:THROUGHPUT_BATCH]
    slow = single_ms * len(batch) / 1e3 > LATENCY["seconds"] / 2
    if not slow:
        predict(batch)  # warm-up: larger buffers than batch 1 needed
    calls, start = 0, time.perf_counter()
    while calls < (1 if slow else 3) or (time.perf_counter() - start < LATENCY["seconds"] / 2 and calls < 50):
        predict(batch)
        calls += 1
    return float(calls * len(batch) / (time.perf_counter() - start)), len(batch)


@contextmanager
def one_thread(model=None) -> Iterator[None]:
    """Run the block on one thread: torch's intra-op pool, every BLAS / OpenMP pool (threadpoolctl) and, for
    a scikit-learn rung, its estimator's n_jobs (ClassicRung.one_job); everything restored afterwards."""
    from threadpoolctl import threadpool_limits

    jobs = model.one_job() if model is not None and not isinstance(model, nn.Module) else nullcontext()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1), jobs:
            yield
    finally:
        torch.set_num_threads(before)
