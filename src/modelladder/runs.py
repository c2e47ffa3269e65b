"""Run folders: safe names, never overwritten silently, and the environment record (env.json)."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from modelladder.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "run name") -> str:
    """A run or rung name becomes one folder under the runs folder: no separators, no '..'."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise InputError(
            f"{what} must be 1-128 letters, digits, '.', '_' or '-' (no '/', no '..', not starting "
            f"with '.'), got {name!r}"
        )
    return name


def run_path(runs_dir: str | Path, name: str) -> Path:
    return Path(runs_dir) / check_name(name)


def prepare(path: Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Make `path` ready to receive a run. An existing folder needs --overwrite or --resume."""
    if resume:
        if not path.is_dir():
            raise InputError(f"cannot resume: run folder {path} does not exist")
        return path
    if path.exists():
        if not overwrite:
            raise InputError(
                f"run folder {path} already exists; pass --overwrite to replace it "
                "(or --resume to continue a run)"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write to a temporary name, then rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"{path} is missing: is {path.parent} a ModelLadder run folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path} line {err.lineno} is not valid JSON: {err.msg}") from None


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment(seed: int) -> dict:
    """Versions, hardware, seed and git SHA: what it takes to reproduce a run."""
    import numpy
    import sklearn
    import torch

    import modelladder

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "command": sys.argv,
        "git_sha": git_sha(),
        "versions": {
            "modelladder": modelladder.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "hardware": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
    }
