"""A stand-in for models/space.py (the search spaces the models declare, issue 17 part 1): a small space for logreg,
hist_gb and mlp, `tune.space` overrides applied, and `apply_params`. verbs/tune.py imports models/space.py when it
exists and this otherwise; delete this file once models/space.py is merged."""

from __future__ import annotations

import copy
from typing import Any

from modelladder.config import RunConfig, validate_run
from modelladder.errors import InputError
from modelladder.registry import MODELS, lookup

_SPACES = {
    "logreg": {"model.C": {"low": 1e-3, "high": 1e2, "log": True}},
    "hist_gb": {"model.learning_rate": {"low": 0.01, "high": 0.3, "log": True},
                "model.max_leaf_nodes": {"low": 8, "high": 64, "int": True, "log": True}},
    "random_forest": {"model.max_depth": {"low": 2, "high": 32, "int": True, "log": True},
                      "model.min_samples_leaf": {"low": 1, "high": 10, "int": True}},
    "mlp": {"train.optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.hidden": {"choices": [[64], [128], [128, 64]]}},
}
NETWORK = {"train.optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True},
           "train.optimizer.weight_decay": {"low": 1e-5, "high": 1e-1, "log": True}}  # any other network


def space_for(cfg: RunConfig, overrides: dict | None = None) -> dict:
    """The model's space with `overrides` (tune.space, nested or dotted) applied: a list is a set of choices,
    a mapping a range."""
    network = lookup(MODELS, "model.name", cfg.model.name).family == "neural"
    space = copy.deepcopy(_SPACES.get(cfg.model.name, NETWORK if network else {}))
    for path, spec in _flatten(overrides or {}).items():
        space[path] = {"choices": spec} if isinstance(spec, list) else spec
    if not space:
        raise InputError(f"model.name '{cfg.model.name}' has no search space: give one in tune.space "
                         "(e.g. tune.space.train.optimizer.lr: {low: 1e-4, high: 1e-2, log: true})")
    apply_params(cfg, {path: _some_value(spec) for path, spec in space.items()}, field="tune.space")
    return space


def apply_params(cfg: RunConfig, params: dict, *, field: str = "params") -> RunConfig:
    """`cfg` with each dotted path set to its value, validated again."""
    raw = cfg.model_dump(mode="json", by_alias=True)
    for path, value in params.items():
        node, *parents, last = [raw, *path.split(".")]
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise InputError(f"{field}.{path}: '{p}' is not a section of the run config")
            node = node[p]
        node[last] = value
    try:
        return validate_run(raw)
    except InputError as err:
        raise InputError([f"{field}: {p}" for p in err.problems]) from None


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"low", "high", "choices"} & value.keys()):
            out |= _flatten(value, path + ".")
        else:
            out[path] = value
    return out


def _some_value(spec: Any) -> Any:
    if not isinstance(spec, dict) or not ({"choices"} <= spec.keys() or {"low", "high"} <= spec.keys()):
        raise InputError(f"tune.space: a search range is {{low, high, log}} or a list of choices, got {spec!r}")
    return spec["choices"][0] if "choices" in spec else spec["low"]
