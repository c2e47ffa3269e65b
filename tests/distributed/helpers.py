"""Run a function on several local processes joined in a gloo process group, as torchrun would."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modelladder.config import validate_run
from modelladder.models.build import build_model
from modelladder.train.loop import fit
from modelladder.verbs.build import load_run_data, make_task


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(fn, nproc: int, *args) -> None:
    """fn(*args) on `nproc` processes in one gloo process group on a free loopback port; raises if any fails."""
    mp.start_processes(_worker, args=(nproc, free_port(), fn, args), nprocs=nproc, start_method="fork")


def _worker(rank: int, world: int, port: int, fn, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def run_config(model: dict, **train) -> dict:
    """A small digits run: 1293 training images, so batch 64 makes 21 steps an epoch, the last of 13 (7 + 6)."""
    return {"seed": 3, "data": {"dataset": "digits", "split": {"test": 0.2, "val": 0.1}}, "model": model,
            "train": {"epochs": 2, "batch_size": 64, "log_every": 5, "progress": False,
                      "optimizer": {"name": "adamw", "lr": 0.005}, "schedule": {"name": "cosine"}, **train}}


def train(raw: dict, run_dir: Path, *, resume: bool = False, init_seed: int | None = None, callbacks=()) -> None:
    """fit() the model `raw` describes into run_dir, as pipeline.train_run does (one process or one rank)."""
    cfg = validate_run(raw)
    data = load_run_data(cfg)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed if init_seed is None else init_seed,
                        task=cfg.task.name)
    fit(model, make_task(cfg, data), data, cfg.train, seed=cfg.seed, run_dir=run_dir, augment=cfg.data.augment,
        resume=resume, callbacks=callbacks)


class Interrupt(Exception):
    pass


class StopAt:
    """A callback that interrupts training when the loop logs step `step`, as a crash there would."""

    def __init__(self, step: int):
        self.step = step

    def on_log(self, record):
        if record["step"] == self.step:
            raise Interrupt


def interrupted_then_resumed(raw: dict, run_dir, step: int) -> None:
    """Train `raw` until it logs `step`, as a crash there would stop it, then resume it to the end from
    different initial weights (resume must not depend on them)."""
    try:
        train(raw, run_dir, callbacks=[StopAt(step)])
    except Interrupt:
        pass
    train(raw, run_dir, resume=True, init_seed=99)
