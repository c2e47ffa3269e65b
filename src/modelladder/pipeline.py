"""One run end to end: data -> model -> train -> evaluate, written into a run folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from modelladder.config import RunConfig, to_yaml
from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError
from modelladder.evaluate.cost import inference_latency, measure_training, one_batch, training_flops
from modelladder.models.build import build_model, count_params, is_neural
from modelladder.registry import MODELS, TASKS, lookup
from modelladder.runs import environment, read_json, write_json, write_text
from modelladder.serve.predictor import Predictor


def make_task(cfg: RunConfig, data: DataBundle):
    task_cls = lookup(TASKS, "task.name", cfg.task.name)
    if cfg.task.name == "classification":
        if not data.classes:
            raise InputError("task.name is 'classification' but the dataset has no classes")
        return task_cls(len(data.classes))
    if hasattr(task_cls, "from_config"):  # a task with options (the generative ones) reads them itself
        return task_cls.from_config(cfg, data)
    return task_cls()


def load_run_data(cfg: RunConfig) -> DataBundle:
    from modelladder.data.load import load_data

    # a generative task reads its images as a classification dataset: the labels ride along for its pictures
    labels = getattr(lookup(TASKS, "task.name", cfg.task.name), "data_task", cfg.task.name)
    data = load_data(cfg.data, seed=cfg.seed, task=labels)
    check_model_fits_data(cfg, data)
    return data


def check_model_fits_data(cfg: RunConfig, data: DataBundle) -> None:
    """Text rungs need text data and every other rung needs arrays: say so before anything is trained."""
    wants = getattr(lookup(MODELS, "model.name", cfg.model.name), "input_kind", None)
    if (wants == "text") != (data.kind == "text"):
        needs = "text data" if wants == "text" else "image or tabular data"
        raise InputError(f"model.name '{cfg.model.name}' needs {needs}, but data.dataset "
                         f"'{cfg.data.dataset}' is {data.kind} data")
    tasks = getattr(lookup(MODELS, "model.name", cfg.model.name), "tasks", None)  # generative models' objectives
    if tasks is not None and cfg.task.name not in tasks:
        raise InputError(f"model.name '{cfg.model.name}' trains with task.name {' or '.join(map(repr, tasks))}, "
                         f"got '{cfg.task.name}'")
    task_cls = lookup(TASKS, "task.name", cfg.task.name)
    if hasattr(task_cls, "check"):  # a task that needs a certain model or data says so here
        task_cls.check(cfg, data)
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    if hasattr(model_cls, "check"):  # a model with a head per task (autoencoder, vae, simclr) says which here
        model_cls.check(cfg)


def text_encoder(cfg: RunConfig, data: DataBundle, run_dir: Path):
    """A text network's tokenizer, made from the training texts only and saved as tokenizer.json;
    None for other data."""
    if data.kind != "text":
        return None
    encoder = lookup(MODELS, "model.name", cfg.model.name).make_encoder(cfg.model, data.X_train)
    encoder.save(run_dir / "tokenizer.json")
    return encoder


def encoded(data: DataBundle, encoder) -> DataBundle:
    """The bundle with its train and val texts as token sequences (what the training loop batches)."""
    if encoder is None:
        return data
    from modelladder.train.batches import TokenSequences

    def tokens(texts):
        return TokenSequences(encoder.encode(list(texts)), encoder.pad_id)

    return replace(data, X_train=tokens(data.X_train), X_val=tokens(data.X_val))


def train_run(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: DataBundle | None = None) -> dict:
    """Train the model `cfg` describes into `run_dir` (prepared by the caller) and evaluate it."""
    transfer = None
    if cfg.finetune is not None:  # start from a `ladder pretrain` run: its architecture, tokenizer and weights
        from modelladder.finetune import Transfer

        transfer = Transfer(cfg)
        cfg = transfer.cfg
    data = data if data is not None else load_run_data(cfg)
    task = make_task(cfg, data)
    # built before anything is written: a model that cannot be built leaves no half-made run folder
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed, task=cfg.task.name)
    if transfer is not None:
        model = transfer.start(model)
    if cfg.train.privacy is not None:  # DP-SGD needs a network whose per-example gradients opacus computes
        from modelladder.train.privacy import check_private

        check_private(model, cfg.model.name)
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    write_json(run_dir / "preprocess.json", {
        "kind": data.kind,
        "input_shape": list(data.input_shape),
        "classes": data.classes,
        "feature_names": data.feature_names,
        "source": data.source,
        "transform": data.preprocess,
    })
    write_json(run_dir / "env.json", environment(cfg.seed))
    summary = {"model": cfg.model.name, "family": "neural" if is_neural(model) else "classic"}
    encoder = None
    if is_neural(model):
        from modelladder.train.loggers import make_loggers
        from modelladder.train.loop import fit, resolve_device

        encoder = transfer.encoder(run_dir) if transfer is not None else text_encoder(cfg, data, run_dir)
        train_data = encoded(data, encoder)
        device = resolve_device(cfg.train.device)
        # a task may add its own callbacks, such as a GAN's sample grids through training
        callbacks = [*make_loggers(cfg.train, run_dir), *(task.callbacks(model, run_dir) if hasattr(task, "callbacks")
                                                          else [])]
        with measure_training(device) as cost:
            result = fit(model, task, train_data, cfg.train, seed=cfg.seed, run_dir=run_dir,
                         augment=cfg.data.augment, resume=resume, callbacks=callbacks)
        summary |= {"train_seconds": result.train_seconds, "steps": result.steps,
                    "epochs": result.epochs, "stopped_early": result.stopped_early}
        if cfg.train.privacy is not None:  # the (epsilon, delta) the steps taken spent
            from modelladder.train.privacy import privacy_spent

            summary |= privacy_spent(cfg.train, n_train=len(train_data.y_train), steps=result.steps)
        x, y = one_batch(train_data.X_train, train_data.y_train, task, cfg.train.batch_size, device)
        summary["flops_train"] = training_flops(model, task, x, y, steps=result.steps)
        if transfer is not None:
            model = transfer.finish(model, run_dir)
    else:
        with measure_training() as cost:
            model.fit(data.X_train, data.y_train)
        summary["train_seconds"] = cost.wall_s
        summary["flops_train"] = None  # scikit-learn's work is not a tensor program: not counted
        model.save(run_dir / "model.skops")
    summary |= cost.record()
    summary["params"] = count_params(model)  # trees have nodes only once fitted
    summary["train_examples"] = int(len(data.y_train))
    write_json(run_dir / "summary.json", summary)
    predictor = Predictor(cfg, model, read_json(run_dir / "preprocess.json"), run_dir, encoder=encoder)
    return summary | evaluate_run(run_dir, split=cfg.eval.split, data=data, predictor=predictor)


def evaluate_run(run_dir: Path, *, split: str = "test", data: DataBundle | None = None,
                 predictor: Predictor | None = None) -> dict:
    """Metrics and latency on one split, saved as eval_<split>.json and predictions_<split>.csv."""
    predictor = predictor or Predictor.load(run_dir)
    cfg = predictor.cfg
    data = data if data is not None else load_run_data(cfg)
    X, y = data.split(split)
    if cfg.eval.limit is not None:  # the same sample for every rung of a ladder: they share seed and data
        from modelladder.data.splits import subsample

        keep = subsample(y, cfg.eval.limit, seed=cfg.seed, stratify=bool(data.classes), name="eval.limit")
        X, y = X[keep], y[keep]
    if len(y) == 0:
        raise InputError(f"split '{split}' of run {run_dir} is empty (data.split.val is 0?)")
    task = make_task(cfg, data)
    if hasattr(task, "evaluate_model"):  # generative tasks score the model itself and draw pictures/
        metrics, details = task.evaluate_model(predictor.model, X, y, run_dir)
        record = {"split": split, "n": len(y), "metrics": metrics, **details}
        write_json(run_dir / f"eval_{split}.json", record)
        return record
    scores = predictor.scores(X)
    metrics = task.metrics(y, scores)
    record = {"split": split, "n": int(len(y)), "metrics": metrics,
              "latency": inference_latency(predictor.scores, X)}
    if data.classes:
        from modelladder.evaluate.metrics import confusion

        record["confusion"] = confusion(y, task.decode(scores), len(data.classes))
    write_json(run_dir / f"eval_{split}.json", record)
    _write_predictions(run_dir / f"predictions_{split}.csv", y, scores, data.classes)
    return record


def _write_predictions(path: Path, y: np.ndarray, scores: np.ndarray, classes: list[str]) -> None:
    import pandas as pd

    if classes:
        frame = pd.DataFrame(scores, columns=[f"proba_{c}" for c in classes])
        frame.insert(0, "predicted", np.asarray(classes, dtype=object)[scores.argmax(axis=1)])
        frame.insert(0, "true", np.asarray(classes, dtype=object)[y])
    else:
        frame = pd.DataFrame({"true": y, "predicted": scores})
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_csv(tmp, index_label="row")
    tmp.replace(path)

