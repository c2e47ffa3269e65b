"""What runs in an `--executor ray` task (verbs/executor.py): a holdout rung, or one (config, fold) run of a k-fold
ladder or `ladder cv`, each trained (or tuned) into its own run folder and returned as an Outcome; `ladder tune`'s
trials are verbs/tune.py trial_task. A task catches what training raises: the rung's failed row, never a retry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelladder.config import RunConfig
from modelladder.runs import prepare
from modelladder.verbs.executor import Outcome, task_setup
from modelladder.verbs.resilience import one_line, record_failure
from modelladder.verbs.tune import prepare_keeping_study, tune_run


def holdout_task(cfg: RunConfig, run_dir: Path, data: Any, resume: bool, audit: Any) -> Outcome:
    """A holdout rung trained into `run_dir` (made afresh, unless `resume` continues its checkpoint) and audited."""
    from modelladder.verbs.audit import audit_rung

    tuned = cfg.tune is not None
    if tuned:  # a retried task continues the rung's study: its finished trials are not redone
        prepare_keeping_study(run_dir)
    elif not resume:
        prepare(run_dir, overwrite=True)  # a retried task starts from an empty folder
    task_setup(cfg)
    try:
        result = tune_run(cfg, run_dir, data=data) if tuned else _train(cfg, run_dir, data=data, resume=resume)
        extra = audit_rung(run_dir, audit, data) if audit is not None else {}
    except Exception as err:  # noqa: BLE001 - the rung's failed row, not a retry
        record_failure(run_dir, err)
        return Outcome(error=one_line(err))
    return Outcome(result=result, extra=extra)


def _train(cfg: RunConfig, run_dir: Path, **kwargs) -> dict:
    from modelladder.verbs.train import train_run

    return train_run(cfg, run_dir, **kwargs)


_FOLD_DATA: dict[str, Any] = {}  # a worker's last fold data, for its next run of the same fold


def fold_task(cfg: RunConfig, run_dir: Path, data_cfg: RunConfig, expected: dict) -> Outcome:
    """One (config, fold) run: the fold's data loaded from `data_cfg` (as run_folds loads it for every config),
    checked against the fold plan's labels (`expected`: split -> labels), trained into a fresh `run_dir`."""
    import numpy as np

    from modelladder.verbs.build import load_run_data

    tuned = cfg.tune is not None
    if tuned:  # a retried task continues the fold's study
        prepare_keeping_study(run_dir)
    else:
        prepare(run_dir, overwrite=True)  # a retried task starts from an empty folder
    task_setup(cfg)
    try:
        key = data_cfg.model_dump_json()
        if key not in _FOLD_DATA:
            _FOLD_DATA.clear()
            _FOLD_DATA[key] = load_run_data(data_cfg)
        data = _FOLD_DATA[key]
        for split, labels in expected.items():
            if not np.array_equal(data.split(split)[1], labels):
                raise RuntimeError(f"the loader's {split} split is not the one in the fold plan")
        result = tune_run(cfg, run_dir, data=data) if tuned else _train(cfg, run_dir, data=data)
    except Exception as err:  # noqa: BLE001 - the fold's failure, not a retry
        record_failure(run_dir, err)
        return Outcome(error=one_line(err))
    return Outcome(result=result)
