"""`ladder run`: several rungs on one dataset, one split, one leaderboard."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from modelladder.config import LadderConfig, rung_configs, to_yaml
from modelladder.pipeline import load_run_data, train_run
from modelladder.runs import check_name, prepare, run_path, write_json, write_text

# Leaderboard columns beyond the metrics: what each step up the ladder costs.
COST_COLUMNS = ["params", "train_seconds", "latency_ms_p50", "batch_ms_per_sample"]


def run_ladder(ladder: LadderConfig, runs_dir: str | Path, *, overwrite: bool = False,
               console: Console | None = None) -> list[dict]:
    console = console or Console(stderr=True)
    rungs = rung_configs(ladder)
    for cfg in rungs:
        check_name(cfg.name, "rung name")
    path = run_path(runs_dir, ladder.name)
    if path.exists() and not overwrite:
        prepare(path)  # refuses, before the data is loaded
    data = load_run_data(rungs[0])  # every rung shares data, seed and split: load once
    root = prepare(path, overwrite=overwrite)  # only once the data is known to be good
    write_text(root / "ladder.yaml", to_yaml(ladder))
    console.print(f"[bold]{ladder.name}[/]: {len(rungs)} rungs on {data.source} "
                  f"({len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test)")
    rows = []
    for cfg in rungs:
        console.print(f"-> {cfg.name} ({cfg.model.name})")
        rows.append(_row(cfg, train_run(cfg, prepare(root / cfg.name), data=data)))
    write_json(root / "leaderboard.json", rows)
    _write_csv(root / "leaderboard.csv", rows)
    return rows


def _row(cfg, result: dict) -> dict:
    row = {"rung": cfg.name, "model": cfg.model.name, "family": result["family"]}
    row |= {f"{result['split']}_{k}": round(v, 4) for k, v in result["metrics"].items()}
    row["params"] = result["params"]
    row["train_seconds"] = round(result["train_seconds"], 2)
    row |= {k: round(v, 4) for k, v in result["latency"].items()}
    return row


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(path)


HEADERS = {"params": "params", "train_seconds": "train s", "latency_ms_p50": "latency ms",
           "batch_ms_per_sample": "batch ms/sample"}


def leaderboard_table(rows: list[dict], title: str) -> Table:
    metric_cols = [k for k in rows[0] if k.startswith(("test_", "val_"))]
    headline = [c for c in metric_cols if c.endswith(("_accuracy", "_f1_macro", "_r2", "_mse"))] or metric_cols[:2]
    table = Table(title=title)
    table.add_column("rung")
    table.add_column("model")
    for col in headline:
        table.add_column(col.replace("_", " "), justify="right")
    for col in COST_COLUMNS:
        table.add_column(HEADERS[col], justify="right")
    for row in rows:
        table.add_row(row["rung"], row["model"], *(_fmt(row.get(c)) for c in headline + COST_COLUMNS))
    return table


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
