"""`ladder run`: several rungs on one dataset under one protocol, one leaderboard with what each costs.

protocol.kind holdout: every rung is trained on one split and scored on eval.split, each metric with its 95%
interval, and compared with the best rung on the task's headline metric, paired on the same examples (exact
McNemar for accuracy, else a paired bootstrap; Holm-adjusted). kfold: every rung is trained on each (repeat,
fold) into <ladder>/<rung>/fold-r-k/, scored on the fold no choice has seen, the leaderboard holds mean, std and
a corrected resampled t interval over the folds, and each rung is compared with the best one (corrected t-test,
Holm-adjusted) (verbs/cv.py, evaluate/significance.py).

A ladder's `pretrain:` stages are `ladder pretrain` runs made first, into <ladder>/<stage>/; rungs with
finetune.from naming a stage start from it (verbs/stages.py). The leaderboard holds the rungs only.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from modelladder.config import (
    LadderConfig,
    RunConfig,
    rung_configs,
    to_yaml,
)
from modelladder.evaluate.calibration import leaderboard_fields
from modelladder.evaluate.significance import compare_holdout, compare_to_best
from modelladder.report.budget import parse_budget, write_verdict
from modelladder.report.leaderboard import leaderboard_table, table_console
from modelladder.runs import (
    check_name,
    environment,
    finish_environment,
    prepare,
    run_path,
    write_csv,
    write_json,
    write_text,
)
from modelladder.verbs.audit import audit_rung, audited_rungs
from modelladder.verbs.auto import ladder_for
from modelladder.verbs.build import check_model_fits_data, load_run_data
from modelladder.verbs.cv import (
    cost_values,
    fold_plan,
    headline,
    mlflow_logger,
    round_cost,
    run_folds,
    summarize,
    write_plan,
)
from modelladder.verbs.evaluate import read_prediction_arrays
from modelladder.verbs.report import report_for
from modelladder.verbs.stages import run_stages, set_aside_stages
from modelladder.verbs.train import train_run


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
        set_aside_stages(ladder, path)  # finished pretraining survives --overwrite (verbs/stages.py)
    run = _kfold if ladder.protocol.kind == "kfold" else _holdout
    env = environment(ladder.seed, country=rungs[0].cost.country)  # the load average as the ladder starts
    root, rows = run(ladder, rungs, path, overwrite=overwrite, console=console, mlflow=mlflow)
    write_json(root / "env.json", env)
    finish_environment(root)
    write_json(root / "leaderboard.json", rows)
    write_csv(root / "leaderboard.csv", pd.DataFrame(rows), index=False)
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
    _compare_holdout(rows, [root / cfg.name for cfg in rungs], rungs[0])
    return root, rows


def _compare_holdout(rows: list[dict], run_dirs: list[Path], cfg: RunConfig) -> None:
    """Every rung against the best on the task's headline metric, paired on their saved predictions of the
    same examples (evaluate/significance.py); nothing for tasks that save none (generative ones)."""
    metric, mode = headline(cfg)
    split = cfg.eval.split
    paths = [d / f"predictions_{split}.csv" for d in run_dirs]
    if f"{split}_{metric}" not in rows[0] or not all(p.is_file() for p in paths):
        return
    arrays = [read_prediction_arrays(p) for p in paths]
    if any(not np.array_equal(y, arrays[0][0]) for y, _ in arrays):
        raise RuntimeError(f"the rungs' predictions_{split}.csv hold different examples: no paired comparison")
    compare_holdout(rows, arrays[0][0], [scores for _, scores in arrays], metric, mode, split=split,
                    classification=arrays[0][1].ndim == 2, seed=cfg.seed)


def _row(cfg: RunConfig, result: dict) -> dict:
    row = {"rung": cfg.name, "model": cfg.model.name, "family": result["family"]}
    if "estimator" in result:  # a scikit-learn rung's estimator: Ridge for a linear rung's regression
        row["estimator"] = result["estimator"]
    intervals = result.get("intervals", {})
    for k, v in result["metrics"].items():  # each metric, then its 95% interval (evaluate/intervals.py)
        row[f"{result['split']}_{k}"] = round(v, 4)
        if k in intervals:
            row[f"{result['split']}_{k}_low"], row[f"{result['split']}_{k}_high"] = (round(b, 4) for b in intervals[k])
    row |= leaderboard_fields(result)
    if "dp_epsilon" in result:  # a DP rung: the privacy it spent (train/privacy.py)
        row |= {"dp_epsilon": round(result["dp_epsilon"], 3)} | {k: result[k] for k in DP_FIELDS}
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


DP_FIELDS = ("dp_delta", "dp_sampling", "dp_secure")
DEFAULT_LADDER = "digits.yaml"  # the embedded default: scikit-learn's bundled digits, no download


def default_ladder() -> Path:
    return Path(str(files("modelladder") / "recipes" / DEFAULT_LADDER))


def main(args) -> int:
    """`ladder run [CONFIG | PATH --label COLUMN] [--set ...] [--runs-dir] [--overwrite] [--mlflow URI]
    [--budget COST=LIMIT]`: the leaderboard, printed, then the best rung within the budget. A data PATH gets a
    ladder picked for it (verbs/auto.py)."""
    ladder = ladder_for(args, default_ladder(), Console(stderr=True))
    budget = parse_budget(args.budget)  # a bad --budget fails before anything is trained
    rows = run_ladder(ladder, args.runs_dir, overwrite=args.overwrite, mlflow=args.mlflow)
    table = leaderboard_table(rows, f"{ladder.name} leaderboard")
    console = table_console(table)  # a leaderboard must not be cut when piped
    console.print(table)
    root = Path(args.runs_dir) / ladder.name
    if budget:  # after the leaderboard, and in budget.json for the report's top
        console.print(write_verdict(root, rows, budget)["text"], markup=False)
    console.print(f"written: {root / 'leaderboard.csv'} (and .json), {report_for(root)}")
    return 0
