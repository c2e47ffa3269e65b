"""Run folders: safe names, claimed once (never overwritten silently), files written atomically, a run's
config read back, and the environment record (env.json). Every verb that makes a run folder goes through here."""

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
from typing import TYPE_CHECKING, Any, Callable

from modelladder.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from modelladder.config import RunConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

RAPL = Path("/sys/class/powercap")  # Linux powercap: intel-rapl:N/energy_uj, one counter per CPU package


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


def refuse_existing(path: Path) -> None:
    """An InputError if `path` exists: called before any data is read, when neither --overwrite nor --resume
    was given."""
    if path.exists():
        prepare(path)


def claim(path: Path, *, overwrite: bool = False, resume: bool = False,
          load: Callable[[], Any] = lambda: None) -> tuple[Any, Path]:
    """(what load() returns, the run folder made ready): an existing folder is refused before `load()` reads any
    data, and bad data fails before a folder is created or replaced."""
    if not (overwrite or resume):
        refuse_existing(path)
    loaded = load()
    return loaded, prepare(path, overwrite=overwrite, resume=resume)


def write_run_files(run_dir: Path, cfg: RunConfig, preprocess: dict) -> None:
    """What makes a folder a run's before training starts: config.yaml (resolved), preprocess.json, env.json."""
    from modelladder.config import to_yaml

    write_text(run_dir / "config.yaml", to_yaml(cfg))
    write_json(run_dir / "preprocess.json", preprocess)
    write_json(run_dir / "env.json", environment(cfg.seed, country=cfg.cost.country))


def finish_environment(folder: Path) -> None:
    """env.json gets the load average at the end of the run (or ladder) beside the one at its start: a busy
    machine is what makes timings differ between runs."""
    path = folder / "env.json"
    if path.is_file():
        env = read_json(path)
        env["cost"]["load_average_end"] = _load_average()
        write_json(path, env)


def read_run_config(run_dir: str | Path, field: str = "run folder") -> RunConfig:
    """The config.yaml of run folder `run_dir`, validated; InputErrors name `field` (the setting or argument that
    gave the folder) and the file."""
    from modelladder.config import read_yaml, validate_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{field} {run_dir} does not exist")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise InputError(f"{config_file} is missing: is {run_dir} a ModelLadder run folder?")
    try:
        return validate_run(read_yaml(config_file))
    except InputError as err:
        raise InputError([f"{config_file}: {problem}" for problem in err.problems]) from None


def write_csv(path: Path, frame: pd.DataFrame, **to_csv) -> None:
    _atomically(path, lambda tmp: frame.to_csv(tmp, **to_csv))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    _atomically(path, lambda tmp: tmp.write_text(text))


def _atomically(path: Path, write: Callable[[Path], object]) -> None:
    """write(a temporary name), then rename it to `path`: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
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


def environment(seed: int, *, country: str = "USA") -> dict:
    """Versions, hardware, seed and git SHA: what it takes to reproduce a run; under "cost", what its costs were
    measured under (the report's footnote prints it): CPU model, cores, the threads latency is timed with, the
    load average at the start (finish_environment adds the end), the CO2 grid's country, whether RAPL was
    readable (measured CPU energy)."""
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
        "cost": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_model": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),  # what training used unless train.threads says otherwise
            "latency_threads": 1,  # evaluate/cost.py one_thread
            "load_average_start": _load_average(),
            "load_average_end": None,
            "country": country,
            "rapl_readable": rapl_energy_uj() is not None,
        },
    }


def rapl_energy_uj() -> dict[str, tuple[int, int]] | None:
    """{package: (energy_uj, max_energy_range_uj)} from the RAPL counters, None where none is readable
    (no such files, or read-protected as on most recent kernels without root)."""
    counters = {}
    for folder in sorted(RAPL.glob("intel-rapl:*")):
        if folder.name.count(":") != 1:  # intel-rapl:0:0 (core, dram ...) lie inside their package
            continue
        try:
            counters[folder.name] = (int((folder / "energy_uj").read_text()),
                                     int((folder / "max_energy_range_uj").read_text()))
        except (OSError, ValueError):
            return None
    return counters or None


def cpu_model() -> str:
    """The CPU's marketing name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
