"""Training on several processes with torch.distributed: DistributedDataParallel, one process per GPU
(nccl) or per share of the CPU cores (gloo), started by `torchrun` or by `ladder train --nproc N`.
With train.distributed.strategy 'fsdp' the model is sharded instead (train/fsdp.py); the rest is the same.

A distributed run is the single-process run with each batch computed in parts:
- train.batch_size is the global batch. Every rank draws the same epoch order from the seed
  (train/batches.py) and takes every world-th example of each batch, `idx[rank::world]`.
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
import logging
import os
import sys
import tempfile
import uuid
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from modelladder.config import RunConfig, TrainConfig
from modelladder.errors import InputError
from modelladder.train.batches import TokenSequences, TokenWindows
from modelladder.train.checkpoint import load_checkpoint, rng_states

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
FINGERPRINT_VALUES = 2**20  # values per data tensor hashed to check that every rank trains on the same data


def is_worker() -> bool:
    """True in a process that torchrun (or `ladder train --nproc`) started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def context(device: torch.device, strategy: str = "ddp") -> SingleProcess | Context:
    """This process's part in the process group that worker_train (or a test) set up, replicating the model (ddp)
    or sharding it (fsdp); else the one-process run."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if strategy == "fsdp":
            from modelladder.train.fsdp import Sharded

            return Sharded(device)
        return Context(device)
    return SingleProcess(device)


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
        check(type(task), cfg, len(source), self.world)
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


def check(task_cls: type, cfg: TrainConfig, n_train: int, world: int) -> None:
    """What a run on `world` processes cannot do, as one InputError."""
    problems = []
    if hasattr(task_cls, "train_step"):
        problems.append(f"this task ({task_cls.__name__}) brings its own training step, which DistributedDataParallel "
                        "does not synchronise: train it in one process (leave out --nproc / torchrun)")
    if cfg.privacy is not None:
        problems.append("train.privacy (DP-SGD) clips each example's gradient within one process: train it in one "
                        "process (leave out --nproc / torchrun)")
    if cfg.distributed.strategy == "fsdp":
        from modelladder.train.fsdp import check_sharded

        problems += check_sharded(cfg)
    last = n_train % cfg.batch_size or cfg.batch_size
    if last < world:
        problems.append(f"{world} processes need at least {world} examples in every batch, but train.batch_size "
                        f"{cfg.batch_size} with {n_train} training examples leaves a last batch of {last}: change "
                        "train.batch_size or run fewer processes")
    if problems:
        raise InputError(problems)


def check_run(cfg: RunConfig, n_train: int, world: int) -> None:
    """check() for a run config, and that its rung is a network."""
    from modelladder.registry import MODELS, TASKS, lookup

    if not issubclass(lookup(MODELS, "model.name", cfg.model.name), nn.Module):
        raise InputError(f"model.name '{cfg.model.name}' is a scikit-learn rung, which trains in one process: "
                         "leave out --nproc / torchrun for it")
    check(lookup(TASKS, "task.name", cfg.task.name), cfg.train, n_train, world)


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


# ---------------------------------------------------------------- `ladder train` on several processes


def worker_train(cfg: RunConfig, path: Path, *, overwrite: bool, resume: bool) -> tuple[Path, dict] | None:
    """`ladder train` in one process of several (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT). Rank 0 prepares the run folder and runs pipeline.train_run; the others
    train in step with it. Returns rank 0's (run folder, result), None on the other ranks."""
    from modelladder.pipeline import load_run_data, train_run
    from modelladder.runs import prepare

    group = _init_process_group(cfg.train.device)
    try:
        if not (overwrite or resume):
            group.from_main(lambda: _refuse_existing(path))  # before the data is loaded
        data = load_run_data(cfg)
        check_run(cfg, len(data.X_train), group.world)
        run_dir = Path(group.from_main(lambda: str(prepare(path, overwrite=overwrite, resume=resume))))
        if group.main:
            return run_dir, train_run(cfg, run_dir, resume=resume, data=data)
        follow_run(cfg, data, run_dir, resume=resume)
        return None
    finally:
        dist.destroy_process_group()


def follow_run(cfg: RunConfig, data, run_dir: Path, *, resume: bool) -> None:
    """What pipeline.train_run does on a rank other than 0: the same model, task and encoded data,
    trained in step with rank 0, nothing written (the tokenizer rank 0 saves goes to a scratch folder)."""
    from modelladder.models.build import build_model
    from modelladder.pipeline import encoded, make_task, text_encoder
    from modelladder.train.loop import fit

    transfer = None
    if cfg.finetune is not None:
        from modelladder.finetune import Transfer

        transfer = Transfer(cfg)
        cfg = transfer.cfg
    task = make_task(cfg, data)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed, task=cfg.task.name)
    if transfer is not None:
        model = transfer.start(model)
    with tempfile.TemporaryDirectory(prefix="ladder-rank-") as scratch:
        encoder = transfer.encoder(Path(scratch)) if transfer is not None else text_encoder(cfg, data, Path(scratch))
    fit(model, task, encoded(data, encoder), cfg.train, seed=cfg.seed, run_dir=run_dir, augment=cfg.data.augment,
        resume=resume)


def _refuse_existing(path: Path) -> None:
    from modelladder.runs import prepare

    if path.exists():
        prepare(path)  # raises: the folder exists and neither --overwrite nor --resume was given


def _init_process_group(device_name: str) -> Context:
    """The process group from torchrun's environment, gloo for a CPU run and nccl for a GPU run."""
    from modelladder.train.loop import resolve_device

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
    from modelladder.pipeline import load_run_data
    from modelladder.runs import prepare

    if args.nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {args.nproc}")
    if is_worker():
        raise InputError("--nproc starts its own processes: under torchrun leave it out")
    if args.resume:
        prepare(path, resume=True)  # refuses a folder that does not exist
    elif not args.overwrite:
        _refuse_existing(path)
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
