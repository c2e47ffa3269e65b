"""What the tests marked gpu share: when they run, and CUDA process groups (nccl) on the GPUs present."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def skip_reason() -> str | None:
    """Why the gpu tests skip here, or None: they need CUDA, and MODELLADDER_GPU=1 (benchmarks/gpu/run.sh sets
    it), so that `make test` never trains on a GPU it happens to find."""
    if not torch.cuda.is_available():
        return ("GPU TEST SKIPPED: no CUDA device here (torch.cuda.is_available() is False); "
                "benchmarks/gpu/run.sh runs it on a GPU machine")
    if os.environ.get("MODELLADDER_GPU") != "1":
        return "GPU TEST SKIPPED: CUDA is here but MODELLADDER_GPU is not 1 (benchmarks/gpu/run.sh sets it)"
    return None


GPU = [pytest.mark.gpu, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_cuda(fn, world: int, *args) -> None:
    """fn(*args) on `world` fresh processes (spawn: CUDA cannot cross a fork) in one nccl process group, rank r
    on GPU r % device_count; raises if any fails."""
    mp.start_processes(_worker, args=(world, free_port(), fn, args), nprocs=world, start_method="spawn")


def _worker(rank: int, world: int, port: int, fn, args) -> None:
    torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def force_parallel_context(log: Path) -> None:
    """Make the loop take DDP's / FSDP's context even with one process (train/parallel.py gives a world of 1 the
    plain one-process context), and write which it took and over which backend to `log` (JSON lines)."""
    from modelladder.train import parallel

    def context(device, strategy="ddp"):
        ctx = parallel.STRATEGIES[strategy](device)
        if dist.get_rank() == 0:
            with open(log, "a") as f:
                f.write(json.dumps({"context": type(ctx).__name__, "backend": dist.get_backend(),
                                    "world": dist.get_world_size(), "device": str(ctx.device)}) + "\n")
        return ctx

    parallel.context = context
