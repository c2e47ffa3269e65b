"""Issue 17's `ladder_parallel`: the digits k-fold ladder (`ladder run --set protocol.kind=kfold`, 4 rungs x 5 folds)
trained serially vs as Ray tasks (`--executor ray --workers 2`, a local Ray the command starts and stops).

Both run as `ladder` subprocesses with train.threads=1, so each run trains on one thread wherever it runs and the
two leaderboards must be the same (every column but the measured costs: time, memory, energy, latency); the
benchmark fails if they are not. Reported: the wall time of each process (Ray's start and stop included), the
ratio serial / ray, and the best rung's cv accuracy. Run alternately (serial, ray, serial, ...), --rounds times.
--quick: 300 examples, 2 epochs, 3 folds (a smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import alternate, median, record
from modelladder.evaluate.cost import COST_COLUMNS

REPO = Path(__file__).resolve().parents[1]


def ladder_command(runs_dir: Path, executor: list[str], quick: bool) -> list[str]:
    sets = ["protocol.kind=kfold", "train.threads=1", "train.progress=false"]
    if quick:
        sets += ["data.limit=300", "train.epochs=2", "protocol.folds=3"]
    return [sys.executable, "-m", "modelladder", "run", "--runs-dir", str(runs_dir), "--overwrite",
            *[a for s in sets for a in ("--set", s)], *executor]


def run_once(runs_dir: Path, executor: list[str], quick: bool) -> dict:
    """One `ladder run` process: its wall time and its leaderboard.json rows."""
    started = time.perf_counter()
    subprocess.run(ladder_command(runs_dir, executor, quick), check=True, cwd=REPO, env=os.environ.copy(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    rows = json.loads((runs_dir / "digits" / "leaderboard.json").read_text())
    return {"wall_s": seconds, "rows": rows}


def compared(rows: list[dict]) -> list[dict]:
    """A leaderboard without its measured costs."""
    return [{k: v for k, v in row.items() if k not in COST_COLUMNS} for row in rows]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ladder_parallel")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    boards: dict[str, list] = {"serial": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        def contender(name: str, executor: list[str]):
            def run() -> dict:
                out = run_once(Path(tmp) / name, executor, args.quick)
                boards[name].append(out["rows"])
                return {"wall_s": out["wall_s"]}
            return run

        results = alternate({"serial": contender("serial", []),
                             "ray": contender("ray", ["--executor", "ray", "--workers", str(args.workers)])},
                            args.rounds, warmup=False)
    same = all(compared(b) == compared(boards["serial"][0]) for b in boards["serial"] + boards["ray"])
    best = max(boards["serial"][0], key=lambda r: r.get("cv_accuracy_mean", 0))
    serial, ray = median(results["serial"], "wall_s"), median(results["ray"], "wall_s")
    line = record("ladder_parallel", f"serial (ray {args.workers} workers)", unit="s", ours=ray, theirs=serial,
                  higher_is_better=False, quality_metric="best cv_accuracy_mean",
                  ours_quality=best["cv_accuracy_mean"], theirs_quality=best["cv_accuracy_mean"],
                  command=" ".join(ladder_command(Path("RUNS"), ["--executor", "ray"], args.quick)[2:]),
                  write=not args.quick, identical_leaderboard=same, rounds=args.rounds, quick=args.quick,
                  cpus=os.cpu_count(), load_avg_at_end=round(os.getloadavg()[0], 2))
    print(json.dumps(line))
    print(f"serial {serial:.1f} s, ray ({args.workers} workers) {ray:.1f} s: serial / ray = {serial / ray:.2f}x; "
          f"leaderboards {'identical' if same else 'DIFFER'} (but for measured costs); best rung {best['rung']} "
          f"{best['cv_accuracy_mean']:.4f}")
    return 0 if same else 1
