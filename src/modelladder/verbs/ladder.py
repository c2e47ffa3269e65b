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

import sys
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from modelladder.config import (
    LadderConfig,
    RunConfig,
    parse_duration,
    rung_configs,
    to_yaml,
)
from modelladder.errors import InputError
from modelladder.evaluate.calibration import leaderboard_fields
from modelladder.evaluate.significance import compare_holdout, compare_sequences, compare_to_best
from modelladder.report.budget import parse_budget, write_verdict
from modelladder.report.columns import print_columns
from modelladder.report.leaderboard import leaderboard_table, table_console
from modelladder.runs import (
    check_name,
    environment,
    finish_environment,
    prepare,
    read_json,
    run_path,
    write_csv,
    write_json,
    write_text,
)
from modelladder.verbs.audit import audit_rung, audited_rungs
from modelladder.verbs.auto import ladder_for
from modelladder.verbs.build import load_run_data
from modelladder.verbs.cv import (
    Failed,
    cost_values,
    fold_plan,
    headline,
    mlflow_logger,
    round_cost,
    run_folds,
    summarize,
    write_plan,
)
from modelladder.verbs.evaluate import read_prediction_arrays, read_sequence_scores
from modelladder.verbs.executor import Executor, Job, executor_from, task_seconds
from modelladder.verbs.jobs import holdout_task
from modelladder.verbs.precheck import check_rungs
from modelladder.verbs.report import report_for
from modelladder.verbs.resilience import (
    TIME_UP,
    TimeBudget,
    check_resumable,
    continuable,
    failed_row,
    finished_result,
    is_ok,
    limited,
    ok_row,
    one_line,
    record_failure,
)
from modelladder.verbs.stages import run_stages, set_aside_stages
from modelladder.verbs.train import train_run
from modelladder.verbs.tune import check_tuned, prepare_keeping_study, tune_run, tuning_of


def run_ladder(ladder: LadderConfig, runs_dir: str | Path, *, overwrite: bool = False, resume: bool = False,
               console: Console | None = None, mlflow: str | None = None,
               executor: Executor | None = None) -> list[dict]:
    """Train every rung under ladder.protocol into <runs_dir>/<ladder.name>/, write leaderboard.json
    and .csv there and return the rows. With `mlflow` (a tracking URI) every run is logged to it.

    Every rung is checked against the data before the first one trains (verbs/precheck.py: all problems in one
    InputError, no folder made). A rung that fails at run time is a row with status 'failed' and its one-line
    error, and the others go on (KeyboardInterrupt still stops the ladder). `resume`: finish the ladder in its
    existing folder, keeping the rungs (k-fold: the folds) that finished. ladder.time_limit_s is shared by the
    rungs as they start (verbs/resilience.py). `executor` (verbs/executor.py; default serial): with Ray, the rungs
    (k-fold: every rung's folds) are Ray tasks, the time limit is shared up front, and the leaderboard is the
    serial one."""
    if resume and overwrite:
        raise InputError("--resume keeps a ladder's finished rungs and --overwrite deletes them: pass one of the two")
    console = console or Console(stderr=True)
    budget = TimeBudget(ladder.time_limit_s)
    rungs = rung_configs(ladder)
    if ladder.audit is not None:  # every rung's data carries the audit's columns (audit/run.py)
        rungs = audited_rungs(ladder, rungs)
    for cfg in rungs:
        check_name(cfg.name, "rung name")
    path = run_path(runs_dir, ladder.name)
    if resume:
        check_resumable(path, ladder)  # before the data is loaded
    elif path.exists() and not overwrite:
        prepare(path)  # refuses, before the data is loaded
    if ladder.pretrain and overwrite:
        set_aside_stages(ladder, path)  # finished pretraining survives --overwrite (verbs/stages.py)
    run = _kfold if ladder.protocol.kind == "kfold" else _holdout
    env = environment(ladder.seed, country=rungs[0].cost.country)  # the load average as the ladder starts
    with executor or Executor() as ex:
        root, rows = run(ladder, rungs, path, Plan(overwrite, resume, console, mlflow, budget, ex))
    write_json(root / "env.json", env)
    finish_environment(root)
    write_json(root / "leaderboard.json", rows)
    write_csv(root / "leaderboard.csv", pd.DataFrame(rows), index=False)
    return rows


@dataclass
class Plan:
    """How a ladder runs: the folder flags, where it prints, MLflow, its time budget and its executor."""

    overwrite: bool
    resume: bool
    console: Console
    mlflow: str | None
    budget: TimeBudget
    executor: Executor

    def root(self, path: Path, ladder: LadderConfig) -> Path:
        """The ladder folder, made (or kept, with --resume) once every rung passed the pre-check and Ray (with
        --executor ray) started."""
        self.executor.start()
        root = path if self.resume else prepare(path, overwrite=self.overwrite)
        write_text(root / "ladder.yaml", to_yaml(ladder))
        return root


def _holdout(ladder: LadderConfig, rungs: list[RunConfig], path: Path, plan: Plan) -> tuple[Path, list[dict]]:
    console = plan.console
    data = load_run_data(rungs[0], check=False)  # every rung shares data, seed and split: load once
    check_rungs(rungs, data, ladder)  # every problem of every rung at once, before a folder is made
    if ladder.tune is not None:
        check_tuned(rungs, data)
    print_columns({"kind": data.kind, **data.preprocess}, console)  # a table's column roles (data/columns.py)
    root = plan.root(path, ladder)
    split = rungs[0].eval.split
    kept = {cfg.name: _finished(root / cfg.name, split, ladder) if plan.resume else None for cfg in rungs}
    todo = sum(result is None for result in kept.values())
    console.print(f"[bold]{ladder.name}[/]: {len(rungs)} rungs on {data.source} "
                  f"({len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test)"
                  + (f"; {len(rungs) - todo} finished, kept" if plan.resume else "") + plan.budget.per_run(todo))
    rungs = run_stages(ladder, rungs, root, console) if ladder.pretrain else rungs
    log = mlflow_logger(plan.mlflow, experiment=ladder.name) if plan.mlflow else None
    train_rungs = _holdout_tasks if plan.executor.parallel else _holdout_serial
    rows = train_rungs(ladder, rungs, kept, root, data, plan, log)
    ok = [i for i, row in enumerate(rows) if is_ok(row)]
    if ok:
        _comparing(console, _compare_holdout, [rows[i] for i in ok], [root / rungs[i].name for i in ok], rungs[0])
    return root, rows


def _holdout_serial(ladder: LadderConfig, rungs: list[RunConfig], kept: dict, root: Path, data, plan: Plan,
                    log) -> list[dict]:
    """The rungs trained one after the other in this process, each given its share of the time left as it starts."""
    console, rows = plan.console, []
    todo = sum(result is None for result in kept.values())
    for cfg in rungs:
        if kept[cfg.name] is not None:
            console.print(f"-> {cfg.name} ({cfg.model.name}): finished, kept")
            kept_result = kept[cfg.name] | {"tuning": tuning_of(root / cfg.name)}
            rows.append(_row(cfg, kept_result) | _audit_fields(root / cfg.name, ladder))
            continue
        seconds = plan.budget.share(todo)
        todo -= 1
        if seconds is not None and seconds <= 0:
            console.print(f"-> {cfg.name} ({cfg.model.name}): [yellow]skipped[/] ({TIME_UP})")
            rows.append(failed_row(cfg, TIME_UP))
            continue
        cfg = limited(cfg, seconds) if seconds is not None else cfg
        limit = f", at most {cfg.train.max_seconds:.3g} s of training" if seconds is not None else ""
        console.print(f"-> {cfg.name} ({cfg.model.name}{limit})")
        started = time.perf_counter()
        rows.append(_train_rung(cfg, root / cfg.name, data, ladder, plan, log))
        plan.budget.ran(time.perf_counter() - started, rows[-1].get("train_seconds"))
    return rows


def _holdout_tasks(ladder: LadderConfig, rungs: list[RunConfig], kept: dict, root: Path, data, plan: Plan,
                   log) -> list[dict]:
    """--executor ray: every rung not kept is a Ray task (verbs/executor.py holdout_task) with the data put in
    Ray's object store once; its share of the time limit is fixed up front; the rows come back in the rungs'
    order, logged to MLflow by this process."""
    console, ex = plan.console, plan.executor
    todo = [cfg for cfg in rungs if kept[cfg.name] is None]
    skipped: dict[str, dict] = {}
    left = plan.budget.share(1)  # the whole time left (None: no limit)
    seconds = task_seconds(left, len(todo), ex.slots(todo[0])) if todo else None
    if seconds is not None and seconds <= 0:  # no time left for any (pretraining took it all)
        console.print(f"-> {', '.join(cfg.name for cfg in todo)}: [yellow]skipped[/] ({TIME_UP})")
        skipped = {cfg.name: failed_row(cfg, TIME_UP) for cfg in todo}
        todo = []
    shared = ex.share(data) if todo else None
    jobs = {}
    for cfg in todo:
        cfg = limited(cfg, seconds) if seconds is not None else cfg
        resume = plan.resume and ladder.time_limit_s is None and continuable(root / cfg.name, cfg)
        jobs[cfg.name] = Job(holdout_task, (cfg, (root / cfg.name).resolve(), shared, resume, ladder.audit), cfg)
        limit = f", at most {cfg.train.max_seconds:.3g} s of training" if seconds is not None else ""
        console.print(f"-> {cfg.name} ({cfg.model.name}{limit}): a Ray task" + (", continued" if resume else ""))
    outcomes = dict(zip(jobs, ex.run(list(jobs.values()))))
    rows = []
    for cfg in rungs:
        if cfg.name in skipped:
            rows.append(skipped[cfg.name])
            continue
        if kept[cfg.name] is not None:
            console.print(f"-> {cfg.name} ({cfg.model.name}): finished, kept")
            rows.append(_row(cfg, kept[cfg.name]) | _audit_fields(root / cfg.name, ladder))
            continue
        out, run_dir = outcomes[cfg.name], root / cfg.name
        try:
            if out.error is not None:
                raise _TaskFailed(out.error)
            row = _row(cfg, out.result) | out.extra
            if log is not None:
                log(cfg, run_dir, None)
        except Exception as err:  # noqa: BLE001 - as _train_rung: the rung's failed row
            error = str(err) if isinstance(err, _TaskFailed) else one_line(err)
            console.print(f"-> {cfg.name}: [red]failed[/]: {error} (traceback: {run_dir / 'error.txt'})")
            rows.append(failed_row(cfg, error))
            continue
        console.print(f"-> {cfg.name}: done")
        rows.append(row)
    return rows


class _TaskFailed(Exception):
    """A task's failure, its one-line error already made (in the worker)."""


def _finished(run_dir: Path, split: str, ladder: LadderConfig) -> dict | None:
    """A kept rung's result (verbs/resilience.py finished_result), when its audit finished too."""
    if ladder.audit is not None and not (run_dir / "audit.json").is_file():
        return None
    return finished_result(run_dir, split)


def _comparing(console: Console, compare, *args) -> None:
    """The comparison with the best, which must not cost the leaderboard of rungs that finished: if it fails,
    the rows stay without it and the console says why."""
    try:
        compare(*args)
    except Exception as err:  # noqa: BLE001 - the leaderboard is written all the same
        console.print(f"[red]no comparison with the best rung[/]: {one_line(err)}")


def _train_rung(cfg: RunConfig, run_dir: Path, data, ladder: LadderConfig, plan: Plan, log) -> dict:
    """One holdout rung's row: trained (with --resume, continued from its checkpoint when it has one of this very
    config and no time limit applies), audited and logged; its failed row when any of that raises."""
    tuned = cfg.tune is not None
    resume = plan.resume and ladder.time_limit_s is None and not tuned and continuable(run_dir, cfg)
    if resume:
        plan.console.print(f"   continued from {run_dir / 'checkpoints'}")
    elif tuned and plan.resume:  # a tuned rung's study (tune/) is kept: its finished trials count
        prepare_keeping_study(run_dir)
    else:
        prepare(run_dir, overwrite=plan.resume)  # --resume: a half-written rung folder is replaced
    try:
        result = tune_run(cfg, run_dir, data=data, console=plan.console) if tuned \
            else train_run(cfg, run_dir, data=data, resume=resume)
        row = _row(cfg, result)
        if ladder.audit is not None:  # audit.json in the rung's folder, its fairness gaps in its row
            row |= audit_rung(run_dir, ladder.audit, data)
        if log is not None:
            log(cfg, run_dir, None)
    except Exception as err:  # noqa: BLE001 - any failure is this rung's row; KeyboardInterrupt still stops the ladder
        record_failure(run_dir, err)
        plan.console.print(f"   [red]failed[/]: {one_line(err)} (traceback: {run_dir / 'error.txt'})")
        return failed_row(cfg, one_line(err))
    return row


def _audit_fields(run_dir: Path, ladder: LadderConfig) -> dict:
    """A kept rung's fairness gaps, read back from its audit.json (what audit_rung returned when it ran)."""
    if ladder.audit is None or not (run_dir / "audit.json").is_file():
        return {}
    from modelladder.audit.fairness import headline_gaps

    return {k: None if v is None else round(v, 4) for k, v in headline_gaps(read_json(run_dir / "audit.json")).items()}


def _compare_holdout(rows: list[dict], run_dirs: list[Path], cfg: RunConfig) -> None:
    """Every rung against the best on the task's headline metric, paired on their saved predictions of the
    same examples (evaluate/significance.py); nothing for tasks that save none (generative ones)."""
    metric, mode = headline(cfg)
    split = cfg.eval.split
    paths = [d / f"predictions_{split}.csv" for d in run_dirs]
    if f"{split}_{metric}" not in rows[0] or not all(p.is_file() for p in paths):
        return
    if cfg.task.name == "seq2seq":  # output strings: paired on each source's errors (compare_sequences)
        sequences = [read_sequence_scores(p) for p in paths]
        if any(not np.array_equal(keys, sequences[0][0]) for keys, _ in sequences):
            raise RuntimeError(f"the rungs' predictions_{split}.csv hold different sources: no paired comparison")
        compare_sequences(rows, [scores for _, scores in sequences], metric, mode, split=split, seed=cfg.seed)
        return
    arrays = [read_prediction_arrays(p) for p in paths]
    if any(not np.array_equal(y, arrays[0][0]) for y, _ in arrays):
        raise RuntimeError(f"the rungs' predictions_{split}.csv hold different examples: no paired comparison")
    compare_holdout(rows, arrays[0][0], [scores for _, scores in arrays], metric, mode, split=split,
                    classification=arrays[0][1].ndim == 2, seed=cfg.seed)


def _row(cfg: RunConfig, result: dict) -> dict:
    row = {"rung": cfg.name, "model": cfg.model.name, "family": result["family"], "status": "ok"}
    if "estimator" in result:  # a scikit-learn rung's estimator: Ridge for a linear rung's regression
        row["estimator"] = result["estimator"]
    if "stopped" in result:  # train.max_seconds (the ladder's time limit) ended its training early
        row["stopped"] = result["stopped"]
    intervals = result.get("intervals", {})
    for k, v in result["metrics"].items():  # each metric, then its 95% interval (evaluate/intervals.py)
        row[f"{result['split']}_{k}"] = round(v, 4)
        if k in intervals:
            row[f"{result['split']}_{k}_low"], row[f"{result['split']}_{k}_high"] = (round(b, 4) for b in intervals[k])
    row |= leaderboard_fields(result)
    if cfg.tune is not None:  # the budget every rung had, and the trials this one completed
        row |= {"tune_trials": (result.get("tuning") or {}).get("trials"), "tune_budget": cfg.tune.budget}
    if "dp_epsilon" in result:  # a DP rung: the privacy it spent (train/privacy.py)
        row |= {"dp_epsilon": round(result["dp_epsilon"], 3)} | {k: result[k] for k in DP_FIELDS}
    return row | {k: round_cost(v) for k, v in cost_values(result).items()}


def _kfold(ladder: LadderConfig, rungs: list[RunConfig], path: Path, plan: Plan) -> tuple[Path, list[dict]]:
    protocol = ladder.protocol
    folds = fold_plan(rungs, protocol.folds, protocol.repeats, name="protocol.folds", ladder=ladder)
    if ladder.tune is not None:  # a bad metric or search space: one InputError before any fold trains
        check_tuned(rungs, load_run_data(rungs[0], check=False))
    root = plan.root(path, ladder)
    write_plan(root / "folds.json", folds)
    rungs = run_stages(ladder, rungs, root, plan.console) if ladder.pretrain else rungs
    runs = len(rungs) * len(folds["splits"])
    plan.console.print(f"[bold]{ladder.name}[/]: {len(rungs)} rungs x {protocol.repeats} x {protocol.folds}-fold "
                       f"cross-validation on {folds['source']} ({folds['n_pool']} training examples)"
                       + plan.budget.per_run(runs))
    log = mlflow_logger(plan.mlflow, experiment=ladder.name) if plan.mlflow else None
    records = run_folds(rungs, [root / cfg.name for cfg in rungs], folds, console=plan.console, after_run=log,
                        resume=plan.resume, keep_going=True, budget=plan.budget, executor=plan.executor)
    rows = [failed_row(cfg, recs.error) if isinstance(recs, Failed) else ok_row(summarize(cfg.name, cfg.model.name, recs))
            for cfg, recs in zip(rungs, records)]
    if ladder.tune is not None:  # every fold run was tuned on its own inner validation split (verbs/cv.py)
        for cfg, row in zip(rungs, rows):
            row |= _fold_tuning(root / cfg.name, cfg)
    ok = [i for i, row in enumerate(rows) if is_ok(row)]
    if ok:
        _comparing(plan.console, compare_to_best, [rows[i] for i in ok], [records[i] for i in ok], *headline(rungs[0]))
    for i in ok:
        write_json(root / rungs[i].name / "cv.json", {"summary": rows[i], "folds": records[i]})
    return root, rows


def _fold_tuning(folder: Path, cfg: RunConfig) -> dict:
    """A k-fold rung's tuning: the trials its fold runs completed in all, and the budget each fold had."""
    tunings = [t for t in (tuning_of(d) for d in sorted(folder.glob("fold-*"))) if t is not None]
    return {"tune_trials": sum(t["trials"] for t in tunings) if tunings else None,
            "tune_budget": f"{cfg.tune.budget} per fold"}


DP_FIELDS = ("dp_delta", "dp_sampling", "dp_secure")
DEFAULT_LADDER = "digits.yaml"  # the embedded default: scikit-learn's bundled digits, no download


def default_ladder() -> Path:
    return Path(str(files("modelladder") / "recipes" / DEFAULT_LADDER))


def main(args) -> int:
    """`ladder run [CONFIG | PATH --label COLUMN] [--set ...] [--runs-dir] [--overwrite | --resume]
    [--time-limit 10m] [--mlflow URI] [--budget COST=LIMIT] [--executor serial|ray [--address ADDR] [--workers N]]`: the leaderboard, printed, then the best rung within
    the budget; exit status 1, naming the failed rungs, when any rung failed (the leaderboard and report are
    written all the same). A data PATH gets a ladder picked for it (verbs/auto.py)."""
    executor = executor_from(args)  # a bad --executor fails before anything is read
    overrides = list(args.overrides)
    if getattr(args, "time_limit", None) is not None:
        try:
            overrides.append(f"time_limit_s={parse_duration(args.time_limit)}")
        except ValueError as err:
            raise InputError(f"--time-limit {err}") from None
    ladder = ladder_for(args, default_ladder(), Console(stderr=True), overrides=overrides)
    budget = parse_budget(args.budget)  # a bad --budget fails before anything is trained
    rows = run_ladder(ladder, args.runs_dir, overwrite=args.overwrite, resume=getattr(args, "resume", False),
                      mlflow=args.mlflow, executor=executor)
    table = leaderboard_table(rows, f"{ladder.name} leaderboard")
    console = table_console(table)  # a leaderboard must not be cut when piped
    console.print(table)
    root = Path(args.runs_dir) / ladder.name
    ok = [row for row in rows if is_ok(row)]
    if budget and ok:  # after the leaderboard, and in budget.json for the report's top
        console.print(write_verdict(root, ok, budget)["text"], markup=False)
    console.print(f"written: {root / 'leaderboard.csv'} (and .json), {report_for(root)}")
    skipped = [row["rung"] for row in rows if row.get("status") == "skipped"]
    if skipped:  # the user's time limit, not a fault: exit 0 all the same
        print(f"note: {len(skipped)} of {len(rows)} rungs skipped, {TIME_UP}: {', '.join(skipped)}. Train them with a "
              "longer --time-limit and: ladder run ... --resume", file=sys.stderr)
    failed = [row for row in rows if row.get("status") == "failed"]
    if failed:
        print(f"error: {len(failed)} of {len(rows)} rungs failed: "
              + "; ".join(f"{row['rung']} ({row['error']})" for row in failed)
              + ". Fix them and finish the ladder with: ladder run ... --resume", file=sys.stderr)
        return 1
    return 0
