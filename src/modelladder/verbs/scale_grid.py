"""The IsoFLOP grid of `ladder scale` (verbs/scale.py): each (budget, size) made a pretrain run config, its
parameter count, FLOPs per token, steps and tokens; and the width/depth nearest a parameter count.

Budgets are training FLOPs counted as flops_per_token x tokens (evaluate/scaling.py: 6 N + 12 L d T for the
Transformer, 6 N for the recurrent family, N the non-embedding parameters of the built model); a run's tokens are the budget's, rounded to whole batches of
train.batch_size x model.max_length tokens, and its cosine schedule ends with its last step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from torch import nn

from modelladder.config import RunConfig, ScaleSection, deep_merge, validate_run
from modelladder.errors import InputError
from modelladder.evaluate.scaling import flops_per_token
from modelladder.verbs.pretrain import build_language_model

MAX_DEPTH = 12  # deepest shape considered for a parameter count
MAX_HEADS = 64  # widest: this many heads of scale.head_dim


@dataclass
class GridRun:
    """One run of the grid (or the --verify run): its size, budget and run config."""

    budget: float
    dim: int
    depth: int
    n_params: int  # non-embedding
    n_total: int
    per_token: float
    steps: int
    tokens: int
    cfg: RunConfig
    folder: Path

    @property
    def size(self) -> str:
        return size_name(self.dim, self.depth)

    @property
    def flops(self) -> float:
        return self.per_token * self.tokens

    def row(self) -> dict:
        return {"budget": self.budget, "size": self.size, "dim": self.dim, "depth": self.depth,
                "heads": self.cfg.model.heads if self.cfg.model.name == "transformer" else None, "n_params": self.n_params, "n_params_total": self.n_total,
                "flops_per_token": self.per_token, "steps": self.steps, "tokens": self.tokens, "flops": self.flops,
                "folder": str(self.folder)}


def size_name(dim: int, depth: int) -> str:
    return f"d{dim}_L{depth}"


def budget_name(budget: float) -> str:
    return f"{budget:.3g}".replace("+", "")  # 3e11, 1.5e12: a folder name


# a size's width and depth as each family's model fields: the Transformer's heads keep scale.head_dim; the
# recurrent network's embedding is as wide as its state
FAMILIES = {
    "transformer": lambda dim, depth, head_dim: {"dim": dim, "depth": depth, "heads": max(1, dim // head_dim)},
    "rnn": lambda dim, depth, head_dim: {"hidden": dim, "embed_dim": dim, "layers": depth},
}


def base_shape(base: RunConfig) -> tuple[int, int]:
    """The base run's own (width, depth)."""
    model = base.model
    return (model.dim, model.depth) if base.model.name == "transformer" else (model.hidden, model.layers)


def sized(base: RunConfig, dim: int, depth: int, head_dim: int, **train) -> RunConfig:
    """`base` at width `dim` and depth `depth` (its family's fields, FAMILIES) with `train` fields, validated."""
    raw = base.model_dump(mode="json", by_alias=True)
    raw = deep_merge(raw, {"model": FAMILIES[base.model.name](dim, depth, head_dim), "train": train})
    return validate_run(raw, prefix=f"size {size_name(dim, depth)}: ")


def count_params(cfg: RunConfig) -> tuple[int, int]:
    """(non-embedding, all) parameters of the language model `cfg` builds: the token (and learned position)
    embeddings are the nn.Embedding weights left out."""
    return _count(cfg.model_dump_json())


@cache
def _count(cfg_json: str) -> tuple[int, int]:
    model = build_language_model(RunConfig.model_validate_json(cfg_json))
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters())
    return total - embedding, total


def plan_run(base: RunConfig, dim: int, depth: int, budget: float, head_dim: int, folder: Path, what: str
             ) -> GridRun:
    """The run of size (dim, depth) at `budget` FLOPs; `what` names the budget's setting in an error."""
    shape = sized(base, dim, depth, head_dim)
    n_params, n_total = count_params(shape)
    per_token = flops_per_token(n_params, depth, dim, base.model.max_length, attention=base.model.name == "transformer")
    batch_tokens = base.train.batch_size * base.model.max_length
    steps = round(budget / per_token / batch_tokens)
    if steps < 1:
        raise InputError(f"{what} {budget:g} FLOPs buys {budget / per_token:,.0f} tokens for size "
                         f"{size_name(dim, depth)}, less than one batch of {batch_tokens:,} tokens "
                         "(train.batch_size x model.max_length): raise the budget or take smaller sizes")
    warmup = min(base.train.schedule.warmup_steps, steps // 10)  # a short run is not all warmup
    cfg = sized(base, dim, depth, head_dim, max_steps=steps, epochs=steps,  # max_steps ends it, not epochs
                schedule={"warmup_steps": warmup})
    cfg.name = f"{budget_name(budget)}_{size_name(dim, depth)}"
    return GridRun(budget, dim, depth, n_params, n_total, per_token, steps, steps * batch_tokens, cfg,
                   folder / budget_name(budget) / size_name(dim, depth))


def plan_grid(base: RunConfig, scale: ScaleSection, root: Path) -> list[GridRun]:
    """Every (budget, size) run, budgets in order, sizes by parameter count; run folders under root/scale/."""
    shapes = [(s.dim, s.depth) for s in scale.sizes] or [nearest_shape(base, n, scale.head_dim) for n in scale.params]
    if len(set(shapes)) < len(shapes):
        raise InputError(f"scale.params {scale.params} give the same width/depth twice ({shapes}): spread them out")
    shapes.sort(key=lambda s: count_params(sized(base, *s, scale.head_dim))[0])
    return [plan_run(base, dim, depth, budget, scale.head_dim, root / "scale", f"scale.budgets[{i}]")
            for i, budget in enumerate(scale.budgets) for dim, depth in shapes]


def nearest_shape(base: RunConfig, n_params: float, head_dim: int, aspect: float | None = None) -> tuple[int, int]:
    """The (dim, depth) whose non-embedding parameters are nearest `n_params` (in log), dims multiples of
    head_dim, ties broken by dim / depth nearest `aspect` (default: the base model's). Counts come from a model
    that is quadratic in dim and linear in depth, fitted exactly on six small shapes."""
    aspect = aspect or base_shape(base)[0] / base_shape(base)[1]
    coef = _param_model(base, head_dim)
    dims = np.arange(1, MAX_HEADS + 1) * head_dim
    best, score = None, math.inf
    for depth in range(1, MAX_DEPTH + 1):
        counts = depth * (coef[0] * dims**2 + coef[1] * dims) + coef[2] * dims + coef[3]
        for dim, count in zip(dims, counts, strict=True):
            s = abs(math.log(max(count, 1.0) / n_params)) + 0.05 * abs(math.log(dim / depth / aspect))
            if s < score:
                best, score = (int(dim), depth), s
    return best


def _param_model(base: RunConfig, head_dim: int) -> np.ndarray:
    """(p, q, r, s) with non-embedding parameters = depth (p d^2 + q d) + r d + s for this family."""
    shapes = [(k * head_dim, depth) for k in (1, 2, 3) for depth in (1, 2)]
    counts = [count_params(sized(base, dim, depth, head_dim))[0] for dim, depth in shapes]
    design = np.array([[depth * dim**2, depth * dim, dim, 1.0] for dim, depth in shapes])
    return np.linalg.lstsq(design, np.array(counts, np.float64), rcond=None)[0]
