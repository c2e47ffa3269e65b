"""What keeps a ladder's finished work: failed rows for rungs that fail at run time, `ladder run --resume` (which rung
and fold folders are finished, and whether a ladder folder may be resumed with the ladder given), and the wall-clock
budget shared by the rungs (`--time-limit`).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from modelladder.config import LadderConfig, RunConfig, read_yaml
from modelladder.errors import InputError
from modelladder.registry import MODELS, lookup
from modelladder.runs import read_json, write_text

TIME_UP = "time limit reached"  # the error of a rung that found no time left (--time-limit)
MAX_ERROR = 300  # characters of a failed row's error


# ---------------------------------------------------------------- failed rows


def one_line(err: BaseException) -> str:
    """An exception as one line for a leaderboard row: an InputError's problems joined by '; ', any other
    exception as 'Type: message', whitespace collapsed, at most MAX_ERROR characters."""
    text = "; ".join(err.problems) if isinstance(err, InputError) else f"{type(err).__name__}: {err}"
    text = " ".join(text.split()) or type(err).__name__
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."


def failed_row(cfg: RunConfig, error: str) -> dict:
    """A rung that did not finish: its name, model, family, status and the one-line error; no metrics. The status is
    'skipped' for a rung that found no time left under --time-limit (the user's budget, not a fault: `ladder run`
    still exits 0 and --resume trains it), else 'failed'."""
    family = lookup(MODELS, "model.name", cfg.model.name).family
    return {"rung": cfg.name or cfg.model.name, "model": cfg.model.name, "family": family,
            "status": "skipped" if error == TIME_UP else "failed", "error": error}


def ok_row(row: dict) -> dict:
    """`row` with status 'ok' after its rung, model and family."""
    head = {k: row[k] for k in ("rung", "model", "family") if k in row}
    return head | {"status": "ok"} | {k: v for k, v in row.items() if k not in head and k != "status"}


def is_ok(row: dict) -> bool:
    """A row with metrics: status 'ok', or a leaderboard written before rows had a status."""
    return row.get("status", "ok") == "ok"


def record_failure(folder: Path, err: BaseException) -> None:
    """error.txt in the rung's (or fold's) folder: the whole traceback behind its one-line error."""
    if folder.is_dir():
        write_text(folder / "error.txt", "".join(traceback.format_exception(err)))


# ---------------------------------------------------------------- --resume


def finished_result(run_dir: Path, split: str) -> dict | None:
    """A finished run's result as train_run returned it (summary.json and eval_<split>.json merged); None when
    the run did not get that far (a half-written or failed rung is trained again)."""
    files = [run_dir / "summary.json", run_dir / f"eval_{split}.json"]
    if not all(p.is_file() for p in files):
        return None
    try:
        summary, evaluation = (read_json(p) for p in files)
    except InputError:  # a file cut short: not finished
        return None
    return summary | evaluation


def check_resumable(path: Path, ladder: LadderConfig) -> None:
    """`--resume` needs `path` to be a ladder folder whose ladder.yaml is `ladder`, but for its rungs (added or
    left out; a rung kept under its name must have the same settings) and its time limit. Every difference is
    named, as field: value there, value now."""
    saved = path / "ladder.yaml"
    if not path.is_dir():
        raise InputError(f"cannot resume: ladder folder {path} does not exist (run without --resume to start it)")
    if not saved.is_file():
        raise InputError(f"cannot resume: {saved} is missing: is {path} a folder that `ladder run` made?")
    old = _normalised(read_yaml(saved))
    new = ladder.model_dump(mode="json")
    problems = []
    for key in dict.fromkeys([*old, *new]):
        if key not in ("rungs", "time_limit_s"):
            problems += _differences(old.get(key, _ABSENT), new.get(key, _ABSENT), key)
    old_rungs = {r.get("name"): r for r in old.get("rungs", []) if isinstance(r, dict)}
    for rung in new["rungs"]:
        if rung["name"] in old_rungs:
            problems += _differences(old_rungs[rung["name"]], rung, f"rungs '{rung['name']}'")
    if problems:
        raise InputError([f"cannot resume {path}: the ladder differs from {saved} in {p}; resume it with the same "
                          "settings (rungs may be added or left out), or pass --overwrite to start again"
                          for p in problems])


_ABSENT = object()


def _normalised(raw: dict) -> dict:
    """A saved ladder.yaml with today's defaults filled in (shorthand rungs expanded), so that only real
    differences count; as it is when it no longer validates."""
    from pydantic import ValidationError

    try:
        return LadderConfig.model_validate(raw).model_dump(mode="json")
    except ValidationError:
        return raw


def _differences(old: Any, new: Any, field: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k in dict.fromkeys([*old, *new])
                for p in _differences(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{field}.{k}")]
    if old == new:
        return []
    return [f"{field} ({_show(old)} there, {_show(new)} now)"]


def _show(value: Any) -> str:
    return "unset" if value is _ABSENT else repr(value)


def continuable(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether a rung folder holds an unfinished network run of this very config with a checkpoint, so `--resume`
    continues it (`ladder train --resume`) instead of training it again."""
    from modelladder.train.checkpoint import latest_checkpoint

    saved = run_dir / "config.yaml"
    if not saved.is_file() or latest_checkpoint(run_dir / "checkpoints") is None:
        return False
    try:
        return read_yaml(saved) == cfg.model_dump(mode="json")
    except InputError:
        return False


# ---------------------------------------------------------------- --time-limit


class TimeBudget:
    """A wall-clock budget shared by what is left to train, measured from when the ladder started. Each run's share
    leaves room for its evaluation (latency included), estimated as the mean of the runs before it: a run's wall
    time less its training time."""

    def __init__(self, seconds: float | None):
        self.seconds, self.started = seconds, time.perf_counter()
        self.overheads: list[float] = []

    def share(self, runs_left: int) -> float | None:
        """The next run's train.max_seconds: what is left over the runs left, less the evaluation time expected
        (<= 0: no time for it); None: no limit."""
        if self.seconds is None:
            return None
        left = self.seconds - (time.perf_counter() - self.started)
        overhead = sum(self.overheads) / len(self.overheads) if self.overheads else 0.0
        return left / max(runs_left, 1) - overhead if left > 0 else left

    def ran(self, wall_seconds: float, train_seconds: float | None) -> None:
        """A run took `wall_seconds`, `train_seconds` of them training: the rest is what evaluation costs."""
        if train_seconds is not None:
            self.overheads.append(max(wall_seconds - train_seconds, 0.0))

    def per_run(self, runs: int) -> str:
        """The plan line's ', time limit 10m: about 2.5m per rung' (empty without a limit)."""
        if self.seconds is None:
            return ""
        return f", time limit {duration(self.seconds)}: about {duration(self.seconds / max(runs, 1))} per run"


def limited(cfg: RunConfig, seconds: float) -> RunConfig:
    """`cfg` with its training within `seconds`: train.max_seconds at most `seconds`; a tuned run's share is split
    between its trials and the retrain of the best: with tune.trials N, each run (trial or retrain) at most
    seconds / (N + 1) and tune.timeout_s at most N / (N + 1) of it; with a time budget only, half each."""
    if cfg.tune is not None:
        n = cfg.tune.trials or 1
        timeout = seconds * n / (n + 1)
        own = cfg.tune.timeout_s
        tune = cfg.tune.model_copy(update={"timeout_s": round(timeout if own is None else min(own, timeout), 3)})
        cfg = cfg.model_copy(update={"tune": tune})
        seconds = seconds / (n + 1)
    own = cfg.train.max_seconds
    seconds = round(seconds if own is None else min(own, seconds), 3)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_seconds": seconds})})


def duration(seconds: float) -> str:
    """90 -> '90s', 600 -> '10m', 5400 -> '1.5h'."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g}h"
    return f"{seconds / 60:.3g}m" if seconds >= 120 else f"{seconds:.3g}s"
