"""`ladder VERB ...`: argument handling only; each verb calls one function."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path

from modelladder.errors import InputError

DEFAULT_LADDER = "digits.yaml"  # the embedded default: scikit-learn's bundled digits, no download


def _add_config_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument("config", nargs="?" if optional else None, help="YAML config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a config field, e.g. --set train.optimizer.lr=0.01 (repeatable)")


def _add_runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="folder that holds run folders (default: runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")


def _add_mlflow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", metavar="URI",
                   help="also log params, metrics and the model to MLflow, e.g. sqlite:///mlflow.db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ladder", description=__doc__.split(":")[0])
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("run", help="train a ladder of rungs and print the leaderboard")
    _add_config_args(p, optional=True)
    _add_runs_args(p)
    _add_mlflow_arg(p)
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("cv", help="k-fold cross-validation of one model: mean and std of every metric")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: 5)")
    p.add_argument("--repeats", type=int, default=1, help="reshufflings of the folds (default: 1)")
    _add_mlflow_arg(p)
    p.set_defaults(func=cmd_cv)

    p = verbs.add_parser("train", help="train one model from a config")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    _add_mlflow_arg(p)
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("pretrain", help="pretrain a language model (task causal_lm or masked_lm) on a text corpus")
    _add_config_args(p)
    _add_runs_args(p)
    p.add_argument("--name", help="run name (default: config name or file stem)")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.set_defaults(func=cmd_pretrain)

    p = verbs.add_parser("generate", help="continue a prompt with a run pretrained with task causal_lm")
    p.add_argument("run", type=Path, help="run folder of `ladder pretrain`")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500, help="tokens to generate (default: 500)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="below 1 sharper, above 1 more random; 0 always takes the most likely token (default: 0.8)")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    p.add_argument("--top-p", type=float, help="sample among the most likely tokens that make up this probability")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same text (default: 0)")
    p.set_defaults(func=cmd_generate)

    p = verbs.add_parser("evaluate", help="metrics and latency of a trained run on a split")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.set_defaults(func=cmd_evaluate)

    p = verbs.add_parser("predict", help="predict rows, images or texts with a trained run")
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument("inputs", type=Path, nargs="*",
                   help="CSV/parquet files, image files or folders of images; for text runs .txt files "
                        "(one text per line) or CSV/JSONL files with the run's text column")
    p.add_argument("--text", action="append", default=[], dest="texts", metavar="TEXT",
                   help="a text to classify with a text run (repeatable)")
    p.add_argument("--out", type=Path, help="write predictions here as CSV (default: print them)")
    p.set_defaults(func=cmd_predict)

    p = verbs.add_parser("report", help="write report.html for a run or ladder folder")
    p.add_argument("folder", type=Path, help="a run folder or a ladder folder")
    p.set_defaults(func=cmd_report)

    p = verbs.add_parser("config", help="configuration tools")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = sub.add_parser("show", help="print the resolved config (defaults filled in, overrides applied)")
    _add_config_args(show)
    show.set_defaults(func=cmd_config_show)

    p = verbs.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=cmd_datasets)
    p = verbs.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)
    return parser


def _default_ladder() -> Path:
    return Path(str(files("modelladder") / "recipes" / DEFAULT_LADDER))


def cmd_run(args) -> int:
    from rich.console import Console

    from modelladder.config import load_ladder_config
    from modelladder.ladder import leaderboard_table, run_ladder

    ladder = load_ladder_config(args.config or _default_ladder(), args.overrides)
    rows = run_ladder(ladder, args.runs_dir, overwrite=args.overwrite, mlflow=args.mlflow)
    console = Console(width=max(Console().width, 120))  # a leaderboard must not be cut when piped
    console.print(leaderboard_table(rows, f"{ladder.name} leaderboard"))
    root = Path(args.runs_dir) / ladder.name
    console.print(f"written: {root / 'leaderboard.csv'} (and .json), {_report(root)}")
    return 0


def _report(folder: Path) -> Path:
    from modelladder.report import write_report

    return write_report(folder)


def cmd_report(args) -> int:
    print(f"written: {_report(args.folder)}")
    return 0


def cmd_train(args) -> int:
    from modelladder.config import load_run_config
    from modelladder.pipeline import load_run_data, train_run
    from modelladder.runs import prepare, run_path

    cfg = load_run_config(args.config, args.overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    if path.exists() and not (args.overwrite or args.resume):
        prepare(path)  # refuses, before the data is loaded
    data = load_run_data(cfg)  # bad data fails here, before any folder is created or replaced
    run_dir = prepare(path, overwrite=args.overwrite, resume=args.resume)
    result = train_run(cfg, run_dir, resume=args.resume, data=data)
    _print_result(run_dir, result)
    print(f"written: {_report(run_dir)}")
    if args.mlflow:
        from modelladder.train.loggers import log_run_to_mlflow

        print(f"mlflow run {log_run_to_mlflow(run_dir, args.mlflow)} in {args.mlflow}")
    return 0


def cmd_cv(args) -> int:
    from rich.console import Console

    from modelladder.config import load_run_config
    from modelladder.evaluate.cross_validate import cross_validate
    from modelladder.ladder import leaderboard_table

    cfg = load_run_config(args.config, args.overrides)
    name = args.name or cfg.name or Path(args.config).stem
    row = cross_validate(cfg, args.folds, args.repeats, args.runs_dir, name=name, overwrite=args.overwrite,
                         mlflow=args.mlflow)
    console = Console(width=max(Console().width, 120))
    console.print(leaderboard_table([row], f"{name}: {args.folds}-fold cross-validation"))
    console.print(f"written: {Path(args.runs_dir) / name}, {_report(Path(args.runs_dir) / name)}")
    return 0


def cmd_pretrain(args) -> int:
    from modelladder.config import load_run_config
    from modelladder.pretrain import prepare_data, pretrain_run
    from modelladder.runs import prepare, run_path

    cfg = load_run_config(args.config, args.overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    if path.exists() and not (args.overwrite or args.resume):
        prepare(path)  # refuses, before the corpus is read
    data = prepare_data(cfg)  # a bad corpus fails here, before any folder is created or replaced
    run_dir = prepare(path, overwrite=args.overwrite, resume=args.resume)
    result = pretrain_run(cfg, run_dir, resume=args.resume, data=data)
    _print_result(run_dir, result)
    print(f"{result['steps']} steps, {result['tokens_per_s']:,.0f} tokens/s, {result['train_seconds']:.1f} s")
    return 0


def cmd_generate(args) -> int:
    from modelladder.generate import generate_text

    def show(text: str) -> None:
        print(text, end="", flush=True)

    generate_text(args.run, args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                  top_p=args.top_p, seed=args.seed, on_text=show)
    print()
    return 0


def cmd_evaluate(args) -> int:
    from modelladder.pipeline import evaluate_run

    _print_result(args.run, evaluate_run(args.run, split=args.split))
    return 0


def _print_result(run_dir: Path, result: dict) -> None:
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
    print(f"{run_dir} [{result['split']}, n={result['n']}]  {metrics}")


def cmd_predict(args) -> int:
    import numpy as np
    import pandas as pd

    from modelladder.serve.predictor import Predictor

    if not args.inputs and not args.texts:
        raise InputError("predict needs input files or --text")
    predictor = Predictor.load(args.run)
    if args.texts and predictor.preprocess["kind"] != "text":
        raise InputError(f"--text needs a run trained on text; {args.run} was trained on "
                         f"{predictor.preprocess['kind']} data")
    paths = _expand_inputs(args.inputs)
    scores = predictor.predict_files(paths) if paths else np.zeros((0, len(predictor.classes)), np.float32)
    if args.texts:
        scores = np.concatenate([scores, predictor.predict_proba(args.texts)])
    frame = pd.DataFrame({"prediction": predictor.decode(scores)})
    if predictor.classes:
        frame["confidence"] = scores.max(axis=1)
    if predictor.preprocess["kind"] == "image":
        frame.insert(0, "file", [str(p) for p in paths])
    if args.out:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(args.out)
        print(f"{len(frame)} predictions written to {args.out}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _expand_inputs(inputs: list[Path]) -> list[Path]:
    paths = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"input folder {p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif not p.is_file():
            raise InputError(f"input file {p} does not exist")
        else:
            paths.append(p)
    return paths


def cmd_config_show(args) -> int:
    from modelladder.config import (is_ladder, apply_overrides, read_yaml, to_yaml, validate_ladder,
                                    validate_run)

    raw = apply_overrides(read_yaml(args.config), args.overrides)
    print(to_yaml(validate_ladder(raw) if is_ladder(raw) else validate_run(raw)), end="")
    return 0


def cmd_datasets(args) -> int:
    from modelladder.registry import CORPORA, DATASETS

    for name, path in DATASETS.items():
        print(f"{name:16s} {path}")
    for name, path in CORPORA.items():
        print(f"{name:16s} {path}  (corpus for ladder pretrain)")
    return 0


def cmd_models(args) -> int:
    from modelladder.registry import MODELS

    for name, path in MODELS.items():
        print(f"{name:14s} {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while waiting make a 2-thread torch job 30-50x slower as soon as another
    # process shares the cores (digits MLP, 10 epochs: 1.4 s passive vs 45-70 s spinning, measured
    # here); set before torch is imported, unless the user chose a policy.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
