"""The parallel context the loop runs in: one process (SingleProcess), a DDP rank (distributed.Context) or an
FSDP rank (fsdp.Sharded). The loop imports this module only; distributed.py and fsdp.py never import it."""

from __future__ import annotations

import torch
import torch.distributed as dist

from modelladder.config import TrainConfig
from modelladder.train.distributed import Context, SingleProcess
from modelladder.train.fsdp import Sharded

STRATEGIES = {"ddp": Context, "fsdp": Sharded}


def context(device: torch.device, strategy: str = "ddp") -> SingleProcess | Context:
    """This process's part in the process group that verbs/distributed.py (or a test) set up, replicating the
    model (ddp) or sharding it (fsdp); else the one-process run."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return STRATEGIES[strategy](device)
    return SingleProcess(device)


def check(task_cls: type, cfg: TrainConfig, n_train: int, world: int) -> None:
    """What a run on `world` processes with cfg.distributed.strategy cannot do, as one InputError (before any
    process starts)."""
    STRATEGIES[cfg.distributed.strategy].check(task_cls, cfg, n_train, world)
