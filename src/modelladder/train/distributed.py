"""Training on several processes with torch.distributed: DistributedDataParallel, one process per GPU
(nccl) or per share of the CPU cores (gloo), started by `torchrun` or by `ladder train --nproc N`.
With train.distributed.strategy 'fsdp' the model is sharded instead (train/fsdp.py); the rest is the same.

A distributed run is the single-process run with each batch computed in parts:
- train.batch_size is the global batch. Every rank draws the same epoch order from the seed
  (data/batches.py) and takes every world-th example of each batch, `idx[rank::world]`.
- each rank's mean loss is weighted by its share of the batch, and DDP sums the ranks' gradients (a
  comm hook without DDP's division by the world size): the gradient is the batch mean's, even when
  the last batch does not split evenly.
- rank 0 alone writes metrics.jsonl, checkpoints, the model and the evaluation; the other ranks wait
  for it (broadcasts, which also carry its errors to them) and leave after the last step.
- dropout and augmentation draw from a stream of their own on every rank but rank 0; checkpoints hold
  every rank's generator states, so a run resumed on as many processes ends bitwise where the
  uninterrupted run ends.

Not exact: a batch's gradient is a sum of per-rank partial sums, so the weights differ from the
single-process run in the last bits (float addition is not associative); BatchNorm normalises each
rank's part with that part's statistics; dropout masks differ; a token-level loss (language models)
is weighted by examples, not tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from modelladder.config import TrainConfig
from modelladder.data.batches import TokenSequences, TokenWindows
from modelladder.errors import InputError
from modelladder.train.checkpoint import load_checkpoint, rng_states

FINGERPRINT_VALUES = 2**20  # values per data tensor hashed to check that every rank trains on the same data


class SingleProcess:
    """The one-process run: what Context does, done by doing nothing."""

    rank, world, main = 0, 1, True

    def __init__(self, device: torch.device):
        self.device = device

    def progress(self, bar):
        return bar

    def trained(self, model: nn.Module) -> nn.Module:
        return model

    def shard(self, model, task, cfg, source, loss_fn):
        return source, loss_fn

    def gather(self, model, optimizer=None) -> None:
        pass

    def load_checkpoint(self, path: Path, model, optimizer) -> dict:
        return load_checkpoint(path, model, optimizer)

    def decorrelate(self, generators: dict, seed: int) -> None:
        pass

    def sum_losses(self, losses: Tensor) -> Tensor:
        return losses

    def own_losses(self, values: list[float]) -> list[float]:
        return values

    def from_main(self, fn):
        return fn()

    def rng_states(self, generators: dict) -> dict:
        return {"rng": rng_states(generators)}

    def own_rng(self, state: dict) -> dict:
        _same_world(state, 1)
        return state["rng"]


class Context:
    """One rank of a process group: its rank, the world size, its device and the collectives the loop needs."""

    def __init__(self, device: torch.device):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.main = self.rank == 0
        self.device = torch.device("cuda", torch.cuda.current_device()) if device.type == "cuda" else device
        self.comm = self.device if dist.get_backend() == "nccl" else torch.device("cpu")  # nccl moves CUDA tensors

    @classmethod
    def check(cls, task, cfg: TrainConfig, n_train: int, world: int) -> None:
        """What a run on `world` processes with this strategy cannot do, as one InputError."""
        problems = []
        if task.train_step is not None:
            problems.append(f"this task ({task.__name__}) brings its own training step, which DistributedDataParallel "
                            "does not synchronise: train it in one process (leave out --nproc / torchrun)")
        if cfg.privacy is not None:
            problems.append("train.privacy (DP-SGD) clips each example's gradient within one process: train it in one "
                            "process (leave out --nproc / torchrun)")
        problems += cls.strategy_problems(cfg)
        last = n_train % cfg.batch_size or cfg.batch_size
        if last < world:
            problems.append(f"{world} processes need at least {world} examples in every batch, but train.batch_size "
                            f"{cfg.batch_size} with {n_train} training examples leaves a last batch of {last}: change "
                            "train.batch_size or run fewer processes")
        if problems:
            raise InputError(problems)

    @classmethod
    def strategy_problems(cls, cfg: TrainConfig) -> list[str]:
        """What this strategy in particular cannot do: DDP replicates the model, so nothing."""
        return []

    def progress(self, bar):
        """Rank 0's progress bar; the other ranks draw none."""
        return bar if self.main else nullcontext([])

    def trained(self, model: nn.Module) -> nn.Module:
        """The module whose parameters the optimizer updates: under DDP, the model itself on every rank."""
        return model

    def gather(self, model: nn.Module, optimizer=None) -> dict | None:
        """Under DDP every rank's model and optimizer already hold the whole state: nothing to gather."""
        return None

    def load_checkpoint(self, path: Path, model: nn.Module, optimizer) -> dict:
        return load_checkpoint(path, model, optimizer)

    def shard(self, model: nn.Module, task, cfg: TrainConfig, source, loss_fn):
        """This rank's view of the batch source and a loss that runs through DDP (see the module docstring)."""
        self.check(type(task), cfg, len(source), self.world)
        self._same_data(source)
        part = _Shard(source, self.rank, self.world)
        ddp = DistributedDataParallel(_LossModule(model, loss_fn),
                                      device_ids=[self.device.index] if self.device.type == "cuda" else None,
                                      static_graph=True)  # the parameters a task's loss leaves unused are found once
        ddp.register_comm_hook(None, _sum_gradients)

        def loss(_model, x, y):  # _model is the module DDP holds
            return ddp(x, y, part.weight)

        return part, loss

    def decorrelate(self, generators: dict, seed: int) -> None:
        """Reseed the generators of every rank but rank 0 (whose streams are the single-process run's)."""
        if self.main:
            return
        states = np.random.SeedSequence(seed % 2**64, spawn_key=(3, self.rank)).generate_state(len(generators),
                                                                                               np.uint64)
        for generator, state in zip(generators.values(), states):
            generator.manual_seed(int(state))

    def sum_losses(self, losses: Tensor) -> Tensor:
        """Every rank's weighted losses summed: the losses of the whole batches, the same on every rank."""
        if len(losses):
            dist.all_reduce(losses)
        return losses

    def own_losses(self, values: list[float]) -> list[float]:
        """A checkpoint's pending losses (whole-batch values) as this rank's part of the sum."""
        return values if self.main else [0.0] * len(values)

    def from_main(self, fn):
        """fn() on rank 0, its JSON result handed to every rank; an error there is raised on every rank."""
        if not self.main:
            message = self._broadcast(None)
            if "error" in message:
                raise (InputError if message["input"] else RuntimeError)(message["error"])
            return message["result"]
        try:
            result = fn()
        except Exception as err:
            problems = err.problems if isinstance(err, InputError) else f"rank 0 failed: {type(err).__name__}: {err}"
            self._broadcast({"error": problems, "input": isinstance(err, InputError)})
            raise
        self._broadcast({"result": result})
        return result

    def rng_states(self, generators: dict) -> dict:
        """Every rank's generator states, gathered for rank 0 to save (the checkpoint's rng and rng_ranks)."""
        mine = [g.get_state() for g in generators.values()]
        flat = torch.cat(mine).to(self.comm)
        every = [torch.empty_like(flat) for _ in range(self.world)]
        dist.all_gather(every, flat)
        sizes = [len(state) for state in mine]
        ranks = [{name: base64.b64encode(part.numpy().tobytes()).decode()
                  for name, part in zip(generators, states.cpu().split(sizes))} for states in every]
        return {"rng": ranks[0], "rng_ranks": ranks[1:], "world_size": self.world}

    def own_rng(self, state: dict) -> dict:
        _same_world(state, self.world)
        return state["rng"] if self.main else state["rng_ranks"][self.rank - 1]

    def _broadcast(self, obj):
        """`obj` as JSON from rank 0 to every rank (the others pass None and get it)."""
        data = json.dumps(obj, default=_plain).encode() if self.main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.comm)
        dist.broadcast(size, 0)
        if self.main:
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(self.comm)
        else:
            buffer = torch.empty(int(size), dtype=torch.uint8, device=self.comm)
        dist.broadcast(buffer, 0)
        return obj if self.main else json.loads(buffer.cpu().numpy().tobytes())

    def _same_data(self, source) -> None:
        mine = torch.tensor([_fingerprint(source)], dtype=torch.int64, device=self.comm)
        every = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(every, mine)
        if any(int(other) != int(mine) for other in every):
            raise InputError("the ranks hold different training data (their fingerprints differ): every process "
                             "must read the same data files and config")


class _Shard:
    """A batch source as one rank sees it: the epoch's global batches, of which take() returns this rank's part."""

    def __init__(self, source, rank: int, world: int):
        self.source, self.rank, self.world = source, rank, world
        self.weight = 1.0  # this rank's share of the batch being trained on

    def __len__(self) -> int:
        return len(self.source)

    def epoch(self, generator: torch.Generator, batch_size: int) -> list[Tensor]:
        return self.source.epoch(generator, batch_size)

    def padded_length(self, idx: Tensor) -> int | None:
        return self.source.padded_length(idx)  # the whole batch's, as every rank trains a part of it

    def take(self, idx: Tensor):
        part = idx[self.rank :: self.world]
        self.weight = len(part) / len(idx)
        return self.source.take(part)


class _LossModule(nn.Module):
    """The task's loss as DDP's module: a task may call parts of the model (model.encode, model.backbone),
    and DDP sees every parameter the loss uses this way."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, x, y, weight: float):
        loss, outputs = self.loss_fn(self.model, x, y)
        return loss * weight, outputs


def _sum_gradients(state, bucket):
    """DDP's all-reduce without its division by the world size: each rank's loss carries its share of the batch."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


def _same_world(state: dict, world: int) -> None:
    made = state.get("world_size", 1)
    if made != world:
        raise InputError(f"cannot resume on {world} process(es) a checkpoint written by a run on {made}: it holds "
                         f"every process's random state, so resume with {made} (ladder train --nproc {made}, or "
                         f"torchrun --nproc-per-node {made})")


def _fingerprint(source) -> int:
    """A hash of the training data (at most FINGERPRINT_VALUES evenly spaced values of each array)."""
    X = source.X
    arrays = [X.ids, X.lengths] if isinstance(X, TokenSequences) else [X.tokens] if isinstance(X, TokenWindows) else [X]
    if getattr(source, "y", None) is not None:
        arrays.append(source.y)
    digest = hashlib.sha256(str(len(source)).encode())
    for array in arrays:
        flat = array.reshape(-1)
        sample = flat[:: max(1, len(flat) // FINGERPRINT_VALUES)]
        digest.update(sample.cpu().numpy().tobytes() if isinstance(sample, Tensor) else np.asarray(sample).tobytes())
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


def _plain(value):
    """JSON for numpy scalars and paths (what evaluate() and the loop hand to from_main)."""
    return value.item() if isinstance(value, np.generic) else str(value)
