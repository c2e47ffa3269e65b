"""What every benchmark shares: alternating A/B runs, medians, and the results file."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from modelladder.runs import git_sha

RESULTS = Path(__file__).resolve().parent / "results"


def alternate(contenders: dict[str, Callable[[], dict]], rounds: int, warmup: bool = True) -> dict[str, list[dict]]:
    """Run each contender once per round, in turn (A B C A B C ...), so drift hits all alike.

    With `warmup`, each runs once first, untimed: one-off costs (lazy imports such as torch._dynamo
    on the first optimizer, allocator growth) land on nobody.
    """
    if warmup:
        for run in contenders.values():
            run()
    out: dict[str, list[dict]] = {name: [] for name in contenders}
    for r in range(rounds):
        for name, run in contenders.items():
            result = run()
            out[name].append(result)
            print(f"  round {r + 1}/{rounds} {name:28s} " +
                  "  ".join(f"{k}={v:.4g}" for k, v in result.items()), flush=True)
    return out


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def record(benchmark: str, peer: str, *, unit: str, ours: float, theirs: float, higher_is_better: bool,
           quality_metric: str, ours_quality: float, theirs_quality: float, command: str,
           write: bool = True, **extra) -> dict:
    """One result line; `ratio` is always 'times better than the peer'."""
    line = {
        "benchmark": benchmark, "peer": peer,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "unit": unit, "ours": round(ours, 3), "theirs": round(theirs, 3),
        "ratio": round(ours / theirs if higher_is_better else theirs / ours, 3),
        "quality_metric": quality_metric, "ours_quality": round(ours_quality, 4),
        "theirs_quality": round(theirs_quality, 4), "command": command, **extra,
    }
    if write:
        RESULTS.mkdir(exist_ok=True)
        with open(RESULTS / f"{benchmark}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
    return line
