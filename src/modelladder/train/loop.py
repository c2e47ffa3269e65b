"""The one training loop: fit(model, task, data, cfg) trains any network on any task.

Batches come from a source (data/batches.py: dense tensors, or token sequences bucketed by
length) as a per-epoch list of index tensors drawn from (seed, epoch), so a run is fully described by its step, epoch, position in the epoch and RNG
states; checkpoints hold exactly that, and a run resumed from any checkpoint ends with the same
weights and the same metrics.jsonl, bit for bit on CPU, as the run that was never interrupted.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modelladder.config import AugmentConfig, TrainConfig
from modelladder.data.batches import make_source
from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError
from modelladder.train import parallel
from modelladder.train.checkpoint import latest_checkpoint, save_checkpoint, save_weights, set_rng_states
from modelladder.train.early_stopping import EarlyStopping
from modelladder.train.optim import build_optimizer, lr_multiplier, unhooked_step, with_penalty
from modelladder.train.progress import progress_bar
from modelladder.train.state import FitResult, LoopState

HOOKS = ("on_fit_start", "on_log", "on_epoch_end", "on_checkpoint", "on_fit_end")


class TrainingDiverged(InputError):
    """The loss or the weights became NaN or infinite. An InputError: the fix is in the config (lr,
    grad_clip), so the CLI prints the message and exits with status 2, the last good checkpoint kept."""


def fit(model: nn.Module, task, data: DataBundle, cfg: TrainConfig, *, seed: int, run_dir: Path,
        augment: AugmentConfig | None = None, resume: bool = False, callbacks: Sequence = (),
        lr_scales: dict[str, float] | None = None) -> FitResult:
    """Train `model` (moved to cfg.device) on `data.X_train` for `task`, logging to run_dir/metrics.jsonl,
    checkpointing into run_dir/checkpoints and writing the final (or early-stopping best) weights to
    run_dir/model.safetensors. With `resume`, training continues from the newest checkpoint.

    Callbacks are objects with any of: on_fit_start({"step", "total_steps"}), on_log(train record),
    on_epoch_end(history record), on_checkpoint(path), on_fit_end(FitResult). `lr_scales`: a learning-rate
    factor per parameter-name prefix (a fine-tuned backbone's backbone_lr). The caller's random
    state and thread count are left as they were.
    """
    # one process, or one rank of torchrun's: DDP or FSDP (parallel.py)
    dist = parallel.context(resolve_device(cfg.device), cfg.distributed.strategy)
    device = dist.device
    cuda = [device.index or 0] if device.type == "cuda" else []
    with (_num_threads(cfg.threads), torch.random.fork_rng(devices=cuda),
          dist.progress(progress_bar(cfg, task)) as bars):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed(seed)
        loop = _Loop(model.to(device), task, data, cfg, seed, Path(run_dir), device, augment, [*callbacks, *bars],
                     dist, lr_scales)
        if resume:
            loop.restore()
        else:
            loop.start()
        return loop.run()


class _Loop:
    def __init__(self, model, task, data, cfg, seed, run_dir, device, augment, callbacks, dist, lr_scales):
        if len(data.X_train) == 0:
            raise InputError("the training split has no rows: nothing to train on")
        self.model, self.task, self.cfg, self.seed, self.device = model, task, cfg, seed, device
        self.source = make_source(data.X_train, data.y_train, task.target_dtype, device)
        self.X_val, self.y_val = data.X_val, data.y_val
        # FSDP: the parameters are shards
        self.optimizer = build_optimizer(dist.trained(model), cfg.optimizer, lr_scales)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.loss_fn = with_penalty(task.loss, model, cfg.l1, cfg.l2)
        self.autocast, self.scaler = _precision(cfg.precision, device)
        # read once, not every step: the loss-scaling calls cost Python time even when they do nothing
        self.scaled = self.scaler.is_enabled()
        self.own_step = task.train_step is not None  # a GAN's two updates
        self.optimizer_step = unhooked_step(self.optimizer)
        self.augment, self.generators = _augmenter(augment, seed, device, _global_generators(device))
        # distributed (train/distributed.py): each rank's part of the batches, the loss through DDP, rank 0 writes
        self.dist, self.main = dist, dist.main
        self.source, self.loss_fn = dist.shard(model, task, cfg, self.source, self.loss_fn)
        dist.decorrelate(self.generators, seed)
        self.steps_per_epoch = math.ceil(len(self.source) / cfg.batch_size)
        self.total_steps = min(cfg.epochs * self.steps_per_epoch, cfg.max_steps or math.inf)
        self.run_dir, self.ckpt_dir, self.metrics_path = run_dir, run_dir / "checkpoints", run_dir / "metrics.jsonl"
        self.hooks = {name: [getattr(cb, name) for cb in callbacks if hasattr(cb, name)] for name in HOOKS}
        self.early = EarlyStopping(cfg.early_stopping, self.ckpt_dir, main=self.main)
        if cfg.privacy is not None:  # DP-SGD replaces the optimizer's step (train/privacy.py)
            self._make_private()
        self.s = LoopState(lr=cfg.optimizer.lr)  # with self.early's state, what checkpoints save
        self.saved_step = -1
        self.out_of_time = False  # train.max_seconds passed: the loop ends after the step in which it did

    # ------------------------------------------------------------ the loop

    def run(self) -> FitResult:
        self.started = self.window_start = time.perf_counter()
        self.window_samples = 0
        self._emit("on_fit_start", {"step": self.s.step, "total_steps": self.total_steps})
        self.model.train()
        while self.s.step < self.total_steps and not self.early.stopped and not self.out_of_time:
            self._run_epoch()
        return self._finish()

    def _run_epoch(self) -> None:
        s, take = self.s, self.source.take
        batches = self.source.epoch(_generator(self.seed, 0, s.epoch), self.cfg.batch_size)
        for idx in batches[s.position :]:
            x, y = take(idx)
            s.count_examples(self.source.padded_length(idx), len(idx))
            s.pending.append(self._train_step(self.augment(x), y))
            self.window_samples += len(idx)
            s.position += 1
            s.step += 1
            if s.step % self.cfg.log_every == 0:
                self._log_train()
            epoch_done = s.position == self.steps_per_epoch
            if epoch_done:
                self._end_epoch()
            if epoch_done or (self.cfg.checkpoint_every and s.step % self.cfg.checkpoint_every == 0):
                self._checkpoint()
            if s.step >= self.total_steps or self.early.stopped or self._out_of_time():
                return

    def _out_of_time(self) -> bool:
        """train.max_seconds has passed (training time over every resumed segment), so the loop stops here."""
        if self.cfg.max_seconds is not None and self._seconds() >= self.cfg.max_seconds:
            self.out_of_time = True
        return self.out_of_time

    def _train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One step on the batch: the task's own (a GAN's two updates, each through _update; fp32, no L1 / L2) or
        the loss, then one update of every parameter."""
        if self.own_step:
            return self.task.train_step(self.model, x, y, self._update).detach()
        with self.autocast():
            loss, _ = self.loss_fn(self.model, x, y)
        self._update(loss)
        return loss.detach()

    def _update(self, loss: Tensor, params: list[Tensor] | None = None) -> None:
        """One optimizer update from `loss`, of `params` alone (the optimizer skips parameters without a gradient)
        or of every parameter. With fp16's loss scaling, gradients are unscaled before clipping, and a step with
        inf is skipped."""
        (self.scaler.scale(loss) if self.scaled else loss).backward(inputs=params)
        if self.cfg.grad_clip is not None:
            if self.scaled:
                self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(params or self.params, self.cfg.grad_clip, foreach=True)
        self._set_lr()
        if self.scaled:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer_step()
        _clear_grads(self.params)

    def _make_private(self) -> None:
        """train.privacy: DP-SGD (train/privacy.py); batches are Poisson samples, each step clips per-example
        gradients and adds noise."""
        from modelladder.train.privacy import make_private

        if self.own_step:
            raise InputError("train.privacy supports the default training step; this task brings its own")
        private = make_private(self.model, self.optimizer, self.cfg, n_train=len(self.source),
                               generator=_generator(self.seed, 2, device=self.device),
                               model_name=type(self.model).__name__.lower())
        self.optimizer, self.optimizer_step = private.optimizer, private.step
        self.source, self.loss_fn = private.poisson(self.source), private.loss(self.loss_fn)
        if not self.cfg.privacy.secure:  # saved in checkpoints: a resumed run draws the same noise
            self.generators["dp_noise"] = private.generator
        self.hooks["on_fit_end"].append(private.on_fit_end)

    def _set_lr(self) -> None:
        s = self.s
        lr = self.cfg.optimizer.lr * lr_multiplier(self.cfg.schedule, s.step, self.total_steps, self.steps_per_epoch)
        if lr != s.lr:  # the param groups always hold s.lr times their lr_scale, also after restore()
            s.lr = lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)

    def _log_train(self) -> None:
        self._add_pending()
        s, now = self.s, time.perf_counter()
        loss, steps = s.window
        record = {"step": s.step, "epoch": s.epoch + 1, "split": "train", "loss": loss / steps, "lr": s.lr,
                  "samples_per_s": self.window_samples / max(now - self.window_start, 1e-9)}
        if self.main:
            _append_jsonl(self.metrics_path, record)
        self._emit("on_log", record)
        s.window, self.window_samples, self.window_start = [0.0, 0], 0, now

    def _end_epoch(self) -> None:
        record = self._epoch_record()
        self.s.epoch, self.s.position = self.s.epoch + 1, 0
        self.early.on_epoch_end(record, self.model)
        self._emit("on_epoch_end", record)

    def _epoch_record(self) -> dict:
        """Train loss over the epoch and, when there is a validation split, its metrics and loss."""
        self._add_pending()
        s = self.s
        loss, steps = s.epoch_loss
        record = {"epoch": s.epoch + 1, "step": s.step, "train_loss": loss / steps, "lr": s.lr}
        s.epoch_loss = [0.0, 0]
        self.dist.gather(self.model)  # FSDP: the weights from the shards, for evaluate() and save_best()
        if len(self.X_val):
            # no activations are kept for backward, so a larger batch fits
            val = self.dist.from_main(partial(evaluate, self.model, self.task, self.X_val, self.y_val,
                                              batch_size=4 * self.cfg.batch_size, autocast=self.autocast))
            if self.main:
                _append_jsonl(self.metrics_path, {"epoch": s.epoch + 1, "step": s.step, "split": "val", **val})
            record.update({f"val_{k}": v for k, v in val.items()})
        s.history.append(record)
        return record

    def _finish(self) -> FitResult:
        s = self.s
        if self.saved_step != s.step:
            self._checkpoint()
        if s.position:  # stopped by max_steps or max_seconds inside an epoch: still report where it got to
            self._epoch_record()
        if self.main:
            self.early.restore_best(self.model)
        weights = "best" if self.early.best is not None else "final"
        if self.main:
            save_weights(self.run_dir / "model.safetensors", self.model, {"step": str(s.step), "weights": weights})
        result = FitResult(s.history, s.step, s.epoch, self._seconds(), self.early.stopped, self.early.best,
                           dict(s.examples_by_length), "time_limit" if self.out_of_time else None)
        self._emit("on_fit_end", result)
        return result

    def _emit(self, hook: str, arg) -> None:
        for fn in self.hooks[hook]:
            fn(arg)

    # ------------------------------------------------------------ losses and divergence

    def _add_pending(self) -> None:
        """Fold the pending losses into the window and epoch sums (one host sync, not one per step)."""
        s = self.s
        if not s.pending:
            return
        losses = self._finite_losses()
        total = losses.sum().item()
        s.window = [s.window[0] + total, s.window[1] + len(losses)]
        s.epoch_loss = [s.epoch_loss[0] + total, s.epoch_loss[1] + len(losses)]
        s.pending = []

    def _finite_losses(self) -> Tensor:
        pending = self.s.pending
        losses = torch.stack(pending).double() if pending else torch.zeros(0, dtype=torch.float64)
        losses = self.dist.sum_losses(losses)  # distributed: each rank holds its part of every batch's loss
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            first = int(bad[0])
            self._diverged(f"the loss is {losses[first].item()} at step {self.s.step - len(losses) + first + 1}")
        return losses

    def _diverged(self, what: str) -> None:
        last = latest_checkpoint(self.ckpt_dir)
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        raise TrainingDiverged(f"training diverged: {what} (epoch {self.s.epoch + 1}); {kept}. "
                               "Lower train.optimizer.lr or set train.grad_clip.")

    # ------------------------------------------------------------ checkpoints and resume

    def _checkpoint(self) -> None:
        pending = self._finite_losses().tolist()
        if not all(torch.isfinite(p).all() for p in self.params):
            self._diverged(f"the weights hold NaN or infinite values after step {self.s.step}")
        rng = self.dist.rng_states(self.generators)  # distributed: every rank's, gathered for rank 0
        optimizer_state = self.dist.gather(self.model, self.optimizer)  # FSDP: the weights and state from the shards
        path = Path(self.dist.from_main(partial(self._write_checkpoint, pending, rng, optimizer_state)))
        self.saved_step = self.s.step
        self._emit("on_checkpoint", path)

    def _write_checkpoint(self, pending: list[float], rng: dict, optimizer_state: dict | None = None) -> str:
        state = {**self.s.to_checkpoint(pending), **self.early.state_dict(), **rng,
                 "seed": self.seed, "batch_size": self.cfg.batch_size, "n_train": len(self.source),
                 "scaler": self.scaler.state_dict(), "metrics_bytes": self.metrics_path.stat().st_size,
                 "train_seconds": self._seconds()}
        return str(save_checkpoint(self.ckpt_dir, self.model, self.optimizer, state, optimizer_state))

    def start(self) -> None:
        self.dist.from_main(self._new_run_files)

    def _new_run_files(self) -> None:
        used = [p for p in (self.metrics_path, self.ckpt_dir) if p.exists() and (p.is_file() or any(p.iterdir()))]
        if used:
            raise InputError(f"run folder {self.run_dir} already holds a training run ({used[0].name}); "
                             "resume it or choose a new folder")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path.write_bytes(b"")

    def restore(self) -> None:
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            raise InputError(f"cannot resume: {self.ckpt_dir} holds no checkpoint (step-NNNNNN folders)")
        state = self.dist.load_checkpoint(path, self.model, self.optimizer)  # FSDP: into the shards too
        rng = self.dist.own_rng(state)  # refuses a checkpoint written by another number of processes
        same = (("seed", "seed", self.seed), ("batch_size", "train.batch_size", self.cfg.batch_size),
                ("n_train", "the training split's size", len(self.source)))
        for key, field, now in same:
            if state[key] != now:
                raise InputError(f"cannot resume from {path}: it was made with {field} {state[key]}, "
                                 f"this run has {now}")
        self.dist.from_main(partial(self._truncate_metrics, path, state["metrics_bytes"]))
        # float64: a distributed run's pending losses are sums of the ranks' float32 parts, not float32 values
        pending = list(torch.tensor(self.dist.own_losses(state["losses"]["pending"]), dtype=torch.float64,
                                    device=self.device))
        self.s = LoopState.from_checkpoint(state, pending)
        self.early.load_state_dict(state)
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        set_rng_states(rng, self.generators)
        self.saved_step = self.s.step

    def _truncate_metrics(self, path: Path, metrics_bytes: int) -> None:
        size = self.metrics_path.stat().st_size if self.metrics_path.exists() else -1
        if size < metrics_bytes:
            raise InputError(f"cannot resume: {self.metrics_path} is shorter than when {path} was written")
        os.truncate(self.metrics_path, metrics_bytes)  # drop records written after the checkpoint

    def _seconds(self) -> float:
        return self.s.train_seconds + time.perf_counter() - self.started


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: nn.Module, task, X, y: np.ndarray, *, batch_size: int = 256,
             autocast=nullcontext) -> dict[str, float]:
    """The task's metrics on (X, y), plus the mean loss under "loss" (unless the task reports its own, as
    the language-model tasks do); the model is left in its mode. X is an array of features,
    TokenSequences or TokenWindows."""
    if len(X) == 0:
        raise InputError("cannot evaluate on a split with no rows")
    was_training = model.training
    model.eval()
    source = make_source(X, y, task.target_dtype, next(model.parameters()).device)
    batches = source.in_order(batch_size)
    total, scores = 0.0, []
    for idx in batches:
        with autocast():
            loss, outputs = task.loss(model, *source.take(idx))
        total += loss.double() * len(idx)
        scores.append(task.scores(outputs))
    model.train(was_training)
    # batches hold example indices, or window starts: either way, sorting them gives the split's order
    order = torch.argsort(torch.cat(batches)).to(scores[0].device)
    metrics = task.metrics(y, torch.cat(scores)[order].cpu().numpy())
    return {**metrics, "loss": metrics.get("loss", float(total / len(source)))}


# ---------------------------------------------------------------- helpers


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("train.device is 'cuda' but no CUDA device is available; use 'cpu' or 'auto'")
    return torch.device(name)


def _generator(seed: int, *stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one independent stream of the run's randomness (SeedSequence keeps them apart)."""
    state = np.random.SeedSequence(seed % 2**64, spawn_key=stream).generate_state(1, np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state))


def _global_generators(device: torch.device) -> dict[str, torch.Generator]:
    """The generators dropout and other in-model randomness draw from."""
    if device.type == "cuda":
        return {"torch": torch.default_generator, "cuda": torch.cuda.default_generators[device.index or 0]}
    return {"torch": torch.default_generator}


def _precision(precision: str, device: torch.device):
    """An autocast context factory and a GradScaler (a no-op unless fp16 on CUDA)."""
    if precision != "fp32" and device.type != "cuda":
        warnings.warn(f"train.precision '{precision}': mixed precision is for GPUs; running fp32 on {device.type}",
                      stacklevel=4)
        precision = "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if precision == "fp32":
        return nullcontext, scaler
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return partial(torch.autocast, device.type, dtype=dtype), scaler


def _augmenter(cfg: AugmentConfig | None, seed: int, device: torch.device, generators: dict):
    """The per-batch augmentation (or the identity) and every generator the run draws from."""
    if cfg is None or (cfg.shift == 0 and cfg.rotate == 0):
        return (lambda x: x), generators
    from modelladder.data.images import augment

    rng = _generator(seed, 1, device=device)
    return partial(augment, shift=cfg.shift, rotate=cfg.rotate, generator=rng), {**generators, "augment": rng}


def _clear_grads(params: list[Tensor]) -> None:
    # what optimizer.zero_grad(set_to_none=True) does, without its profiler label
    for p in params:
        p.grad = None


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


@contextmanager
def _num_threads(threads: int | None):
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)
