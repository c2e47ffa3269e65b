"""`ladder cv` and a k-fold ladder's folds: each model trained on every (repeat, fold), summarised as mean, std and
a corrected resampled t interval over the folds (a ladder then compares the rungs with evaluate/significance.py).

Fold k of repeat r is the TEST split of run fold-r-k (data.split.folds/fold/repeat): the run is scored
on it (eval_test.json) and on nothing else. Its validation split, on which early stopping, the best
checkpoint and calibration are chosen, is an inner split of the other folds (data.split.val of them,
seeded and stratified: splits.inner_val), and preprocessing is fitted on what is left. The folds come
from the seed alone, so every model sees the same ones; folds.json records both index sets into the
training pool (the training split after data.limit), and each fold's data is loaded once and shared
by every model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelladder.config import (
    LadderConfig,
    RunConfig,
    deep_merge,
    load_run_config,
    to_yaml,
    validate_run,
)
from modelladder.errors import InputError
from modelladder.evaluate.calibration import leaderboard_fields
from modelladder.evaluate.cost import COST_COLUMNS
from modelladder.evaluate.significance import corrected_t_interval
from modelladder.registry import TASKS, lookup
from modelladder.runs import prepare, run_path, write_json, write_text
from modelladder.verbs.build import load_run_data
from modelladder.verbs.executor import Executor, Job, executor_from, task_seconds
from modelladder.verbs.jobs import fold_task
from modelladder.verbs.precheck import check_rungs
from modelladder.verbs.resilience import TIME_UP, TimeBudget, finished_result, limited, one_line, record_failure
from modelladder.verbs.train import train_run
from modelladder.verbs.tune import prepare_keeping_study, tune_run


def fold_name(repeat: int, fold: int) -> str:
    return f"fold-{repeat}-{fold}"


def fold_config(cfg: RunConfig, folds: int, fold: int, repeat: int) -> RunConfig:
    """`cfg` trained on the other folds and scored on fold `fold` of repeat `repeat`, its test split."""
    split = {"folds": folds, "fold": fold, "repeat": repeat}
    return validate_run(deep_merge(cfg.model_dump(mode="json"), {"data": {"split": split}, "eval": {"split": "test"}}))


def fold_plan(cfgs: list[RunConfig], folds: int, repeats: int, *, name: str = "folds",
              ladder: LadderConfig | None = None) -> dict:
    """The scored (test) and inner validation indices of every (repeat, fold) into the training pool, for
    configs that share their data section, seed and task (a ladder's rungs, of `ladder`); checks every model
    against the data first (verbs/precheck.py).

    Loads the pool once (data.split.val 0, no folds) and splits its labels as splits.train_val
    does. `name` is the setting that chose `folds`, for error messages.
    """
    from modelladder.data.splits import inner_val, kfold

    for setting, value, low in ((name, folds, 2), ("repeats", repeats, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{setting} must be an int >= {low}, got {value!r}")
    cfg = cfgs[0]
    no_folds = {"data": {"split": {"val": 0, "folds": None, "fold": None, "repeat": 0}}}
    pool = load_run_data(validate_run(deep_merge(cfg.model_dump(mode="json"), no_folds)), check=False)
    # every problem of every model at once, before any fold trains; the pool has no validation split, each fold will
    check_rungs(cfgs, pool, ladder, check_val=cfg.data.split.val == 0)
    stratify = cfg.task.name == "classification" and cfg.data.split.stratify
    splits = kfold(pool.y_train, folds, seed=cfg.seed, stratify=stratify, repeats=repeats, name=name)
    plan = []
    for i, (outer, test) in enumerate(splits):
        _, val = inner_val(pool.y_train, outer, cfg.data.split.val, seed=cfg.seed, stratify=stratify)
        plan.append((i // folds, i % folds, np.sort(test), val))
    return {
        "folds": folds, "repeats": repeats, "seed": cfg.seed, "stratified": stratify,
        "val_fraction": cfg.data.split.val, "n_pool": len(pool.y_train), "source": pool.source,
        "y_pool": pool.y_train, "splits": plan,
    }


def write_plan(path: Path, plan: dict) -> None:
    """folds.json: the plan's settings and, per fold-r-k, its scored (test) and inner validation indices
    into the pool."""
    settings = {k: v for k, v in plan.items() if k not in ("splits", "y_pool")}
    test = {fold_name(repeat, fold): idx.tolist() for repeat, fold, idx, _ in plan["splits"]}
    val = {fold_name(repeat, fold): idx.tolist() for repeat, fold, _, idx in plan["splits"]}
    write_json(path, settings | {"test_indices": test, "val_indices": val})


@dataclass
class Failed:
    """A config that failed on some fold (run_folds with keep_going): its one-line error; its later folds skipped."""

    error: str


def run_folds(cfgs: list[RunConfig], folders: list[Path], plan: dict, *, console,
              after_run: Callable[[RunConfig, Path, str | None], None] | None = None, resume: bool = False,
              keep_going: bool = False, budget: TimeBudget | None = None,
              executor: Executor | None = None) -> list[list[dict] | Failed]:
    """Train every config on every fold into folders[i]/fold-r-k; per config, one record per fold.
    `after_run(cfg, run_dir, fold_name)` is called after each run (e.g. to log it to MLflow).

    A ladder's folds: with `resume`, a fold folder that holds its result is read back, not trained; with
    `keep_going`, a config whose run raises (or finds the `budget` spent) is Failed and its other folds skipped;
    `budget` gives each run its train.max_seconds as it starts (verbs/resilience.py). With a parallel `executor`
    (verbs/executor.py) every (config, fold) is a task: run_folds_tasks."""
    if executor is not None and executor.parallel:
        return run_folds_tasks(cfgs, folders, plan, executor, console=console, after_run=after_run, resume=resume,
                               keep_going=keep_going, budget=budget)
    results: list[list[dict] | Failed] = [[] for _ in cfgs]
    kept = [[finished_result(folder / fold_name(r, k), "test") if resume else None
             for r, k, _, _ in plan["splits"]] for folder in folders]
    for j, (repeat, fold, test, val) in enumerate(plan["splits"]):
        name = fold_name(repeat, fold)
        todo = [i for i, out in enumerate(results) if not isinstance(out, Failed) and kept[i][j] is None]
        data = load_run_data(fold_config(cfgs[0], plan["folds"], fold, repeat)) if todo else None
        for split, idx in (("test", test), ("val", val)) if todo else ():
            if not np.array_equal(data.split(split)[1], plan["y_pool"][idx]):
                raise RuntimeError(f"{name}: the loader's {split} split is not the one in the fold plan")
        for i, (cfg, folder) in enumerate(zip(cfgs, folders)):
            if isinstance(results[i], Failed):
                continue
            if kept[i][j] is not None:
                console.print(f"-> {cfg.name or cfg.model.name} {name}: finished, kept")
                results[i].append(fold_record(repeat, fold, kept[i][j]))
                continue
            run_cfg = fold_config(cfg, plan["folds"], fold, repeat)
            if budget is not None:
                seconds = budget.share(_runs_left(kept, results, j, i))
                if seconds is not None and seconds <= 0:
                    results[i] = Failed(TIME_UP)
                    console.print(f"-> {cfg.name or cfg.model.name} {name}: [yellow]skipped[/] ({TIME_UP})")
                    continue
                run_cfg = limited(run_cfg, seconds) if seconds is not None else run_cfg
            limit = f", at most {run_cfg.train.max_seconds:.3g} s of training" if budget and budget.seconds else ""
            console.print(f"-> {cfg.name or cfg.model.name} {name} "
                          f"({len(data.y_train)} train / {len(val)} val / {len(test)} scored{limit})")
            if resume:  # an unfinished fold trains again; a tuned one continues its study (finished trials kept)
                run_dir = prepare_keeping_study(folder / name) if run_cfg.tune is not None \
                    else prepare(folder / name, overwrite=True)
            else:
                run_dir = prepare(folder / name)
            started = time.perf_counter()
            try:
                # tuned (a ladder's tune:): trials scored on this fold's inner validation split, never on the fold
                result = (tune_run if run_cfg.tune is not None else train_run)(run_cfg, run_dir, data=data)
                if after_run is not None:
                    after_run(cfg, run_dir, name)
                if budget is not None:
                    budget.ran(time.perf_counter() - started, result.get("train_seconds"))
            except Exception as err:
                if not keep_going:
                    raise
                record_failure(run_dir, err)
                results[i] = Failed(f"{name}: {one_line(err)}")
                console.print(f"   [red]failed[/]: {results[i].error}")
                continue
            results[i].append(fold_record(repeat, fold, result))
    return results


def run_folds_tasks(cfgs: list[RunConfig], folders: list[Path], plan: dict, executor: Executor, *, console,
                    after_run: Callable[[RunConfig, Path, str | None], None] | None = None, resume: bool = False,
                    keep_going: bool = False, budget: TimeBudget | None = None) -> list[list[dict] | Failed]:
    """run_folds with every (config, fold) not kept a Ray task (verbs/executor.py fold_task) that loads its fold's
    data as run_folds does (from the first config) and trains into its own fold folder; the results are taken back
    in run_folds' order, so the records (and a config's Failed: its first failed fold in that order) are the serial
    ones. The time budget is shared up front (executor.task_seconds); `after_run` runs here, in that order."""
    splits = plan["splits"]
    kept = [[finished_result(folder / fold_name(r, k), "test") if resume else None
             for r, k, _, _ in splits] for folder in folders]
    todo = [(j, i) for j in range(len(splits)) for i in range(len(cfgs)) if kept[i][j] is None]
    left = budget.share(1) if budget is not None else None
    seconds = task_seconds(left, len(todo), executor.slots(cfgs[0])) if todo else None
    results: list[list[dict] | Failed] = [[] for _ in cfgs]
    if seconds is not None and seconds <= 0:  # no time left for any run (pretraining took it all)
        for i in {i for _, i in todo}:
            results[i] = Failed(TIME_UP)
            console.print(f"-> {cfgs[i].name or cfgs[i].model.name}: [yellow]skipped[/] ({TIME_UP})")
        todo = []
    jobs = []
    for j, i in todo:
        repeat, fold, test, val = splits[j]
        run_cfg = fold_config(cfgs[i], plan["folds"], fold, repeat)
        run_cfg = limited(run_cfg, seconds) if seconds is not None else run_cfg
        expected = {"test": plan["y_pool"][test], "val": plan["y_pool"][val]}
        data_cfg = fold_config(cfgs[0], plan["folds"], fold, repeat)
        run_dir = (folders[i] / fold_name(repeat, fold)).resolve()  # a worker's cwd may not be this one's
        jobs.append(Job(fold_task, (run_cfg, run_dir, data_cfg, expected), run_cfg))
    slots = executor.slots(cfgs[0]) if todo else 0
    limit = f", at most {seconds:.3g} s of training each" if seconds is not None else ""
    console.print(f"-> {len(jobs)} runs as Ray tasks, {slots} at a time{limit}"
                  + (f"; {sum(map(len, kept)) - len(jobs)} finished, kept" if resume else ""))
    outcomes = dict(zip(todo, executor.run(jobs)))
    for j, (repeat, fold, _, _) in enumerate(splits):
        name = fold_name(repeat, fold)
        for i, (cfg, folder) in enumerate(zip(cfgs, folders)):
            if isinstance(results[i], Failed):
                continue
            if kept[i][j] is not None:
                results[i].append(fold_record(repeat, fold, kept[i][j]))
                continue
            out = outcomes[(j, i)]
            try:
                if out.error is not None:
                    raise RuntimeError(out.error)
                if after_run is not None:
                    after_run(cfg, folder / name, name)
            except Exception as err:  # noqa: BLE001 - keep_going: the config's failed row, as run_folds
                error = str(err) if out.error is not None else one_line(err)
                if not keep_going:
                    raise RuntimeError(f"{cfg.name or cfg.model.name} {name}: {error}") from None
                results[i] = Failed(f"{name}: {error}")
                console.print(f"-> {cfg.name or cfg.model.name} {name}: [red]failed[/]: {error}")
                continue
            console.print(f"-> {cfg.name or cfg.model.name} {name}: done")
            results[i].append(fold_record(repeat, fold, out.result))
    return results


def _runs_left(kept: list[list[dict | None]], results: list, fold: int, config: int) -> int:
    """Runs still to train from (fold, config) on, in run_folds' order, of the configs that have not failed."""
    alive = [n for n in range(len(kept)) if not isinstance(results[n], Failed)]
    later = sum(kept[n][j] is None for n in alive for j in range(fold + 1, len(kept[n])))
    return later + sum(kept[n][fold] is None for n in alive if n >= config)


def fold_record(repeat: int, fold: int, result: dict) -> dict:
    """What the summary needs of one fold's train_run result: sizes, metrics (on the scored fold) and costs."""
    calibration = {k.removeprefix(f"{result['split']}_"): v for k, v in leaderboard_fields(result).items()}
    return {"repeat": repeat, "fold": fold, "n_train": result["train_examples"], "n_test": result["n"],
            "family": result["family"], "metrics": result["metrics"], "calibration": calibration} | cost_values(result)


def cost_values(result: dict) -> dict:
    """The COST_COLUMNS of a train_run result (latency sits in its own dict); None where it has none."""
    flat = result | result.get("latency", {})
    return {k: flat.get(k) for k in COST_COLUMNS}


def summarize(name: str, model: str, records: list[dict]) -> dict:
    """One leaderboard row: cv_<metric>_mean / _std (sample std) / _low / _high over the folds, the last two
    the 95% corrected resampled t interval (significance.corrected_t_interval; the n_test / n_train term
    widens it for the overlap of the training folds), and costs averaged (None when any fold has none, as
    for a scikit-learn rung's FLOPs)."""
    row = {"rung": name, "model": model, "family": records[0]["family"], "folds": len(records)}
    n_train = float(np.mean([r["n_train"] for r in records]))
    n_test = float(np.mean([r["n_test"] for r in records]))
    for metric in records[0]["metrics"]:
        values = np.array([r["metrics"][metric] for r in records], dtype=np.float64)
        low, high = corrected_t_interval(values, n_train=n_train, n_test=n_test, metric=metric)
        row |= {f"cv_{metric}_mean": round(float(values.mean()), 4), f"cv_{metric}_std": round(float(values.std(ddof=1)), 4),
                f"cv_{metric}_low": round(low, 4), f"cv_{metric}_high": round(high, 4)}
    row |= _calibration_summary([r.get("calibration", {}) for r in records])
    return row | {key: mean_cost([r[key] for r in records]) for key in COST_COLUMNS}


def _calibration_summary(folds: list[dict]) -> dict:
    """The folds' calibration columns (evaluate/calibration.py leaderboard_fields): the method and conformal
    alpha as they are, the rest (ECE and log-loss before calibration, coverage, set size) as cv_<name>_mean."""
    if not folds or not folds[0]:
        return {}
    out = {}
    for key, value in folds[0].items():
        if value is None or isinstance(value, str) or key == "conformal_alpha":
            out[key] = value
        else:
            out[f"cv_{key}_mean"] = round(float(np.mean([f[key] for f in folds])), 4)
    return out


def mean_cost(values: list) -> float | str | None:
    """The mean over folds; a whole number for counts (params, FLOPs); a text (co2_country) when every fold has
    the same; None if any fold has none."""
    if any(v is None for v in values):
        return None
    if any(isinstance(v, str) for v in values):
        return values[0] if len(set(values)) == 1 else None
    mean = float(np.mean(values))
    return round(mean) if all(isinstance(v, int) for v in values) else round_cost(mean)


def round_cost(value: float | None) -> float | None:
    """4 significant digits for a measured float; counts and None as they are."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def headline(cfg: RunConfig) -> tuple[str, str]:
    """The metric rungs are compared on and its better direction: the task's monitor."""
    return lookup(TASKS, "task.name", cfg.task.name).monitor


def cross_validate(cfg: RunConfig, folds: int, repeats: int, runs_dir: str | Path, *, name: str | None = None,
                   overwrite: bool = False, console=None, mlflow: str | None = None,
                   executor: Executor | None = None) -> dict:
    """`ladder cv`: train `cfg` on every fold into <runs_dir>/<name>/fold-r-k/ and return its summary
    row (cv_<metric>_mean / _std / _low / _high, mean costs); also written there as cv.json with every fold.
    `executor` (verbs/executor.py, default serial): with Ray, each fold is a task."""
    from rich.console import Console

    console = console or Console(stderr=True)
    name = name or cfg.name
    if name is None:
        raise InputError("cross-validation needs a run name: set name in the config or pass --name")
    path = run_path(runs_dir, name)
    if path.exists() and not overwrite:
        prepare(path)  # refuses, before the data is loaded
    plan = fold_plan([cfg], folds, repeats)
    with executor or Executor() as ex:
        ex.start()  # before the folder is made: an unreachable --address leaves nothing behind
        root = prepare(path, overwrite=overwrite)
        write_text(root / "config.yaml", to_yaml(cfg))
        write_plan(root / "folds.json", plan)
        console.print(f"[bold]{name}[/]: {repeats} x {folds}-fold cross-validation on {plan['source']} "
                      f"({plan['n_pool']} training examples)")
        log = mlflow_logger(mlflow, experiment=name) if mlflow else None
        [records] = run_folds([cfg], [root], plan, console=console, after_run=log, executor=ex)
    row = summarize(name, cfg.model.name, records)
    write_json(root / "cv.json", {"summary": row, "folds": records})
    return row


def mlflow_logger(uri: str, *, experiment: str) -> Callable[[RunConfig, Path, str | None], None]:
    """An after_run for run_folds (and the holdout ladder, with fold None): each run logged to MLflow
    in `experiment`, named and tagged with its rung and fold."""
    from modelladder.train.loggers import log_run_to_mlflow

    def log(cfg: RunConfig, run_dir: Path, fold: str | None) -> None:
        rung = cfg.name or cfg.model.name
        tags = {"modelladder.rung": rung} | ({"modelladder.fold": fold} if fold else {})
        log_run_to_mlflow(run_dir, uri, experiment=experiment, run_name=f"{rung}/{fold}" if fold else rung,
                          tags=tags)

    return log


def main(args) -> int:
    """`ladder cv CONFIG [--folds K] [--repeats R] [--name] [--runs-dir] [--overwrite] [--mlflow URI]
    [--executor serial|ray [--address ADDR] [--workers N]]`."""

    from modelladder.report.leaderboard import leaderboard_table, table_console
    from modelladder.verbs.report import report_for

    executor = executor_from(args)  # a bad --executor fails before anything is read
    cfg = load_run_config(args.config, args.overrides)
    name = args.name or cfg.name or Path(args.config).stem
    row = cross_validate(cfg, args.folds, args.repeats, args.runs_dir, name=name, overwrite=args.overwrite,
                         mlflow=args.mlflow, executor=executor)
    table = leaderboard_table([row], f"{name}: {args.folds}-fold cross-validation")
    console = table_console(table)
    console.print(table)
    console.print(f"written: {Path(args.runs_dir) / name}, {report_for(Path(args.runs_dir) / name)}")
    return 0
