"""`ladder train`: one run end to end: data -> model -> train -> evaluate, written into a run folder; in one process,
or on several (--nproc N, torchrun: verbs/distributed.py), each rank building the same Training."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from modelladder.config import RunConfig, load_run_config
from modelladder.data.bundle import DataBundle
from modelladder.evaluate.calibration import calibrate_run
from modelladder.evaluate.cost import (
    CheckpointCost,
    earlier_cost,
    measure_training,
    one_batch,
    text_training_flops,
    training_flops,
)
from modelladder.models.build import count_nodes, count_params, is_neural
from modelladder.runs import (
    claim,
    finish_environment,
    prepare,
    read_json,
    refuse_existing,
    run_path,
    write_json,
    write_run_files,
)
from modelladder.serve.predictor import Predictor
from modelladder.train.loop import fit
from modelladder.verbs.build import build_training, load_run_data, preprocess_record
from modelladder.verbs.distributed import check_run, init_process_group, is_worker, launch_train
from modelladder.verbs.evaluate import evaluate_run


def train_run(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: DataBundle | None = None,
              callbacks: Sequence = ()) -> dict:
    """Train the model `cfg` describes into `run_dir` (prepared by the caller) and evaluate it. `callbacks`: more
    training-loop callbacks for a network (a tuning trial's pruning, verbs/tune.py)."""
    t = build_training(cfg, data, run_dir)
    cfg, data, model = t.cfg, t.data, t.model
    write_run_files(run_dir, cfg, preprocess_record(data, t.task))
    summary = {"model": cfg.model.name, "family": "neural" if is_neural(model) else "classic"}
    if is_neural(model):
        from modelladder.train.loggers import make_loggers
        from modelladder.train.loop import resolve_device

        device = resolve_device(cfg.train.device)
        # a task may add its own callbacks, such as a GAN's sample grids through training
        callbacks = [*make_loggers(cfg.train, run_dir), *t.task.callbacks(model, run_dir), *callbacks]
        # the cost kept with the checkpoint resumed from is added in: the summary covers the whole run
        with measure_training(device, country=cfg.cost.country,
                              earlier=earlier_cost(run_dir) if resume else None) as cost:
            result = fit(model, t.task, t.train_data, cfg.train, seed=cfg.seed, run_dir=run_dir,
                         augment=cfg.data.augment, resume=resume, callbacks=[*callbacks, CheckpointCost(cost)],
                         lr_scales=t.lr_scales)
        summary |= {"train_seconds": result.train_seconds, "steps": result.steps,
                    "epochs": result.epochs, "stopped_early": result.stopped_early}
        if result.stopped is not None:  # train.max_seconds (a ladder's time limit) ended it early
            summary["stopped"] = result.stopped
        if cfg.train.privacy is not None:  # the (epsilon, delta) the steps taken spent
            from modelladder.train.privacy import privacy_spent

            summary |= privacy_spent(cfg.train, n_train=len(t.train_data.y_train), steps=result.steps)
        summary["flops_train"] = _flops(model, t, cfg.train.batch_size, result, device)
        if t.transfer is not None:
            model = t.transfer.finish(model, run_dir)
    else:
        X, y = data.X_train, data.y_train
        if data.kind == "seq2seq":  # a classic seq2seq rung fits one target string per source: the row's reference
            X, y = list(X), [refs[0] for refs in y]
        with measure_training(country=cfg.cost.country) as cost:
            model.fit(X, y)
        summary["train_seconds"] = cost.wall_s
        summary["flops_train"] = None  # scikit-learn's work is not a tensor program: not counted
        summary["estimator"] = model.estimator_name()  # e.g. Ridge: what a `linear` rung is for this task
        model.save(run_dir / "model.skops")
    summary |= cost.record()
    summary["params"] = count_params(model)  # weights: networks and linear models; None for trees
    summary["nodes"] = count_nodes(model)  # trees, once fitted; None for the others
    summary["train_examples"] = len(data.y_train)
    write_json(run_dir / "summary.json", summary)
    predictor = Predictor(cfg, model, read_json(run_dir / "preprocess.json"), run_dir, encoder=t.encoder)
    calibrate_run(cfg, predictor, data, run_dir)  # on the validation split, when eval.calibrate or a margin model
    result = summary | evaluate_run(run_dir, split=cfg.eval.split, data=data, predictor=predictor)
    finish_environment(run_dir)
    return result


def _flops(model, t, batch_size: int, result, device) -> int:
    """Training FLOPs: text summed over the lengths its batches were padded to, other data as full batches."""
    X, y = t.train_data.X_train, t.train_data.y_train
    if result.examples_by_length:
        return text_training_flops(model, t.task, X, y, result.examples_by_length, device)
    x, yb = one_batch(X, y, t.task, batch_size, device)
    return training_flops(model, t.task, x, yb, steps=result.steps)


def main(args) -> int:
    """`ladder train CONFIG [--set ...] [--name] [--runs-dir] [--resume | --overwrite] [--nproc N] [--mlflow URI]`."""
    from modelladder.report.columns import print_columns
    from modelladder.verbs.report import print_result, report_for

    cfg = load_run_config(args.config, args.overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    if args.nproc != 1:  # check the run here, then start N processes that each run this verb
        return launch_train(args, cfg, path)
    if is_worker():  # one of several processes that torchrun (or --nproc) started
        trained = worker_train(cfg, path, overwrite=args.overwrite, resume=args.resume)
        if trained is None:  # a rank other than 0: rank 0 evaluates, reports and logs
            return 0
        run_dir, result = trained
    else:
        data, run_dir = claim(path, overwrite=args.overwrite, resume=args.resume, load=lambda: load_run_data(cfg))
        print_columns({"kind": data.kind, **data.preprocess})  # a table's column roles, before training
        result = train_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    print(f"written: {report_for(run_dir)}")
    if args.mlflow:
        from modelladder.train.loggers import log_run_to_mlflow

        print(f"mlflow run {log_run_to_mlflow(run_dir, args.mlflow)} in {args.mlflow}")
    return 0


def worker_train(cfg: RunConfig, path: Path, *, overwrite: bool, resume: bool) -> tuple[Path, dict] | None:
    """`ladder train` in one process of several (torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT). Rank 0 prepares the run folder and runs train_run; the others
    train in step with it. Returns rank 0's (run folder, result), None on the other ranks."""
    group = init_process_group(cfg.train.device)
    try:
        if not (overwrite or resume):
            group.from_main(lambda: refuse_existing(path))  # before the data is loaded
        data = load_run_data(cfg)
        check_run(cfg, len(data.X_train), group.world)
        run_dir = Path(group.from_main(lambda: str(prepare(path, overwrite=overwrite, resume=resume))))
        if group.main:
            return run_dir, train_run(cfg, run_dir, resume=resume, data=data)
        follow_run(cfg, data, run_dir, resume=resume)
        return None
    finally:
        dist.destroy_process_group()


def follow_run(cfg: RunConfig, data: DataBundle, run_dir: Path, *, resume: bool) -> None:
    """train_run on a rank other than 0: the same Training (build_training), trained in step with rank 0; nothing
    written (the tokenizer goes to a scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="ladder-rank-") as scratch:
        t = build_training(cfg, data, Path(scratch))
    fit(t.model, t.task, t.train_data, t.cfg.train, seed=t.cfg.seed, run_dir=run_dir, augment=t.cfg.data.augment,
        resume=resume, lr_scales=t.lr_scales)
