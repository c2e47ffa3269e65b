"""A ladder's pre-check: before the first rung trains, every rung (and pretrain stage) is built and checked against
the loaded data, and every problem of every rung is reported in one InputError, so that a bad setting on a late
rung is found before the early rungs have spent their time (and before a ladder folder is made or replaced).

What is checked per rung, each in the way a run checks it (verbs/build.py): the model reads this kind of data and
trains with this task (check_model_fits_data, with the task's and the model's own problems(cfg)); the task can be
made for the data; calibration has a validation split; the model is built for the data's input shape and number of
outputs (a CNN on a table, a missing hf model folder); a fine-tuned rung's pretrained run is read; a DP rung's
network is one opacus can train. Text tokenizers are not made here (they learn from the training texts, which can
take long): a problem there still shows at run time, as that rung's failed row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from modelladder.config import LadderConfig, RunConfig, stage_configs
from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError
from modelladder.evaluate.calibration import check_calibration
from modelladder.models.build import build_model, is_neural
from modelladder.verbs.build import check_model_fits_data, make_task


def check_rungs(rungs: Sequence[RunConfig], data: DataBundle, ladder: LadderConfig | None = None, *,
                check_val: bool = True) -> None:
    """One InputError naming every problem of every rung (and of the ladder's pretrain stages), each line
    prefixed with its rung: "rung 'cnn' (model cnn): ..." (not for a lone run, as `ladder cv` checks); nothing
    when all is well. `check_val` false: `data` is a k-fold pool whose folds get their own validation split."""
    stages = [stage.name for stage in ladder.pretrain] if ladder is not None else []
    label = ladder is not None or len(rungs) > 1
    problems = []
    for cfg in rungs:
        prefix = f"rung '{cfg.name or cfg.model.name}' (model {cfg.model.name}): " if label else ""
        problems += [prefix + p for p in rung_problems(cfg, data, stages, check_val=check_val)]
    if ladder is not None and ladder.pretrain:
        problems += stage_problems(ladder)
    if problems:
        raise InputError(problems)


def rung_problems(cfg: RunConfig, data: DataBundle, stages: Sequence[str] = (), *, check_val: bool = True) -> list[str]:
    """What stops `cfg` from training on `data`, one sentence each (InputErrors only: any other exception is a
    bug that surfaces when the rung runs, as its failed row)."""
    try:
        check_model_fits_data(cfg, data)
    except InputError as err:  # the model cannot read this data or train this task: building it would only repeat it
        return err.problems
    problems: list[str] = []
    checks = [lambda: make_task(cfg, data), lambda: _build(cfg, data, stages)]
    if check_val:
        checks.insert(1, lambda: check_calibration(cfg, data))
    for check in checks:
        problems += _problems_of(check)
    return problems


def stage_problems(ladder: LadderConfig) -> list[str]:
    """What `ladder pretrain` refuses in the ladder's pretrain stages (checked before any corpus is read)."""
    from modelladder.verbs.pretrain import check_pretrain_config

    problems = []
    for cfg in stage_configs(ladder):
        problems += [f"pretrain stage '{cfg.name}' (model {cfg.model.name}): {p}"
                     for p in _problems_of(lambda c=cfg: check_pretrain_config(c))]
    return problems


def _build(cfg: RunConfig, data: DataBundle, stages: Sequence[str]) -> None:
    """The model as build_training makes it, then dropped; a rung fine-tuned from a stage of this ladder (not yet
    pretrained) is built as a run of its own config."""
    if cfg.finetune is not None and cfg.finetune.from_ not in stages:
        from modelladder.verbs.transfer import Transfer

        cfg = Transfer(cfg).cfg  # reads the pretrained run's config: a missing or foreign folder is named here
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed, task=cfg.task.name)
    if cfg.train.privacy is not None and is_neural(model):
        from modelladder.train.privacy import check_private

        check_private(model, cfg.model.name)


def _problems_of(check: Callable[[], object]) -> list[str]:
    try:
        check()
    except InputError as err:
        return err.problems
    return []
