"""`ladder report FOLDER [--budget COST=LIMIT]`: report.html for a run or ladder folder; and how every verb
prints a run's result."""

from __future__ import annotations

from pathlib import Path

from modelladder.errors import InputError
from modelladder.report import write_report
from modelladder.report.budget import parse_budget, write_verdict
from modelladder.runs import read_json


def main(args) -> int:
    budget = parse_budget(args.budget)
    if budget:
        board = Path(args.folder) / "leaderboard.json"
        if not board.is_file():
            raise InputError(f"--budget needs a ladder folder (with leaderboard.json); {args.folder} has none")
        print(write_verdict(args.folder, read_json(board), budget)["text"])
    print(f"written: {report_for(args.folder)}")
    return 0


def report_for(folder: Path) -> Path:
    return write_report(folder)


def print_result(run_dir: Path, result: dict) -> None:
    """One line: the split, its size, and each metric with its 95% interval where it has one."""
    intervals = result.get("intervals", {})
    metrics = "  ".join(f"{k}={v:.4f}" + (" [{:.3f}, {:.3f}]".format(*intervals[k]) if k in intervals else "")
                        for k, v in result["metrics"].items())
    print(f"{run_dir} [{result['split']}, n={result['n']}]  {metrics}")
