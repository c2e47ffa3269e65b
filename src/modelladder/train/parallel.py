"""The parallel context the loop runs in: one process (SingleProcess), a DDP rank (distributed.Context) or an
FSDP rank (fsdp.Sharded). The loop imports this module only; distributed.py and fsdp.py never import it."""

from __future__ import annotations

import torch
import torch.distributed as dist

from modelladder.config import TrainConfig
from modelladder.train.distributed import Context, SingleProcess


def strategy_class(name: str) -> type:
    """The context class of train.distributed.strategy `name`. fsdp.py is imported only here: it pulls in
    torch.distributed.checkpoint, a second of import in every `ladder` process that never shards a model."""
    if name == "fsdp":
        from modelladder.train.fsdp import Sharded

        return Sharded
    return Context


def context(device: torch.device, strategy: str = "ddp") -> SingleProcess | Context:
    """This process's part in the process group that verbs/distributed.py (or a test) set up, replicating the
    model (ddp) or sharding it (fsdp); else the one-process run."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return strategy_class(strategy)(device)
    return SingleProcess(device)


def check(task_cls: type, cfg: TrainConfig, n_train: int, world: int) -> None:
    """What a run on `world` processes with cfg.distributed.strategy cannot do, as one InputError (before any
    process starts)."""
    strategy_class(cfg.distributed.strategy).check(task_cls, cfg, n_train, world)
