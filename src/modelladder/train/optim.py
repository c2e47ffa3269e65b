"""Optimizers, learning-rate schedules as a pure function of the step, and L1 / L2 penalties."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import MethodType

import torch
from torch import Tensor, nn

from modelladder.config import OptimizerConfig, ScheduleConfig
from modelladder.errors import InputError
from modelladder.train.muon import MuonAdamW, split_groups

# PyTorch OneCycleLR's defaults: start at max_lr / 25, end at max_lr / 25 / 1e4
ONECYCLE_START = 1 / 25
ONECYCLE_END = 1 / 25 / 1e4


def build_optimizer(model: nn.Module, cfg: OptimizerConfig, lr_scales: dict[str, float] | None = None
                    ) -> torch.optim.Optimizer:
    """The optimizer named by `cfg` over the model's trainable parameters, grouped by `lr_scales` (param_groups).

    The fused kernels are the fastest on CPU as on CUDA (torch 2.13, one step of a 784-128-10 MLP
    on one thread: SGD 50 us vs 55 for-loop, SGD+momentum 67 vs 112, Adam / AdamW 129 vs 351 and
    332 foreach); RMSprop has no fused kernel, and foreach edges out the for-loop. Fused SGD has no
    implementation for FSDP's sharded parameters (DTensor, torch 2.13): those take foreach SGD.
    """
    params = param_groups(model, cfg.lr, lr_scales or {})
    common = {"lr": cfg.lr, "weight_decay": cfg.weight_decay}
    if cfg.name == "sgd":
        sharded = _sharded(model)
        return torch.optim.SGD(params, momentum=cfg.momentum, nesterov=cfg.nesterov, fused=not sharded,
                               foreach=sharded, **common)
    if cfg.name == "adam":
        return torch.optim.Adam(params, betas=cfg.betas, eps=cfg.eps, fused=True, **common)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, betas=cfg.betas, eps=cfg.eps, fused=True, **common)
    if cfg.name == "muon":
        if _sharded(model):
            raise InputError("train.optimizer.name 'muon' orthogonalises whole weight matrices, which FSDP shards: "
                             "use train.distributed.strategy ddp, or another optimizer")
        return MuonAdamW(split_groups(model, params, cfg.muon_lr, cfg.lr), momentum=cfg.muon_momentum,
                         ns_steps=cfg.ns_steps, betas=cfg.betas, eps=cfg.eps, **common)
    return torch.optim.RMSprop(params, momentum=cfg.momentum, eps=cfg.eps, foreach=True, **common)


def _sharded(model: nn.Module) -> bool:
    """Whether FSDP sharded the model's parameters (DTensor). A DTensor exists only once FSDP has loaded
    torch.distributed.tensor, so a run that never shards does not import it (with sympy: a second per process)."""
    dtensor = sys.modules.get("torch.distributed.tensor")
    return dtensor is not None and any(isinstance(p, dtensor.DTensor) for p in model.parameters())


def param_groups(model: nn.Module, lr: float, scales: dict[str, float]) -> list[dict]:
    """The trainable parameters in groups by `scales` (parameter-name prefix -> factor on the learning rate,
    e.g. a fine-tuned backbone's): each group holds its `lr_scale`, which the loop's schedule multiplies in.
    Parameters no prefix matches form the group of scale 1; with no scales, that group is the only one."""
    groups: dict[float, list[Tensor]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((s for prefix, s in scales.items() if name.startswith(prefix)), 1.0)
            groups.setdefault(float(scale), []).append(p)
    return [{"params": params, "lr": lr * scale, "lr_scale": scale} for scale, params in groups.items()]


def unhooked_step(optimizer: torch.optim.Optimizer) -> Callable[[], None]:
    """`optimizer.step` without the wrapper torch puts around every Optimizer subclass's step (a
    profiler label, step pre/post hooks: ~30 us of a 650 us step on a small MLP). The update, the
    state and state_dict() are the optimizer's own; only registered step hooks are not called.
    """
    step = type(optimizer).step
    # torch 2.x wraps it once with functools.wraps and marks it `hooked`; __wrapped__ is the class's step
    if getattr(step, "hooked", False) and hasattr(step, "__wrapped__"):
        return MethodType(step.__wrapped__, optimizer)
    return optimizer.step


def lr_multiplier(cfg: ScheduleConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The factor on the base learning rate for optimizer step `step` (0-based) of `total_steps`.

    Linear warmup over the first `warmup_steps` (as nanoGPT: (step + 1) / (warmup + 1)), then the
    schedule over the remaining steps. 'step' decays by `gamma` every `step_size` epochs; 'cosine'
    and 'linear' go down to `min_lr_ratio`, 'wsd' stays at 1 and falls linearly to it over the last
    `decay_fraction` of the steps; 'onecycle' follows PyTorch's OneCycleLR (cosine up over
    `pct_start` of the steps, cosine down after).
    """
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    t = step - cfg.warmup_steps
    n = max(total_steps - cfg.warmup_steps, 1)
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
    if cfg.name == "cosine":
        return _cosine_between(1.0, cfg.min_lr_ratio, t / n)
    if cfg.name == "linear":
        return 1.0 - (1.0 - cfg.min_lr_ratio) * min(t / n, 1.0)
    if cfg.name == "wsd":  # stable, then linear down over the last decay_fraction of the n steps
        decay = cfg.decay_fraction * n
        return 1.0 - (1.0 - cfg.min_lr_ratio) * min(max(t - (n - decay), 0.0) / decay, 1.0)
    return _onecycle(t, n, cfg.pct_start)


def _cosine_between(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(pct, 1.0))) / 2


def _onecycle(t: int, n: int, pct_start: float) -> float:
    peak = pct_start * n - 1  # the step at which the rise ends, as OneCycleLR counts it
    if 0 < peak and t <= peak:
        return _cosine_between(ONECYCLE_START, 1.0, t / peak)
    return _cosine_between(1.0, ONECYCLE_END, (t - peak) / (n - 1 - peak))


def penalized_weights(model: nn.Module) -> list[Tensor]:
    """The tensors L1 / L2 act on: trainable weight matrices and kernels, not biases or norm scales."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() > 1]


def regularization(weights: list[Tensor], l1: float, l2: float) -> Tensor:
    """l1 * sum |w| + l2 * sum w^2 over `weights` (coupled: it goes into the gradient)."""
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + l2 * w.pow(2).sum()
    return total


def with_penalty(loss_fn, model: nn.Module, l1: float, l2: float):
    """`loss_fn(model, x, y) -> (loss, outputs)` with the L1 / L2 penalty added; itself when both are 0."""
    if not (l1 or l2):
        return loss_fn
    weights = penalized_weights(model)

    def penalized(model, x, y):
        loss, outputs = loss_fn(model, x, y)
        return loss + regularization(weights, l1, l2), outputs

    return penalized
