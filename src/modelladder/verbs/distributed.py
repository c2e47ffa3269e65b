"""`ladder train` on several processes: `ladder train --nproc N` checks the run here and starts N local processes
(torch's elastic launcher, torchrun's engine); in each of them (or under torchrun) verbs/train.py's worker_train
joins the process group and trains. Every rank builds the same Training (verbs/build.py); rank 0 alone claims the
run folder and writes (train/distributed.py explains how a batch is split)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

import torch
import torch.distributed as dist

from modelladder.config import RunConfig
from modelladder.errors import InputError
from modelladder.registry import MODELS, TASKS, lookup
from modelladder.runs import prepare, refuse_existing
from modelladder.train.distributed import Context
from modelladder.train.loop import resolve_device
from modelladder.train.parallel import check
from modelladder.verbs.build import load_run_data

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


def is_worker() -> bool:
    """True in a process that torchrun (or `ladder train --nproc`) started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def check_run(cfg: RunConfig, n_train: int, world: int) -> None:
    """What a run on `world` processes cannot do (train/parallel.py), and that its rung is a network."""
    if lookup(MODELS, "model.name", cfg.model.name).family != "neural":
        raise InputError(f"model.name '{cfg.model.name}' is a scikit-learn rung, which trains in one process: "
                         "leave out --nproc / torchrun for it")
    check(lookup(TASKS, "task.name", cfg.task.name), cfg.train, n_train, world)


def init_process_group(device_name: str) -> Context:
    """The process group from torchrun's environment, gloo for a CPU run and nccl for a GPU run."""
    device = resolve_device(device_name)
    if device.type not in BACKENDS:
        raise InputError(f"distributed training runs on train.device 'cpu' or 'cuda', got '{device_name}'")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(BACKENDS[device.type])
    return Context(device)


def launch_train(args, cfg: RunConfig, path: Path) -> int:
    """`ladder train --nproc N`: check the run here (folder, data, what DDP can do), then run `python -m
    modelladder train` as N local processes with torch's elastic launcher (torchrun's engine) on a free
    loopback port. Rank 0 prints to this terminal; another rank's output is shown if it fails."""
    if args.nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {args.nproc}")
    if is_worker():
        raise InputError("--nproc starts its own processes: under torchrun leave it out")
    if args.resume:
        prepare(path, resume=True)  # refuses a folder that does not exist
    elif not args.overwrite:
        refuse_existing(path)
    check_run(cfg, len(load_run_data(cfg).X_train), args.nproc)
    if cfg.train.device == "cuda" and torch.cuda.device_count() < args.nproc:
        raise InputError(f"--nproc {args.nproc} with train.device 'cuda' needs a GPU per process; this machine "
                         f"has {torch.cuda.device_count()}")
    return launch(args.nproc, _worker_argv(args, path.name))


def _worker_argv(args, name: str) -> list[str]:
    argv = ["train", str(args.config), "--runs-dir", str(args.runs_dir), "--name", name]
    argv += [f"--set={override}" for override in args.overrides]
    argv += [flag for flag, on in (("--resume", args.resume), ("--overwrite", args.overwrite)) if on]
    return argv + (["--mlflow", args.mlflow] if args.mlflow else [])


def launch(nproc: int, argv: list[str]) -> int:
    """`python -m modelladder ARGV` on `nproc` local processes, as `torchrun --standalone` starts them; the
    exit status is 0, 2 when every failed process failed on bad input, else 1."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # as torchrun does: the processes share the cores instead of each taking all of them
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # failures are reported below
    with tempfile.TemporaryDirectory(prefix="ladder-ranks-") as logs:
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                              rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
                              logs_specs=DefaultLogsSpecs(log_dir=logs, redirects={r: Std.ALL for r in range(1, nproc)}))
        try:
            elastic_launch(config, sys.executable)("-m", "modelladder", *argv)
        except ChildFailedError as err:
            codes = {rank: failure.exitcode for rank, failure in err.failures.items()}
            if 0 not in codes:  # rank 0's output went to this terminal; another rank's is in its log
                for rank in sorted(codes):
                    print(f"rank {rank} failed (exit status {codes[rank]}):\n{_log_tail(Path(logs), rank)}",
                          file=sys.stderr)
            return 2 if all(code == 2 for code in codes.values()) else 1
        except SignalException:  # Ctrl-C: the launcher has stopped the processes (rank 0 said "interrupted")
            return 130
    return 0


def _log_tail(logs: Path, rank: int, lines: int = 20) -> str:
    found = sorted(logs.glob(f"*/attempt_*/{rank}/stderr.log"))
    return "\n".join(found[-1].read_text().splitlines()[-lines:]) if found else "(no output)"
