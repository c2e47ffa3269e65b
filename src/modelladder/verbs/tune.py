"""`ladder tune`, and a ladder's `tune:`: an Optuna study over the model's search space, then the best trial's
config retrained once into the run folder and scored like `ladder train`.

Every trial is a `train_run` into <run>/tune/trial-<n>/ on the TRAIN split, scored on the VALIDATION split only: the
data a trial receives has no test rows at all (under k-fold, a fold run's validation is an inner split of the
other folds, so the scored fold is never seen). A network's validation metric after each epoch is reported to the
pruner (median or successive halving), which may stop the trial there; a scikit-learn rung has no epochs and is
never pruned. A seq2seq trial is scored on its validation sources decoded greedily (WER by default, the task's
monitor; the retrained best run decodes the test split with eval.beam). A trial's weights and checkpoints are
deleted once it is scored: its folder keeps metrics and summaries only.

The study lives in tune.storage (default SQLite at <run>/tune/study.db, named after the run) and is loaded if it
exists, so a killed run resumes: finished trials (complete or pruned) count towards the budget and are not redone;
trials a dead process left RUNNING are marked FAIL and do not count. In the run folder's own database that is every
RUNNING trial (one process owns a run folder); in a shared RDB storage (several machines) a trial is failed once its
heartbeat is older than HEARTBEAT_GRACE_S (optuna's heartbeat, checked as every trial starts). A time budget
(tune.timeout_s) counts the duration of the finished trials too.

Files: tune/study.db, tune/trials.csv (number, state, value, duration_s, params), tune.json (what the result's
"tuning" holds) and the retrained run's usual files.
"""

from __future__ import annotations

import shutil
import warnings
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from modelladder.config import RunConfig, load_run_config
from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError, did_you_mean
from modelladder.models.space import apply_params, decode_params, space_for, to_optuna
from modelladder.runs import prepare, read_json, run_path, write_csv, write_json
from modelladder.verbs.build import check_model_fits_data, load_run_data, make_task
from modelladder.verbs.executor import Executor, Job, Outcome, executor_from, task_setup
from modelladder.verbs.resilience import one_line
from modelladder.verbs.train import train_run

HEARTBEAT_S = 30  # a running trial's heartbeat in an RDB storage
HEARTBEAT_GRACE_S = 120  # a RUNNING trial whose heartbeat is older than this belongs to a dead process
LOWER_IS_BETTER = ("loss", "log_loss", "ece", "rmse", "mae", "mse", "wer", "per")  # other metrics: higher is better
TRIAL_FILES = ("checkpoints", "model.safetensors", "model.skops")  # deleted once a trial is scored
FINISHED = ("COMPLETE", "PRUNED")  # the trials that count towards the budget


def tune_run(cfg: RunConfig, run_dir: Path, *, data: DataBundle | None = None, console: Console | None = None,
             executor: Executor | None = None) -> dict:
    """Tune `cfg` (cfg.tune: the budget) in `run_dir` (prepared by the caller; its tune/ folder is kept, so a
    study found there resumes), retrain the best trial's config into `run_dir` and return train_run's result with
    "tuning": trials (complete), pruned, budget, best_params, best_value, metric. With a parallel `executor`
    (--executor ray) the trials are Ray tasks, as many at once as it has slots (optimize_on)."""
    import optuna
    from optuna.trial import TrialState

    console = console or Console(stderr=True)
    data = data if data is not None else load_run_data(cfg)
    metric, direction, space = check_tune(cfg, data)
    folder = run_dir / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(cfg, run_dir, direction, parallel=executor is not None and executor.parallel)
    trials_left, seconds_left = remaining(cfg, study)
    if trials_left != 0 and (seconds_left is None or seconds_left > 0):
        done = len(finished(study))
        console.print(f"   tuning {cfg.model.name} on validation {metric} ({cfg.tune.budget}"
                      + (f"; {done} trials finished, kept" if done else "") + ")")
        trial_data = without_test(data)
        sample = to_optuna(space)  # list choices (hidden sizes) travel through optuna as JSON text

        def objective(trial):
            params = sample(trial)
            return score_trial(cfg, params, folder / f"trial-{trial.number}", trial_data, trial, metric)

        printer = _printer(console, metric, space)
        if executor is not None and executor.parallel:
            console.print(f"   trials as Ray tasks, {executor.slots(cfg)} at a time")
            optimize_on(executor, study, cfg, sample, folder, executor.share(trial_data), metric,
                        trials_left, seconds_left, printer)
        else:
            study.optimize(objective, n_trials=trials_left, timeout=seconds_left, callbacks=[printer])
    else:
        console.print(f"   tuning {cfg.model.name}: its budget ({cfg.tune.budget}) was spent by the "
                      f"{len(finished(study))} finished trials kept in {cfg.tune.storage or folder / 'study.db'}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"tuning {cfg.name or run_dir.name}: no trial finished unpruned ({cfg.tune.budget}); "
                         "raise tune.trials or tune.timeout_s, or set tune.pruner: none")
    write_trials(study, space, folder / "trials.csv")
    best_params = decode_params(space, study.best_params)
    tuning = {"trials": len(complete), "pruned": len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))),
              "budget": cfg.tune.budget, "best_params": best_params, "best_value": study.best_value,
              "metric": metric, "direction": direction, "study": study.study_name}
    write_json(run_dir / "tune.json", tuning)
    console.print(f"   best trial {study.best_trial.number}: validation {metric} {study.best_value:.4g}; "
                  "retrained once and scored")
    best = apply_params(cfg, best_params)
    result = train_run(best, run_dir, data=data)
    return result | {"tuning": tuning}


def optimize_on(executor: Executor, study, cfg: RunConfig, sample, folder: Path, data, metric: str,
                trials: int | None, seconds: float | None, printer) -> None:
    """study.optimize with the trials as tasks of `executor`, up to its slots at once: this process asks the study
    for each trial (sampling its parameters) and tells it the result, so the study's storage has one writer of
    trials; a task reports each epoch's validation metric to the same storage for the pruner. As study.optimize:
    no trial starts once `seconds` have passed, and a trial that raises is failed and stops the tuning.
    Several trials in flight: TPE's constant liar (set in open_study) keeps them from sampling the same region."""
    import time

    import optuna
    from optuna.trial import TrialState

    started, start = 0, time.monotonic()

    def next_job() -> Job | None:
        nonlocal started
        if (trials is not None and started >= trials) or (seconds is not None and time.monotonic() - start >= seconds):
            return None
        trial = study.ask()
        started += 1
        return Job(trial_task, (cfg, sample(trial), folder / f"trial-{trial.number}", data, trial, metric), cfg)

    # a shared storage fails a RUNNING trial whose heartbeat is stale, and only study.optimize beats on its own:
    # this process beats for the trials in flight (optuna has no public accessor for a study's storage or a
    # trial's id, hence the two private attributes)
    def heartbeat(jobs: list[Job]) -> None:
        for job in jobs:
            study._storage.record_heartbeat(job.args[4]._trial_id)

    beats = isinstance(study._storage, optuna.storages.RDBStorage) and study._storage.get_heartbeat_interval()
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": it is, just above
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        results = executor.stream(next_job, executor.slots(cfg), tick=HEARTBEAT_S, on_tick=heartbeat if beats else None)
        with closing(results):  # closed: the tasks in flight are cancelled
            for job, outcome in results:
                trial = job.args[4]
                if outcome.error is not None:
                    study.tell(trial, state=TrialState.FAIL)
                    raise RuntimeError(f"tuning trial {trial.number} failed: {outcome.error}")
                if outcome.result.get("pruned"):
                    frozen = study.tell(trial, state=TrialState.PRUNED)
                else:
                    frozen = study.tell(trial, outcome.result["value"])
                printer(study, frozen)


def check_tune(cfg: RunConfig, data: DataBundle) -> tuple[str, str, dict]:
    """(metric, "minimize" | "maximize", search space) of a run to tune, or one InputError naming the field:
    before any folder is made."""
    if cfg.tune is None:
        raise InputError("tuning needs a budget: tune.trials or tune.timeout_s (ladder tune: --trials N or "
                         "--timeout S)")
    check_model_fits_data(cfg, data)
    task = make_task(cfg, data)
    if task.evaluate_model is not None and not task.tuned_metrics():
        raise InputError(f"task.name '{cfg.task.name}' scores the model itself (generated samples), not with "
                         "validation metrics: tuning needs a task scored on validation metrics (classification, "
                         "regression, seq2seq)")
    monitor, mode = task.monitor
    metric = cfg.tune.metric or monitor
    reported = task.tuned_metrics() if task.evaluate_model is not None else reported_metrics(task, data)
    if metric not in reported:
        raise InputError(f"tune.metric must be a validation metric task.name '{cfg.task.name}' reports "
                         f"({', '.join(reported)}), got '{metric}'" + did_you_mean(metric, reported))
    lower = mode == "min" if metric == monitor else metric in LOWER_IS_BETTER
    if cfg.tune.storage is not None:
        open_storage(cfg.tune.storage)
    return metric, "minimize" if lower else "maximize", space_for(cfg, cfg.tune.space)


def check_tuned(cfgs: list[RunConfig], data: DataBundle) -> None:
    """check_tune for every rung of a ladder: all their problems in one InputError, naming the rung."""
    problems = []
    for i, cfg in enumerate(cfgs):
        try:
            check_tune(cfg, data)
        except InputError as err:
            problems += [f"rungs[{i}] ({cfg.name}): {p}" for p in err.problems]
    if problems:
        raise InputError(problems)


def reported_metrics(task, data: DataBundle) -> list[str]:
    """The metric names the task reports, from a few validation (else training) labels and uninformative
    scores."""
    import numpy as np

    y = data.y_val[:20] if len(data.y_val) else data.y_train[:20]
    scores = np.full((len(y), len(data.classes)), 1 / len(data.classes)) if data.classes \
        else np.zeros(len(y), dtype=np.float32)
    return list(task.metrics(y, scores))


def open_storage(url: str):
    """An Optuna RDB storage with a heartbeat, or an InputError saying why optuna cannot open `url`."""
    import optuna

    try:
        with warnings.catch_warnings():  # the heartbeat is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S)
    except Exception as err:  # noqa: BLE001 - a bad URL, a missing driver, a server that does not answer
        raise InputError(f"tune.storage {url!r}: optuna cannot open it ({str(err).splitlines()[0]}); give an "
                         "RDB URL such as sqlite:///study.db or postgresql://user@host/db") from None


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'tune' / 'study.db').resolve()}"


def open_study(cfg: RunConfig, run_dir: Path, direction: str, *, parallel: bool = False):
    """The run's study, created or loaded; in the run folder's own database every RUNNING trial is a dead
    process's and is failed here (a shared storage fails them by heartbeat as trials start)."""
    import optuna
    from optuna.trial import TrialState

    own = cfg.tune.storage is None
    storage = open_storage(default_storage(run_dir) if own else cfg.tune.storage)
    name = cfg.name or run_dir.name
    probe = optuna.load_study(study_name=name, storage=storage) if name in _names(storage) else None
    # a resumed study's sampler is seeded past the trials it holds: a random sampler does not repeat them
    seed = cfg.seed + (len(probe.trials) if probe is not None else 0)
    sampler = optuna.samplers.RandomSampler(seed=seed) if cfg.tune.sampler == "random" \
        else optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    pruner = {"median": optuna.pruners.MedianPruner, "halving": optuna.pruners.SuccessiveHalvingPruner,
              "none": optuna.pruners.NopPruner}[cfg.tune.pruner]()
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner,
                                direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise InputError(f"tune.storage holds a study '{name}' that is to {study.direction.name.lower()}, but "
                         f"this run's metric is to {direction}: give another storage or --overwrite")
    if own:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL)
    else:
        optuna.storages.fail_stale_trials(study)
    return study


def _names(storage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def finished(study) -> list:
    """The trials that count towards the budget: complete or pruned (failed ones do not)."""
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED]


def remaining(cfg: RunConfig, study) -> tuple[int | None, float | None]:
    """(trials, seconds) left of cfg.tune's budget after the study's finished trials; None where unbounded."""
    done = finished(study)
    trials = None if cfg.tune.trials is None else max(cfg.tune.trials - len(done), 0)
    if cfg.tune.timeout_s is None:
        return trials, None
    spent = sum(t.duration.total_seconds() for t in done if t.duration is not None)
    return trials, cfg.tune.timeout_s - spent


def trial_config(cfg: RunConfig, params: dict) -> RunConfig:
    """`cfg` with the trial's params, scored on the validation split (a seq2seq run's decoded greedily: beam 1),
    without calibration, conformal sets, progress bars or loggers."""
    tried = apply_params(cfg, params)
    evaluation = tried.eval.model_copy(update={"split": "val", "calibrate": None, "conformal": None, "beam": 1})
    train = tried.train.model_copy(update={"progress": False, "loggers": []})
    return tried.model_copy(update={"eval": evaluation, "train": train, "tune": None})


def without_test(data: DataBundle) -> DataBundle:
    """The bundle with its test split emptied: what trials receive."""
    return replace(data, X_test=data.X_test[:0], y_test=data.y_test[:0])


def score_trial(cfg: RunConfig, params: dict, trial_dir: Path, data: DataBundle, trial, metric: str) -> float:
    """Train one trial into `trial_dir`, each epoch's validation metric reported to the pruner; its validation
    `metric`. Its weights and checkpoints are deleted afterwards, pruned or not."""
    prepare(trial_dir, overwrite=True)
    try:
        result = train_run(trial_config(cfg, params), trial_dir, data=data, callbacks=[PruneCallback(trial, metric)])
    finally:
        for name in TRIAL_FILES:
            path = trial_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    if result["split"] != "val":  # trial_config says val: never anything else
        raise RuntimeError(f"trial scored on split {result['split']!r}, not 'val'")
    return float(result["metrics"][metric])


def trial_task(cfg: RunConfig, params: dict, trial_dir: Path, data: Any, trial: Any, metric: str) -> Outcome:
    """One `ladder tune` trial (verbs/tune.py score_trial) in a task: result {"value"} or {"pruned": True}.
    `trial` is the driver's optuna trial (its storage reconnects in the worker), to which each epoch's validation
    metric is reported for the pruner; a retried task trains the trial again from the start."""
    import optuna

    task_setup(cfg)
    try:
        return Outcome(result={"value": score_trial(cfg, params, trial_dir, data, trial, metric)})
    except optuna.TrialPruned:
        return Outcome(result={"pruned": True})
    except Exception as err:  # noqa: BLE001 - the driver fails the trial and stops, as study.optimize does
        return Outcome(error=one_line(err))


class PruneCallback:
    """A training-loop callback: each epoch's validation metric to the trial, optuna.TrialPruned when the pruner
    says the trial is worse than the others at that epoch."""

    def __init__(self, trial, metric: str):
        self.trial, self.key = trial, f"val_{metric}"

    def on_epoch_end(self, record: dict) -> None:
        import optuna

        if self.key not in record:  # no validation split: nothing to prune on
            return
        self.trial.report(float(record[self.key]), step=int(record["epoch"]))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}")


def _printer(console: Console, metric: str, space: dict):
    def show(study, trial) -> None:
        state = trial.state.name.lower()
        value = f"{metric} {trial.value:.4g}" if trial.value is not None else state
        params = ", ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in decode_params(space, trial.params).items())
        console.print(f"     trial {trial.number}: {value}" + (f" ({state})" if state != "complete" else "")
                      + f"  ({params})", markup=False, highlight=False)
    return show


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def write_trials(study, space: dict, path: Path) -> None:
    """trials.csv: number, state, value, duration_s and one column per parameter."""
    import pandas as pd

    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             "duration_s": None if t.duration is None else round(t.duration.total_seconds(), 3),
             **{f"param_{k}": v for k, v in decode_params(space, t.params).items()}} for t in study.get_trials(deepcopy=False)]
    write_csv(path, pd.DataFrame(rows), index=False)


def tuning_of(run_dir: Path) -> dict | None:
    """A tuned run's tune.json (what its result's "tuning" held), None for a run that was not tuned."""
    path = run_dir / "tune.json"
    return read_json(path) if path.is_file() else None


def prepare_keeping_study(path: Path) -> Path:
    """`path` emptied for a run, except its tune/ folder (the study a resumed tuning run continues)."""
    if not path.is_dir():
        return prepare(path)
    for child in path.iterdir():
        if child.name == "tune":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    return path


def main(args) -> int:
    """`ladder tune CONFIG [--set ...] [--trials N] [--timeout S] [--name] [--runs-dir] [--overwrite]
    [--executor serial|ray [--address ADDR] [--workers N]]`: rerun on an existing tuning run (without --overwrite)
    to resume its study; with --executor ray the trials are Ray tasks (the retrain of the best runs here)."""
    from modelladder.verbs.report import print_result, report_for

    overrides = list(args.overrides)
    if args.trials is not None:
        overrides.append(f"tune.trials={args.trials}")
    if args.timeout is not None:
        overrides.append(f"tune.timeout_s={args.timeout}")
    executor = executor_from(args)  # a bad --executor fails before anything is read
    cfg = load_run_config(args.config, overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    resume = path.exists() and not args.overwrite
    if resume and not (path / "tune").is_dir():
        raise InputError(f"run folder {path} already exists and is not a tuning run; pass --overwrite to replace "
                         "it, or --name another run")
    data = load_run_data(cfg)
    check_tune(cfg, data)  # before a folder is made or replaced
    with executor:
        executor.start()  # an unreachable --address too
        run_dir = prepare_keeping_study(path) if resume else prepare(path, overwrite=args.overwrite)
        result = tune_run(cfg, run_dir, data=data, executor=executor)
    print_result(run_dir, result)
    print(f"written: {run_dir / 'tune' / 'trials.csv'}, {run_dir / 'tune.json'}, {report_for(run_dir)}")
    return 0
