"""Search spaces for tuning (`ladder tune`, `tune:` in a ladder): what each model declares, the user's
`tune.space` overrides, and the bridge to Optuna.

A space maps a dotted run-config path to a distribution spec, one of
  {"low": float, "high": float, "log": bool}                  a float range
  {"low": int, "high": int, "int": true, "log": bool}        an integer range
  {"choices": [v1, v2, ...]}                                  categorical; a value may be a list ([128, 64])
Every model declares its own (Rung.search_space, models/base.py); `space_for` applies the user's overrides,
`to_optuna` samples it in a trial and `apply_params` writes a sample into a run config.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from modelladder.config import RunConfig, set_dotted, validate_run
from modelladder.errors import InputError, did_you_mean
from modelladder.registry import MODELS, load_object

RANGE_KEYS = ("low", "high", "log", "int")
SPEC_KEYS = (*RANGE_KEYS, "choices")
PREFIX = "tune.space"
# what a trial may not change: the run's identity, the data and how it is split and scored (tuning would pick
# whatever flatters the validation score), the budget itself; data.augment is training, so it may be tuned
FIXED = ("name", "seed", "tune", "eval", "card", "cost", "data", "task.name", "finetune.from")
TUNABLE_UNDER_FIXED = ("data.augment",)


def model_space(cfg: RunConfig) -> dict[str, dict]:
    """The space the model of `cfg` declares for itself (its class's search_space_for(model config))."""
    cls = load_object(MODELS[cfg.model.name])
    return copy.deepcopy(cls.search_space_for(cfg.model))


def space_for(cfg: RunConfig, overrides: dict | None = None) -> dict[str, dict]:
    """The model's space with the user's `tune.space` overrides applied, every path and spec checked.

    An override is a spec, a partial range that narrows the model's own ({high: 1e-2}: its low and log kept),
    a list (the choices), or null (the path is not tuned). Overrides may be nested ({model: {hidden: ...}}, as
    YAML and --set tune.space.model.hidden=... give them) or dotted. Raises one InputError with every problem."""
    space = model_space(cfg)
    problems = []
    for path, override in flatten(overrides or {}).items():
        if override is None:
            space.pop(path, None)
        elif isinstance(override, list):
            space[path] = {"choices": override}
        elif isinstance(override, dict):
            base = space.get(path, {})
            narrows = "choices" not in override and "choices" not in base and set(override) <= set(RANGE_KEYS)
            space[path] = {**base, **override} if narrows else dict(override)
        else:
            problems.append(f"{PREFIX}.{path} must be a list of choices, a mapping {{low, high, log}} or null "
                            f"(not tuned), got {override!r}: to fix the value, set {path} itself and "
                            f"{PREFIX}.{path}: null")
    problems += [p for path, spec in space.items() for p in check(cfg, path, spec)]
    if problems:
        raise InputError(problems)
    if not space:
        raise InputError(f"{PREFIX}: model '{cfg.model.name}' has nothing to tune (its search space is empty); "
                         f"give {PREFIX}.<config path> ranges or choices, e.g. {PREFIX}.train.optimizer.lr: "
                         "{low: 1e-4, high: 1e-2, log: true}")
    return {path: normalise(spec) for path, spec in space.items()}


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"hidden": [...]}} -> {"model.hidden": [...]}; a mapping of spec keys is a leaf."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) & set(SPEC_KEYS):
            out |= flatten(value, f"{path}.")
        else:
            out[path] = value
    return out


def check(cfg: RunConfig, path: str, spec: Any) -> list[str]:
    """The problems of one spec: its shape, its bounds, and that its path is a field of the run config whose
    extreme values (or every choice) the config accepts."""
    field = f"{PREFIX}.{path}"
    if (problem := unknown_path(cfg, path)) is not None:
        return [problem]
    if _under(path, FIXED) and not _under(path, TUNABLE_UNDER_FIXED):
        return [(f"{field}: {path} cannot be tuned: a trial may change the model and its training, not the run's "
                f"name, seed, data, split, task or evaluation ({', '.join(FIXED)}; data.augment may be tuned)")]
    if not isinstance(spec, dict) or not spec:
        return [f"{field} must be a mapping {{low, high, log}} or {{choices: [...]}}, got {spec!r}"]
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        return [f"{field}: unknown key '{k}', allowed {list(SPEC_KEYS)}{did_you_mean(k, SPEC_KEYS)}" for k in unknown]
    if "choices" in spec:
        if set(spec) != {"choices"}:
            return [f"{field}: choices cannot be combined with {sorted(set(spec) - {'choices'})}"]
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            return [f"{field}.choices must be a non-empty list, got {choices!r}"]
        values = choices
    else:
        low, high = spec.get("low"), spec.get("high")
        numbers = [v for v in (low, high) if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < 2:
            return [f"{field} needs numbers low and high (or choices), got low={low!r}, high={high!r}"]
        if spec.get("int") and not all(float(v).is_integer() for v in numbers):
            return [f"{field} is an integer range: low and high must be integers, got {low!r} and {high!r}"]
        if low >= high:
            return [f"{field}: low must be below high, got low={low!r}, high={high!r}"]
        if spec.get("log") and low <= 0:
            return [f"{field}: a log range needs low > 0, got low={low!r}"]
        values = [int(low), int(high)] if spec.get("int") else [low, high]
    problems = []
    for value in values:
        try:
            apply_params(cfg, {path: value}, field=field)
        except InputError as err:
            problems += err.problems
    return problems


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def normalise(spec: dict) -> dict:
    """A checked spec with every key spelled out: {"choices": [...]} or {"low", "high", "log", "int"}."""
    if "choices" in spec:
        return {"choices": list(spec["choices"])}
    is_int = bool(spec.get("int", False))
    cast = int if is_int else float
    return {"low": cast(spec["low"]), "high": cast(spec["high"]), "log": bool(spec.get("log", False)), "int": is_int}


# ---------------------------------------------------------------- config paths


def unknown_path(cfg: RunConfig, path: str) -> str | None:
    """None when `path` names a field of `cfg` (through nested configs, the model's own included), else the
    problem, with did-you-mean over every field path of the config."""
    node: Any = cfg
    for part in path.split("."):
        fields = _fields(node)
        if part not in fields:
            hint = did_you_mean(path, field_paths(cfg))
            return f"{PREFIX}.{path}: '{path}' is not a field of the run config{hint}"
        node = fields[part]
    return None


def _fields(node: Any) -> dict[str, Any]:
    """A config's fields -> their value (or, for a nested config left at None, its class)."""
    cls = node if isinstance(node, type) else type(node)
    if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
        return {}
    out = {}
    for name, info in cls.model_fields.items():
        value = getattr(node, name, None) if not isinstance(node, type) else None
        if value is None:  # an optional section (train.early_stopping): its config class
            args = getattr(info.annotation, "__args__", (info.annotation,))
            value = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        out[info.alias or name] = value
    return out


def field_paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted field path of a config, nested ones included."""
    out = []
    for name, value in _fields(node).items():
        out.append(prefix + name)
        out += field_paths(value, f"{prefix}{name}.") if value is not None else []
    return out


def apply_params(cfg: RunConfig, params: dict[str, Any], field: str = PREFIX) -> RunConfig:
    """`cfg` with each dotted path of `params` set to its value, validated again as a whole run config; an
    InputError naming `field` (tune.space) and the values when the config refuses them."""
    raw = cfg.model_dump(mode="json")
    for path, value in params.items():
        set_dotted(raw, path, value)
    try:
        return validate_run(raw)
    except InputError as err:
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        raise InputError([f"{field}: {shown} gives an invalid run config: {p}" for p in err.problems]) from None


# ---------------------------------------------------------------- Optuna


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def encode_choices(choices: list) -> list:
    """Optuna's categorical choices: scalars as they are; when any is a list or mapping, every choice as its
    JSON text (suggest_categorical takes only None, bool, int, float and str)."""
    return list(choices) if all(_scalar(c) for c in choices) else [json.dumps(c) for c in choices]


def decode_params(space: dict[str, dict], params: dict[str, Any]) -> dict[str, Any]:
    """Run-config values from Optuna's params (a trial's, or study.best_params): JSON choices decoded."""
    out = {}
    for path, value in params.items():
        spec = space.get(path, {})
        encoded = "choices" in spec and not all(_scalar(c) for c in spec["choices"])
        out[path] = json.loads(value) if encoded and isinstance(value, str) else value
    return out


def to_optuna(space: dict[str, dict]) -> Callable[[Any], dict[str, Any]]:
    """A function (optuna trial) -> run-config values, sampling each path of a checked space (space_for)."""
    space = {path: normalise(spec) for path, spec in space.items()}

    def sample(trial) -> dict[str, Any]:
        params = {}
        for path, spec in space.items():
            if "choices" in spec:
                params[path] = trial.suggest_categorical(path, encode_choices(spec["choices"]))
            elif spec["int"]:
                params[path] = trial.suggest_int(path, spec["low"], spec["high"], log=spec["log"])
            else:
                params[path] = trial.suggest_float(path, spec["low"], spec["high"], log=spec["log"])
        return decode_params(space, params)

    return sample
