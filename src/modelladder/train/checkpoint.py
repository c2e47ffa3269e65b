"""Checkpoints and weight files: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is a folder `step-000123/` holding model.safetensors, optimizer.safetensors and
state.json. state.json carries the sha256 of each tensor file and of its own content, so a flipped
bit or a truncated file is an InputError naming the file, never a silently wrong resume. Folders
are written under a temporary name and renamed into place, so a crash never leaves half of one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor, nn

from modelladder.errors import InputError

KEEP = 2  # step checkpoints kept on disk; `best/` is kept besides
FORMAT = 1
_STEP_DIR = re.compile(r"step-(\d+)")
_TMP_PREFIX = ".tmp-"


def save_checkpoint(ckpt_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict,
                    optimizer_state: dict | None = None) -> Path:
    """Write `ckpt_dir/step-<state['step']>/` and keep only the newest KEEP step checkpoints.
    `optimizer_state` stands in for optimizer.state_dict() where that is not the whole state (FSDP's shards)."""
    ckpt_dir = Path(ckpt_dir)
    tensors, optimizer_json = _optimizer_to_tensors(optimizer, optimizer_state)
    files = {"model.safetensors": _model_tensors(model), "optimizer.safetensors": tensors}
    final = _write_folder(ckpt_dir, f"step-{state['step']:06d}", files, {**state, "optimizer": optimizer_json})
    for old in _step_dirs(ckpt_dir)[:-KEEP]:
        shutil.rmtree(old)
    return final


def save_best(ckpt_dir: Path, model: nn.Module, state: dict) -> Path:
    """Write the model alone to `ckpt_dir/best/` (the weights early stopping returns to)."""
    return _write_folder(Path(ckpt_dir), "best", {"model.safetensors": _model_tensors(model)}, state)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The step checkpoint with the highest step in `ckpt_dir`, or None."""
    dirs = _step_dirs(Path(ckpt_dir))
    return dirs[-1] if dirs else None


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    load_optimizer=None) -> dict:
    """Restore `model` (and `optimizer`) from checkpoint folder `path`; returns its state.json.

    Every file is verified against its recorded sha256 and every tensor name and shape against the
    model and optimizer before anything is changed. `load_optimizer(state_dict)` stands in for
    optimizer.load_state_dict where the optimizer holds shards (FSDP).
    """
    path = Path(path)
    state = _read_state(path / "state.json")
    model_tensors = _read_tensors(path / "model.safetensors", state)
    _check_tensors(path / "model.safetensors", model.state_dict(), model_tensors)
    if optimizer is not None:
        opt_tensors = _read_tensors(path / "optimizer.safetensors", state)
        opt_state = _optimizer_from_tensors(path / "optimizer.safetensors", optimizer, opt_tensors, state)
    model.load_state_dict(model_tensors)
    if optimizer is not None:
        (load_optimizer or optimizer.load_state_dict)(opt_state)
    state.pop("optimizer", None)
    return state


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> Path:
    """The model's state dict as one safetensors file, written to a temporary name and renamed. Its
    metadata records the sha256 of the tensor bytes, so that a flipped bit is found on loading."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = _model_tensors(model)
    # the tensor bytes do not depend on the metadata: serialize once to hash them, once to record it
    digest = hashlib.sha256(_tensor_bytes(_serialize(tensors, metadata))).hexdigest()
    _write_file(path, _serialize(tensors, {**(metadata or {}), "sha256": digest}))
    return path


def load_weights(path: Path, model: nn.Module) -> dict[str, str]:
    """Load a file written by save_weights into `model`; returns the file's metadata."""
    path = Path(path)
    data = _read_bytes(path)
    tensors = _parse(path, data)
    metadata = _metadata(data)
    recorded = metadata.pop("sha256", None)  # absent in files written before it was recorded
    if recorded is not None and recorded != (actual := hashlib.sha256(_tensor_bytes(data)).hexdigest()):
        raise InputError(f"weights file {path} is corrupt: the sha256 of its tensors {actual} does not match "
                         f"the recorded {recorded}")
    _check_tensors(path, model.state_dict(), tensors)
    model.load_state_dict(tensors)
    return metadata


def rng_states(generators: dict[str, torch.Generator]) -> dict[str, str]:
    """Each generator's state as base64 text, for state.json."""
    return {name: base64.b64encode(g.get_state().numpy().tobytes()).decode() for name, g in generators.items()}


def set_rng_states(states: dict[str, str], generators: dict[str, torch.Generator]) -> None:
    """Restore states written by rng_states; the checkpoint must hold one for every generator."""
    missing = sorted(set(generators) - set(states))
    if missing:
        raise InputError(f"the checkpoint holds no random state for {missing} (it holds {sorted(states)}): "
                         "was it made with another device or data.augment setting?")
    for name, g in generators.items():
        g.set_state(torch.from_numpy(np.frombuffer(base64.b64decode(states[name]), dtype=np.uint8).copy()))


# ---------------------------------------------------------------- writing


def _model_tensors(model: nn.Module) -> dict[str, Tensor]:
    # copies: safetensors refuses tensors that share memory (tied weights) or are not contiguous
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _optimizer_to_tensors(optimizer: torch.optim.Optimizer, sd: dict | None = None) -> tuple[dict[str, Tensor], dict]:
    """Tensor state as `state.<param index>.<key>` tensors; param groups and other values as JSON."""
    sd = optimizer.state_dict() if sd is None else sd
    tensors, other = {}, {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                other.setdefault(str(index), {})[key] = value
    return tensors, {"class": type(optimizer).__name__, "param_groups": sd["param_groups"], "other": other}


def _serialize(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes with the header's keys sorted: safetensors writes its metadata from a hash
    map in random order, and equal weights should give byte-identical files."""
    data = save_tensors(tensors, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the tensor data stays 8-byte aligned
    return len(header).to_bytes(8, "little") + header + data[8 + size :]


def _write_folder(parent: Path, name: str, files: dict[str, dict[str, Tensor]], state: dict) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(_TMP_PREFIX + "*"):  # left by a crash during an earlier write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = parent / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    tmp.mkdir()
    state = {**state, "format": FORMAT, "files": {}}
    for filename, tensors in files.items():
        data = _serialize(tensors)
        _write_file(tmp / filename, data, atomic=False)
        state["files"][filename] = hashlib.sha256(data).hexdigest()
    state["state_sha256"] = _json_digest(state)
    _write_file(tmp / "state.json", json.dumps(state, indent=1).encode(), atomic=False)
    final = parent / name
    if final.exists():  # a folder cannot be renamed over a non-empty one: move the old one aside
        old = parent / f"{_TMP_PREFIX}old-{name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(parent)
    return final


def _write_file(path: Path, data: bytes, atomic: bool = True) -> None:
    target = path.with_name(f"{_TMP_PREFIX}{path.name}-{os.getpid()}") if atomic else path
    with open(target, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if atomic:
        os.replace(target, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_dirs(ckpt_dir: Path) -> list[Path]:
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_DIR.fullmatch(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def _json_digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(f"checkpoint file {path} is missing")
    return path.read_bytes()


def _read_state(path: Path) -> dict:
    try:
        state = json.loads(_read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"checkpoint file {path} is not valid JSON ({err}): the file is corrupt") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"checkpoint file {path} is not a ModelLadder checkpoint of format {FORMAT}")
    recorded = state.pop("state_sha256", None)
    if recorded != _json_digest(state):
        raise InputError(f"checkpoint file {path} is corrupt: its content does not match its sha256")
    return state


def _read_tensors(path: Path, state: dict) -> dict[str, Tensor]:
    data = _read_bytes(path)
    expected = state["files"].get(path.name)
    actual = hashlib.sha256(data).hexdigest()
    if expected != actual:
        raise InputError(
            f"checkpoint file {path} is corrupt or truncated: sha256 {actual} does not match the recorded {expected}"
        )
    return _parse(path, data)


def _parse(path: Path, data: bytes) -> dict[str, Tensor]:
    try:
        return load_tensors(data)
    except SafetensorError as err:
        raise InputError(f"weights file {path} is not a valid safetensors file ({err})") from None


def _tensor_bytes(data: bytes) -> bytes:
    return data[8 + int.from_bytes(data[:8], "little") :]


def _metadata(data: bytes) -> dict[str, str]:
    header_len = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + header_len]).get("__metadata__", {})


def _check_tensors(path: Path, expected: dict[str, Tensor], got: dict[str, Tensor]) -> None:
    """Names and shapes in `got` must be exactly those of `expected`; one message lists every difference."""
    problems = []
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    for name in sorted(set(expected) & set(got)):
        if tuple(expected[name].shape) != tuple(got[name].shape):
            want, have = tuple(expected[name].shape), tuple(got[name].shape)
            problems.append(f"tensor '{name}' has shape {have}, the model expects {want}")
    if problems:
        raise InputError(f"{path} does not fit this model: " + "; ".join(problems))


def _optimizer_from_tensors(path: Path, optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor],
                            state: dict) -> dict:
    saved = state["optimizer"]
    if saved["class"] != type(optimizer).__name__:
        raise InputError(f"{path} holds {saved['class']} state, but this run uses {type(optimizer).__name__}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    # JSON turned tuples such as betas into lists
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in saved["param_groups"]]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise InputError(f"{path} holds optimizer state for different parameters than this model has")
    per_param: dict[int, dict] = {int(i): dict(v) for i, v in saved["other"].items()}
    for name, tensor in tensors.items():
        match = re.fullmatch(r"state\.(\d+)\.(\w+)", name)
        index = int(match.group(1)) if match else -1
        if not 0 <= index < len(params) or (tensor.dim() > 0 and tensor.shape != params[index].shape):
            raise InputError(f"{path}: optimizer tensor '{name}' does not fit this model's parameters")
        per_param.setdefault(index, {})[match.group(2)] = tensor
    return {"state": per_param, "param_groups": groups}
