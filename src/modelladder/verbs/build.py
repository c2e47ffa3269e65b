"""What every verb that trains builds from a run config: its data, its task, its model and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modelladder.config import RunConfig
from modelladder.data.bundle import DataBundle
from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.evaluate.calibration import check_calibration
from modelladder.models.build import build_model, is_neural
from modelladder.registry import MODELS, PRETRAIN_TASKS, TASKS, load_object, lookup
from modelladder.verbs.transfer import Transfer

TEXT_KINDS = ("text", "seq2seq")  # data whose inputs are strings, read by input_kind "text" models


def make_task(cfg: RunConfig, data: DataBundle):
    return lookup(TASKS, "task.name", cfg.task.name).from_config(cfg, data)


def load_run_data(cfg: RunConfig, *, check: bool = True) -> DataBundle:
    """cfg's data, checked against its model and task (unless `check` is false: a ladder checks every rung at once,
    verbs/precheck.py)."""
    from modelladder.data.load import load_data

    if cfg.task.name in PRETRAIN_TASKS:
        raise InputError(f"task.name '{cfg.task.name}' pretrains a language model on a corpus: run it with "
                         "ladder pretrain (ladder train and ladder run train on labelled data)")
    labels = lookup(TASKS, "task.name", cfg.task.name).data_task or cfg.task.name
    data = load_data(cfg.data, seed=cfg.seed, task=labels)
    if check:
        check_model_fits_data(cfg, data)
    return data


def check_model_fits_data(cfg: RunConfig, data: DataBundle) -> None:
    """The model reads this data and trains with this task, and both agree to the config: say so before anything is
    trained (models/base.py and tasks/base.py declare what each needs)."""
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    task_cls = lookup(TASKS, "task.name", cfg.task.name)
    if (model_cls.input_kind == "text") != (data.kind in TEXT_KINDS):
        needs = "text data" if model_cls.input_kind == "text" else "image or tabular data"
        raise InputError(f"model.name '{cfg.model.name}' needs {needs}, but data.dataset "
                         f"'{cfg.data.dataset}' is {data.kind} data")
    if cfg.task.name not in model_cls.tasks:
        trainers = trained_by(cfg.task.name)  # named when they are few: a task only some families train
        hint = f" (task.name '{cfg.task.name}' trains model.name {' or '.join(map(repr, trainers))})" \
            if 0 < len(trainers) <= 3 else ""
        raise InputError(f"model.name '{cfg.model.name}' trains with task.name "
                         f"{' or '.join(map(repr, model_cls.tasks))}, got '{cfg.task.name}'{hint}")
    problems = [*task_cls.problems(cfg, data), *model_cls.problems(cfg)]
    if problems:
        raise InputError(problems)


def trained_by(task: str) -> list[str]:
    """The registered models that train with `task` (imports every model module: for error messages only)."""
    return [name for name, path in MODELS.items() if task in load_object(path).tasks]


def text_encoder(cfg: RunConfig, data: DataBundle, run_dir: Path):
    """A text network's tokenizer, made from the training texts only and saved as tokenizer.json;
    None for other data."""
    if data.kind not in TEXT_KINDS:
        return None
    encoder = lookup(MODELS, "model.name", cfg.model.name).make_encoder(cfg.model, data.X_train)
    encoder.save(run_dir / "tokenizer.json")
    return encoder


def encoded(data: DataBundle, encoder) -> DataBundle:
    """The bundle with its train and val texts as token sequences (what the training loop batches), and a seq2seq
    bundle's train and val targets as padded symbol ids."""
    if encoder is None:
        return data
    from modelladder.data.batches import TokenSequences

    def tokens(texts):
        return TokenSequences(encoder.encode(list(texts)), encoder.pad_id)

    data = replace(data, X_train=tokens(data.X_train), X_val=tokens(data.X_val))
    if data.kind == "seq2seq":  # targets as padded symbol ids (data/seq2seq.py): the first reference of each training
        # row; every reference of a validation row, which validation WER counts as right
        from modelladder.data.seq2seq import encode_references, encode_targets

        vocab = data.preprocess["target_vocab"]
        data = replace(data, y_train=encode_targets(data.y_train, vocab), y_val=encode_references(data.y_val, vocab))
    return data


@dataclass
class Training:
    """Everything fit() needs for one run, built the same way in one process and on every distributed rank."""

    cfg: RunConfig  # resolved: a fine-tuned run's config has the pretrained architecture filled in
    data: DataBundle  # as loaded (texts as strings): what the run is evaluated on
    train_data: DataBundle  # what the loop batches (texts as token sequences)
    task: Any
    model: Any  # an nn.Module, or a scikit-learn rung
    encoder: TextEncoder | None  # a text network's tokenizer
    transfer: Transfer | None  # what a fine-tuned run takes from its pretrained run

    @property
    def lr_scales(self) -> dict[str, float]:
        return self.transfer.lr_scales if self.transfer is not None else {}


def build_training(cfg: RunConfig, data: DataBundle | None, folder: Path) -> Training:
    """Data (loaded unless given), task and model for `cfg`, the pretrained weights copied in for a fine-tuned run,
    and a text network's tokenizer, saved as folder/tokenizer.json. Nothing else is written: a model that cannot
    be built leaves no half-made run folder."""
    transfer = Transfer(cfg) if cfg.finetune is not None else None
    cfg = transfer.cfg if transfer is not None else cfg
    data = data if data is not None else load_run_data(cfg)
    task = make_task(cfg, data)
    check_calibration(cfg, data)  # fitted on the validation split after training: say now if it is empty
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed, task=cfg.task.name)
    if transfer is not None:
        model = transfer.start(model)
    if cfg.train.privacy is not None:  # DP-SGD needs a network whose per-example gradients opacus computes
        from modelladder.train.privacy import check_private

        check_private(model, cfg.model.name)
    if not is_neural(model):
        return Training(cfg, data, data, task, model, None, None)
    encoder = transfer.encoder(folder) if transfer is not None else text_encoder(cfg, data, folder)
    return Training(cfg, data, encoded(data, encoder), task, model, encoder, transfer)


def preprocess_record(data: DataBundle, task=None) -> dict:
    """preprocess.json: what turns raw inputs into the features this run was trained on, and the task's outputs
    into its scores (a regression network's target scale)."""
    record = {"kind": data.kind, "input_shape": list(data.input_shape), "classes": data.classes,
              "feature_names": data.feature_names, "source": data.source, "transform": data.preprocess}
    if "roles" in data.preprocess:  # a table's column decisions (data/columns.py), where a reader looks first
        record |= {"columns": data.preprocess["roles"], "warnings": data.preprocess.get("warnings", []),
                   "id_column": data.preprocess.get("id_column")}
    return record | (task.preprocess_fields() if task is not None else {})
