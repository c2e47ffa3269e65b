"""Optimizers, schedules (checked against PyTorch's own schedulers), L1/L2 and gradient clipping."""

from __future__ import annotations

import math

import pytest
import torch

from modelladder.config import OptimizerConfig, ScheduleConfig, TrainConfig
from modelladder.tasks.classification import Classification
from modelladder.train.loop import fit
from modelladder.train.optim import build_optimizer, lr_multiplier, penalized_weights, regularization
from tests.train.helpers import blobs, mlp, records

OPTIMIZERS = [
    OptimizerConfig(name="sgd", lr=0.05),
    OptimizerConfig(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    OptimizerConfig(name="adam", lr=1e-2),
    OptimizerConfig(name="adamw", lr=1e-2, weight_decay=0.01),
    OptimizerConfig(name="rmsprop", lr=1e-3, momentum=0.5),
]


@pytest.mark.parametrize("cfg", OPTIMIZERS, ids=lambda c: f"{c.name}-m{c.momentum}")
def test_every_optimizer_builds_and_lowers_the_loss(cfg, tmp_path):
    model = mlp()
    opt = build_optimizer(model, cfg)
    assert type(opt).__name__.lower() == cfg.name
    assert opt.param_groups[0]["lr"] == cfg.lr and opt.param_groups[0]["weight_decay"] == cfg.weight_decay
    train = TrainConfig(epochs=3, batch_size=50, optimizer=cfg, progress=False, threads=1)
    result = fit(model, Classification(3), blobs(), train, seed=0, run_dir=tmp_path)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_sgd_momentum_and_nesterov_reach_the_optimizer():
    opt = build_optimizer(mlp(), OptimizerConfig(name="sgd", momentum=0.9, nesterov=True))
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["nesterov"] is True
    opt = build_optimizer(mlp(), OptimizerConfig(name="adam", betas=(0.8, 0.99), eps=1e-6))
    assert opt.param_groups[0]["betas"] == (0.8, 0.99) and opt.param_groups[0]["eps"] == 1e-6


def torch_lrs(make_scheduler, steps: int, per_epoch: int = 1) -> list[float]:
    """The lr PyTorch's scheduler gives each step, stepping it every `per_epoch` optimizer steps."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(opt)
    lrs = []
    for step in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if (step + 1) % per_epoch == 0:
            scheduler.step()
    return lrs


def ours(cfg: ScheduleConfig, steps: int, per_epoch: int = 10) -> list[float]:
    return [lr_multiplier(cfg, s, steps, per_epoch) for s in range(steps)]


def test_schedules_match_pytorch_schedulers():
    sched = torch.optim.lr_scheduler
    assert ours(ScheduleConfig(name="constant"), 20) == [1.0] * 20
    assert ours(ScheduleConfig(name="step", step_size=2, gamma=0.5), 60) == pytest.approx(
        torch_lrs(lambda o: sched.StepLR(o, step_size=2, gamma=0.5), 60, per_epoch=10))
    assert ours(ScheduleConfig(name="cosine", min_lr_ratio=0.1), 50) == pytest.approx(
        torch_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=50, eta_min=0.1), 50))
    assert ours(ScheduleConfig(name="linear", min_lr_ratio=0.2), 40) == pytest.approx(
        torch_lrs(lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=40), 40))
    for total, pct in [(10, 0.3), (37, 0.25), (100, 0.05)]:
        assert ours(ScheduleConfig(name="onecycle", pct_start=pct), total) == pytest.approx(
            torch_lrs(lambda o: sched.OneCycleLR(o, max_lr=1.0, total_steps=total, pct_start=pct,
                                                 cycle_momentum=False), total))


def test_known_values_and_warmup():
    warm = ScheduleConfig(name="cosine", warmup_steps=4)
    assert [lr_multiplier(warm, s, 104, 10) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert lr_multiplier(warm, 4, 104, 10) == 1.0  # the cosine starts after warmup
    assert lr_multiplier(warm, 54, 104, 10) == pytest.approx(0.5)
    assert lr_multiplier(ScheduleConfig(name="linear", min_lr_ratio=0.0), 75, 100, 10) == 0.25
    assert lr_multiplier(ScheduleConfig(name="step", step_size=3, gamma=0.1), 59, 100, 10) == pytest.approx(0.1)
    assert lr_multiplier(ScheduleConfig(name="step", step_size=3, gamma=0.1), 60, 100, 10) == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["constant", "step", "cosine", "linear", "onecycle"])
def test_every_schedule_runs_and_is_logged(name, tmp_path):
    train = TrainConfig(epochs=2, batch_size=50, log_every=1, schedule=ScheduleConfig(name=name, warmup_steps=2),
                        optimizer=OptimizerConfig(name="sgd", lr=0.1), progress=False, threads=1)
    fit(mlp(), Classification(3), blobs(), train, seed=0, run_dir=tmp_path)
    lrs = [r["lr"] for r in records(tmp_path) if r["split"] == "train"]
    assert lrs == pytest.approx([0.1 * lr_multiplier(train.schedule, s, 20, 10) for s in range(20)])


def test_penalties_are_on_weight_matrices_only():
    model = mlp()
    weights = penalized_weights(model)
    assert [tuple(w.shape) for w in weights] == [(32, 8), (3, 32)]
    l1 = sum(w.abs().sum() for w in weights)
    l2 = sum(w.pow(2).sum() for w in weights)
    assert torch.allclose(regularization(weights, 0.1, 0.0), 0.1 * l1)
    assert torch.allclose(regularization(weights, 0.0, 0.2), 0.2 * l2)
    assert torch.allclose(regularization(weights, 0.1, 0.2), 0.1 * l1 + 0.2 * l2)


@pytest.mark.parametrize("field", ["l1", "l2"])
def test_penalties_raise_the_training_loss_and_shrink_the_weights(field, tmp_path):
    def train(value, folder):
        model = mlp()
        cfg = TrainConfig(epochs=3, batch_size=50, optimizer=OptimizerConfig(name="sgd", lr=0.05), progress=False,
                          threads=1, **{field: value})
        result = fit(model, Classification(3), blobs(), cfg, seed=0, run_dir=tmp_path / folder)
        return result.history[0]["train_loss"], sum(w.abs().sum().item() for w in penalized_weights(model))

    plain_loss, plain_size = train(0.0, "plain")
    penalized_loss, penalized_size = train(0.01, "penalized")
    assert penalized_loss > plain_loss + 0.1  # the penalty is part of the logged objective
    assert penalized_size < plain_size


def test_grad_clipping_bounds_the_update(tmp_path):
    """With plain SGD, one step moves the weights by lr * clipped gradient, whose norm is <= grad_clip."""
    data = blobs(n=50)
    cfg = TrainConfig(epochs=1, batch_size=50, grad_clip=0.01, optimizer=OptimizerConfig(name="sgd", lr=1.0),
                      progress=False, threads=1)
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, Classification(3), data, cfg, seed=0, run_dir=tmp_path / "clipped")
    step = math.sqrt(sum((p.detach() - b).pow(2).sum().item() for p, b in zip(model.parameters(), before)))
    assert step == pytest.approx(0.01, rel=1e-4)  # the raw gradient is far larger, so it was clipped

    model = mlp()
    fit(model, Classification(3), data, cfg.model_copy(update={"grad_clip": None}), seed=0, run_dir=tmp_path / "raw")
    raw = math.sqrt(sum((p.detach() - b).pow(2).sum().item() for p, b in zip(model.parameters(), before)))
    assert raw > 0.1
