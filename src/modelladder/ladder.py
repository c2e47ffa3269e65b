"""`ladder run`: several rungs on one dataset under one protocol, one leaderboard with what each costs.

protocol.kind holdout: every rung is trained on one split and scored on eval.split. kfold: every
rung is trained on each (repeat, fold) into <ladder>/<rung>/fold-r-k/, the leaderboard holds
mean ± std over the folds, and each rung is compared with the best one on the task's headline
metric (evaluate/cross_validate.py).

A ladder's `pretrain:` stages are `ladder pretrain` runs made first, into <ladder>/<stage>/; rungs with
finetune.from naming a stage start from it (finetune.py). The leaderboard holds the rungs only.
"""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console
from rich.table import Table

from modelladder.audit.run import audit_rung, audited_rungs
from modelladder.config import LadderConfig, RunConfig, rung_configs, to_yaml
from modelladder.evaluate.cross_validate import (ALPHA, compare_to_best, cost_values, fold_plan, headline,
                                                 mlflow_logger, round_cost, run_folds, summarize, write_plan)
from modelladder.finetune import run_stages, set_aside_stages
from modelladder.pipeline import check_model_fits_data, load_run_data, train_run
from modelladder.runs import check_name, prepare, run_path, write_json, write_text


def run_ladder(ladder: LadderConfig, runs_dir: str | Path, *, overwrite: bool = False,
               console: Console | None = None, mlflow: str | None = None) -> list[dict]:
    """Train every rung under ladder.protocol into <runs_dir>/<ladder.name>/, write leaderboard.json
    and .csv there and return the rows. With `mlflow` (a tracking URI) every run is logged to it."""
    console = console or Console(stderr=True)
    rungs = rung_configs(ladder)
    if ladder.audit is not None:  # every rung's data carries the audit's columns (audit/run.py)
        rungs = audited_rungs(ladder, rungs)
    for cfg in rungs:
        check_name(cfg.name, "rung name")
    path = run_path(runs_dir, ladder.name)
    if path.exists() and not overwrite:
        prepare(path)  # refuses, before the data is loaded
    if ladder.pretrain and overwrite:
        set_aside_stages(ladder, path)  # finished pretraining survives --overwrite (finetune.py)
    run = _kfold if ladder.protocol.kind == "kfold" else _holdout
    root, rows = run(ladder, rungs, path, overwrite=overwrite, console=console, mlflow=mlflow)
    write_json(root / "leaderboard.json", rows)
    _write_csv(root / "leaderboard.csv", rows)
    return rows


def _holdout(ladder: LadderConfig, rungs: list[RunConfig], path: Path, *, overwrite: bool, console: Console,
             mlflow: str | None) -> tuple[Path, list[dict]]:
    data = load_run_data(rungs[0])  # every rung shares data, seed and split: load once
    for cfg in rungs[1:]:
        check_model_fits_data(cfg, data)
    root = prepare(path, overwrite=overwrite)  # only once the data is known to be good
    write_text(root / "ladder.yaml", to_yaml(ladder))
    console.print(f"[bold]{ladder.name}[/]: {len(rungs)} rungs on {data.source} "
                  f"({len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test)")
    rungs = run_stages(ladder, rungs, root, console) if ladder.pretrain else rungs
    log = mlflow_logger(mlflow, experiment=ladder.name) if mlflow else None
    rows = []
    for cfg in rungs:
        console.print(f"-> {cfg.name} ({cfg.model.name})")
        run_dir = prepare(root / cfg.name)
        rows.append(_row(cfg, train_run(cfg, run_dir, data=data)))
        if ladder.audit is not None:  # audit.json in the rung's folder, its fairness gaps in its row
            rows[-1] |= audit_rung(run_dir, ladder.audit, data)
        if log is not None:
            log(cfg, run_dir, None)
    return root, rows


def _row(cfg: RunConfig, result: dict) -> dict:
    row = {"rung": cfg.name, "model": cfg.model.name, "family": result["family"]}
    row |= {f"{result['split']}_{k}": round(v, 4) for k, v in result["metrics"].items()}
    if "dp_epsilon" in result:  # a DP rung: the privacy it spent (train/privacy.py)
        row["dp_epsilon"] = round(result["dp_epsilon"], 3)
    return row | {k: round_cost(v) for k, v in cost_values(result).items()}


def _kfold(ladder: LadderConfig, rungs: list[RunConfig], path: Path, *, overwrite: bool, console: Console,
           mlflow: str | None) -> tuple[Path, list[dict]]:
    protocol = ladder.protocol
    plan = fold_plan(rungs, protocol.folds, protocol.repeats, name="protocol.folds")
    root = prepare(path, overwrite=overwrite)
    write_text(root / "ladder.yaml", to_yaml(ladder))
    write_plan(root / "folds.json", plan)
    rungs = run_stages(ladder, rungs, root, console) if ladder.pretrain else rungs
    console.print(f"[bold]{ladder.name}[/]: {len(rungs)} rungs x {protocol.repeats} x {protocol.folds}-fold "
                  f"cross-validation on {plan['source']} ({plan['n_pool']} training examples)")
    log = mlflow_logger(mlflow, experiment=ladder.name) if mlflow else None
    records = run_folds(rungs, [root / cfg.name for cfg in rungs], plan, console=console, after_run=log)
    rows = [summarize(cfg.name, cfg.model.name, recs) for cfg, recs in zip(rungs, records)]
    metric, mode = headline(rungs[0])
    compare_to_best(rows, records, metric, mode)
    for cfg, row, recs in zip(rungs, rows, records):
        write_json(root / cfg.name / "cv.json", {"summary": row, "folds": recs})
    return root, rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(path)


# ---------------------------------------------------------------- the printed table

# what fits a 120-column terminal; leaderboard.csv / .json hold every column
TABLE_COSTS = {"params": "params", "flops_train": "train FLOPs", "train_seconds": "train s",
               "energy_kwh": "kWh (est.)", "latency_ms_p50": "latency ms"}
HEADLINE = ("_accuracy", "_f1_macro", "_r2", "_mse")
# shown when some rung has them: the audit's demographic parity gaps (odds_gap_*: leaderboard.csv), a DP
# rung's epsilon
TABLE_EXTRAS = ("parity_gap_", "dp_epsilon")


def leaderboard_table(rows: list[dict], title: str) -> Table:
    """Headline metrics, then the main costs that some rung has a value for. Under k-fold: the
    task's headline metric as mean ± std, and its p-value against the best rung."""
    tested = "p_value" in rows[0]
    metrics = _metric_columns(rows[0])[: 1 if tested else None]
    costs = [c for c in TABLE_COSTS if any(row.get(c) is not None for row in rows)]
    table = Table(title=title)
    table.add_column("rung", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for col in metrics:
        table.add_column(col.replace("_", " "), justify="right", no_wrap=tested)  # mean ± std on one line
    if tested:
        table.add_column("p", justify="right")
        table.add_column("sig.", justify="right")
        table.caption = (f"mean ± std over {rows[0]['folds']} folds; p: corrected resampled t-test (Nadeau & "
                         f"Bengio) against the best rung; sig.: p < {ALPHA}. Wilcoxon p and every cost: "
                         "leaderboard.csv")
    extras = [c for c in dict.fromkeys(k for row in rows for k in row) if c.startswith(TABLE_EXTRAS)]
    for col in extras:
        table.add_column(col.replace("_", " "), justify="right")
    for col in costs:
        table.add_column(TABLE_COSTS[col], justify="right")
    for row in rows:
        cells = [_metric_cell(row, c) for c in metrics]
        if tested:
            cells += [_fmt(row["p_value"]), _significance(row)]
        cells += [_fmt(row.get(c)) for c in extras]
        table.add_row(row["rung"], row["model"], *cells, *(_fmt(row.get(c)) for c in costs))
    return table


def _metric_columns(row: dict) -> list[str]:
    names = list(dict.fromkeys(re.sub(r"_(mean|std)$", "", k) for k in row if k.startswith(("test_", "val_"))))
    return [c for c in names if c.endswith(HEADLINE)] or names[:2]


def _metric_cell(row: dict, column: str) -> str:
    if f"{column}_mean" in row:
        return f"{row[f'{column}_mean']:.4f} ± {row[f'{column}_std']:.4f}"
    return f"{row[column]:.4f}" if row.get(column) is not None else "-"


def _significance(row: dict) -> str:
    if row["significant"] is None:
        return "best"
    return "yes" if row["significant"] else "no"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}" if value < 10**7 else f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
