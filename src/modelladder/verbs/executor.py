"""`--executor serial|ray`: where a ladder's rungs (holdout), its (rung, fold) runs (k-fold), `ladder cv`'s folds
and `ladder tune`'s trials are trained.

serial (the default) trains them one after the other in the `ladder` process. ray makes each of them a Ray task
(`ray.remote` with num_cpus = train.threads or 1, num_gpus 1 when train.device is cuda) on a local Ray started by
the command (`--workers N` CPUs, shut down at the end) or on an existing cluster (`--address`). A task writes its
own run folder only; the driver (the `ladder` process) writes the ladder folder (ladder.yaml, folds.json, the
leaderboard, the report) and takes the results back in the serial order, so the leaderboard is the serial one for
the same seeds but for the measured costs (time, energy).

Fault tolerance: a task whose worker process dies (killed, out of memory, a node lost) is run again by Ray, up to
MAX_RETRIES times, into a fresh run folder; an exception in training is not retried (retry_exceptions=False) and
is caught by the task itself, so it becomes the rung's failed row (verbs/resilience.py) as it does serially.

Plain tasks, not Ray Tune: a ladder's runs are independent, fixed jobs, so tasks with declared resources are all it
needs; and `ladder tune`'s trials stay Optuna's (verbs/tune.py: the driver asks the study for each trial and tells it
the result, the task reports each epoch to the same storage for pruning). Ray Tune would bring a second trial store
and scheduler beside the Optuna study that makes a killed tuning run resume without losing or repeating a trial.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from modelladder.config import RunConfig
from modelladder.errors import InputError
from modelladder.verbs.resilience import one_line

EXECUTORS = ("serial", "ray")
MAX_RETRIES = 3  # runs of a task whose worker died, after the first
KILL_ONCE = "MODELLADDER_RAY_KILL_ONCE"  # tests: a task that finds this file removes it and kills its own worker


@dataclass
class Outcome:
    """What a task returns: train_run's result and the row's extra fields (an audit's gaps), or its one-line error."""

    result: dict | None = None
    extra: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Job:
    """One task: `fn(*args)` for the run config `cfg` (its resources)."""

    fn: Callable[..., Outcome]
    args: tuple
    cfg: RunConfig


class Executor:
    """How runs are trained: `serial`, or `ray` (local with `workers` CPUs, or the cluster at `address`).
    Checked when made; Ray is started by `start()` (after the pre-check, before a folder is made) and shut down
    by `close()` when this executor started it."""

    def __init__(self, kind: str = "serial", *, address: str | None = None, workers: int | None = None):
        if kind not in EXECUTORS:
            raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
        if kind == "serial" and (address is not None or workers is not None):
            given = "--address" if address is not None else "--workers"
            raise InputError(f"{given} needs --executor ray (the serial executor trains in this process)")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise InputError(f"--workers must be an int >= 1, got {workers!r}")
        if address is not None and workers is not None:
            raise InputError("--workers sets a local Ray's CPUs; with --address the cluster's nodes decide")
        self.kind, self.address, self.workers = kind, address, workers
        self._ray, self._started = None, False

    @property
    def parallel(self) -> bool:
        return self.kind == "ray"

    def start(self) -> None:
        """Connect to (or start) Ray; nothing for serial, nor when this process is already connected."""
        if not self.parallel or self._ray is not None:
            return
        try:
            import ray
        except ImportError:
            raise InputError("--executor ray needs Ray: pip install 'ray>=2.40'") from None
        if self.address is not None:
            _reachable(self.address)
        if not ray.is_initialized():  # else this process is connected already (the Python API, tests): use that Ray
            quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
                     "configure_logging": True}
            if self.address is None:
                ray.init(num_cpus=self.workers or os.cpu_count() or 1, **quiet)
            else:
                try:
                    ray.init(address=self.address, **quiet)
                except Exception as err:  # noqa: BLE001 - one clear message for any way of not connecting
                    raise InputError(_unreachable(self.address, one_line(err))) from None
            self._started = True
        self._ray = ray

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def __enter__(self) -> Executor:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def slots(self, cfg: RunConfig) -> int:
        """How many runs like `cfg` train at once: the CPUs Ray has over each run's num_cpus (1 for serial)."""
        if not self.parallel:
            return 1
        self.start()
        cpus = self._ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // resources(cfg)["num_cpus"]))

    def share(self, obj: Any) -> Any:
        """`obj` for several jobs: put in Ray's object store once (a task gets the object itself)."""
        if not self.parallel or obj is None:
            return obj
        self.start()
        return self._ray.put(obj)

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Every job's outcome, in the jobs' order. A task whose worker died more than MAX_RETRIES times is a
        failed outcome naming that; an interrupt (Ctrl-C) cancels the tasks not finished."""
        if not self.parallel:
            return [job.fn(*job.args) for job in jobs]
        self.start()
        ray = self._ray
        remote = {fn: ray.remote(fn) for fn in {job.fn for job in jobs}}
        refs = [remote[job.fn].options(max_retries=MAX_RETRIES, retry_exceptions=False,
                                       **resources(job.cfg)).remote(*job.args) for job in jobs]
        outs = []
        try:
            for ref in refs:
                try:
                    outs.append(ray.get(ref))
                except ray.exceptions.RayError as err:  # the worker died MAX_RETRIES + 1 times, or the task was lost
                    outs.append(Outcome(error=f"Ray task lost: {one_line(err)}"))
        except BaseException:
            for ref in refs[len(outs):]:  # on a cluster they would go on after this process stops
                ray.cancel(ref, force=True)
            raise
        return outs


    def stream(self, next_job: Callable[[], Job | None], slots: int, *, tick: float | None = None,
               on_tick: Callable[[list[Job]], None] | None = None) -> Iterator[tuple[Job, Outcome]]:
        """(job, outcome) as each job finishes, with up to `slots` in flight: `next_job()` is asked for another
        whenever one finishes (and at the start), None when there is none to start now (ladder tune's trials: the
        next one is sampled only once the last result is told). `on_tick(jobs in flight)` every `tick` seconds
        while they run (a tuning study's heartbeats). Serial: one after the other."""
        if not self.parallel:
            while (job := next_job()) is not None:
                yield job, job.fn(*job.args)
            return
        self.start()
        ray = self._ray
        remote: dict = {}
        running: dict = {}  # ref -> job
        try:
            while True:
                while len(running) < slots and (job := next_job()) is not None:
                    fn = remote.setdefault(job.fn, ray.remote(job.fn))
                    ref = fn.options(max_retries=MAX_RETRIES, retry_exceptions=False, **resources(job.cfg))
                    running[ref.remote(*job.args)] = job
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1, timeout=tick if on_tick else None)
                if not done:
                    on_tick(list(running.values()))
                    continue
                job = running.pop(done[0])
                ref = done[0]
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker died MAX_RETRIES + 1 times, or the task was lost
                    outcome = Outcome(error=f"Ray task lost: {one_line(err)}")
                yield job, outcome
        finally:  # an interrupt, an error or a caller that stops early: the tasks still running are cancelled
            for ref in running:
                ray.cancel(ref, force=True)


def resources(cfg: RunConfig) -> dict:
    """A run's Ray resources: train.threads CPUs (1 when unset), one GPU when it trains on cuda."""
    return {"num_cpus": cfg.train.threads or 1, "num_gpus": 1 if cfg.train.device == "cuda" else 0}


def _reachable(address: str) -> None:
    """A host:port --address must accept a connection (ray.init would wait minutes for one that does not)."""
    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        raise InputError(_unreachable(address, one_line(err))) from None


def _unreachable(address: str, why: str) -> str:
    return (f"--address {address}: no Ray cluster reachable there ({why}); start one with `ray start --head` "
            "(then --address auto on that node, or its host:port), or leave out --address for a local Ray")


# ---------------------------------------------------------------- set-up in every task


def task_setup(cfg: RunConfig) -> None:
    """The same torch threads in every worker (train.threads, else the task's one CPU), so that a result does not
    depend on where it ran; and the tests' fault injection."""
    import torch

    torch.set_num_threads(resources(cfg)["num_cpus"])
    marker = os.environ.get(KILL_ONCE)
    if marker:
        try:
            os.remove(marker)  # only the task that removes it dies, once
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def task_seconds(seconds: float | None, runs: int, slots: int) -> float | None:
    """With Ray, each run's train.max_seconds is fixed up front: the time limit shared by the runs as they train
    `slots` at a time (their evaluation comes on top)."""
    if seconds is None or runs == 0:
        return None
    return seconds * min(slots, runs) / runs


def executor_from(args) -> Executor:
    """The Executor of a command's --executor, --address and --workers (serial when it has none)."""
    return Executor(getattr(args, "executor", None) or "serial", address=getattr(args, "address", None),
                    workers=getattr(args, "workers", None))
