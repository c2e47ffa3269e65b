"""FSDP: train.distributed.strategy 'fsdp' shards the model across the ranks with FSDP2
(torch.distributed.fsdp.fully_shard) instead of replicating it as DDP does (train/distributed.py).

Each rank holds 1/N of every parameter, of its gradient and of the optimizer's state (AdamW's two
moments), and gathers a unit's whole parameters only while that unit computes. Every block of the
model's repeated blocks (each element of an nn.ModuleList: a transformer's layers) is a unit of its
own; the rest (embeddings, heads, an MLP's layers) is the root unit, which wraps the task's loss as
DDP's module does, so a loss that calls model.encode or a tied embedding gathers what it uses.
Batches, losses, random streams and rank-0 writing are DDP's: each rank's loss carries its share
of the batch and the gradient reduce-scatter sums instead of averaging, so a step is the
single-process step on the same batch, up to the order of the float additions.

The loop's model stays a plain module. FSDP trains a sharded copy of it, and gather() copies the
whole weights back into it on every rank when the loop evaluates or checkpoints, with the
optimizer's whole state for rank 0 to write: checkpoints and model.safetensors are exactly a
single-process run's, so `ladder predict`, `serve` and a one-process `--resume` read them, and a
resume under FSDP loads them into the shards.

What this saves: gradients and optimizer state (for AdamW, three times the weights) exist only as
shards. What it does not: the plain model keeps the whole weights on every device (rank 0
evaluates and writes them), so the weights alone must fit one device.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard

from modelladder.config import TrainConfig
from modelladder.train.checkpoint import load_checkpoint
from modelladder.train.distributed import Context, _LossModule, _Shard

WHOLE = StateDictOptions(full_state_dict=True)  # every rank gets (or gives) the unsharded tensors
WHOLE_ON_RANK_0 = StateDictOptions(full_state_dict=True, cpu_offload=True)  # rank 0 alone, in CPU memory


class Sharded(Context):
    """One rank of an FSDP run: DDP's Context, with the model trained as the shards of a copy."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.root: _LossModule | None = None  # the sharded copy behind the loss, made by trained()
        self.stale = False  # a step has changed the shards since the plain model last got their weights

    @classmethod
    def strategy_problems(cls, cfg: TrainConfig) -> list[str]:
        """What an FSDP run cannot do: a penalty or a loss scaler on whole weights that exist only as shards."""
        problems = cfg.penalty_problems("train.distributed.strategy 'fsdp'", "the penalty needs the whole weights, "
                                        "which FSDP holds only as shards", "train.optimizer.weight_decay, or strategy "
                                        "'ddp'")
        if cfg.precision == "fp16" and cfg.device != "cpu":
            problems.append("train.precision 'fp16' scales the loss with a GradScaler, which is not wired to FSDP's "
                            "sharded gradients here: use 'bf16' with train.distributed.strategy 'fsdp', or "
                            "strategy 'ddp'")
        return problems

    def trained(self, model: nn.Module) -> nn.Module:
        """The sharded copy of `model` (made on the first call): the module whose parameters the optimizer updates."""
        if self.root is None:
            self.root = _LossModule(copy.deepcopy(model), loss_fn=None)
            for block in _blocks(self.root.model):
                fully_shard(block)
            fully_shard(self.root)
            for unit in self.root.modules():
                if isinstance(unit, FSDPModule):
                    # the ranks' gradients summed, not averaged (each loss carries its share of the batch), with
                    # plain sum reductions: gloo has no pre-multiplied sum
                    unit.set_gradient_divide_factor(1.0)
                    unit.set_force_sum_reduction_for_comms(True)
            self.root.train()
        return self.root.model

    def shard(self, model: nn.Module, task, cfg: TrainConfig, source, loss_fn):
        """This rank's view of the batch source and a loss that runs through the sharded copy."""
        self.check(type(task), cfg, len(source), self.world)
        self._same_data(source)
        part = _Shard(source, self.rank, self.world)
        self.trained(model)  # the copy: made already when the loop built its optimizer
        root = self.root
        root.loss_fn = loss_fn

        def loss(_model, x, y):  # _model is the plain model: the shards train instead
            self.stale = True
            return root(x, y, part.weight)

        return part, loss

    def gather(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict | None:
        """The trained weights from the shards into `model` on every rank; with `optimizer`, its whole state
        as optimizer.state_dict() lays it out (parameters by index) on rank 0, None on the others."""
        if self.stale:
            model.load_state_dict(get_model_state_dict(self.root.model, options=WHOLE))
            self.stale = False
        if optimizer is None:
            return None
        whole = get_optimizer_state_dict(self.root.model, optimizer, options=WHOLE_ON_RANK_0)
        return _by_index(whole) if self.main else None

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """A checkpoint (every rank reads it) into `model`, then into the shards of the copy and of `optimizer`."""
        fqn = {p: name for name, p in self.root.model.named_parameters()}
        names = [fqn[p] for group in optimizer.param_groups for p in group["params"]]

        def into_shards(state_dict: dict) -> None:
            set_optimizer_state_dict(self.root.model, optimizer, _by_name(state_dict, names), options=WHOLE)

        state = load_checkpoint(path, model, optimizer, into_shards)
        set_model_state_dict(self.root.model, model.state_dict(), options=WHOLE)
        self.stale = False
        return state


def _blocks(model: nn.Module) -> list[nn.Module]:
    """The elements of every nn.ModuleList in `model` that hold parameters, the innermost first
    (fully_shard goes bottom-up)."""
    lists = [m for m in reversed(list(model.modules())) if isinstance(m, nn.ModuleList)]
    return [block for blocks in lists for block in blocks if next(block.parameters(), None) is not None]


def _by_index(state_dict: dict) -> dict:
    """get_optimizer_state_dict's layout (parameters by name) as optimizer.state_dict()'s (by index, in the
    order of the param groups): the layout of a single-process checkpoint."""
    names = [name for group in state_dict["param_groups"] for name in group["params"]]
    index = {name: i for i, name in enumerate(names)}
    return {"state": {index[name]: state_dict["state"][name] for name in names if name in state_dict["state"]},
            "param_groups": [{**group, "params": [index[name] for name in group["params"]]}
                             for group in state_dict["param_groups"]]}


def _by_name(state_dict: dict, names: list[str]) -> dict:
    """optimizer.state_dict()'s layout (parameters by index) as set_optimizer_state_dict takes it (by name), in
    one order on every rank: it scatters the tensors one by one in dict order, and a checkpoint's tensors come
    from safetensors in an order of each process's own."""
    return {"state": {names[i]: dict(sorted(value.items())) for i, value in sorted(state_dict["state"].items())},
            "param_groups": [{**group, "params": [names[i] for i in group["params"]]}
                             for group in state_dict["param_groups"]]}
