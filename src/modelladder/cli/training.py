"""The verbs that train: run, cv, train, pretrain, finetune, and generate from what they made."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from modelladder.errors import InputError

DEFAULT_LADDER = "digits.yaml"  # the embedded default: scikit-learn's bundled digits, no download


def default_ladder() -> Path:
    return Path(str(files("modelladder") / "recipes" / DEFAULT_LADDER))


def cmd_run(args) -> int:
    from rich.console import Console

    from modelladder.config import load_ladder_config
    from modelladder.ladder import leaderboard_table, run_ladder

    ladder = load_ladder_config(args.config or default_ladder(), args.overrides)
    rows = run_ladder(ladder, args.runs_dir, overwrite=args.overwrite, mlflow=args.mlflow)
    console = Console(width=max(Console().width, 120))  # a leaderboard must not be cut when piped
    console.print(leaderboard_table(rows, f"{ladder.name} leaderboard"))
    root = Path(args.runs_dir) / ladder.name
    console.print(f"written: {root / 'leaderboard.csv'} (and .json), {report_for(root)}")
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
    console.print(f"written: {Path(args.runs_dir) / name}, {report_for(Path(args.runs_dir) / name)}")
    return 0


def cmd_train(args) -> int:
    from modelladder.config import load_run_config
    from modelladder.pipeline import load_run_data, train_run
    from modelladder.runs import run_path
    from modelladder.train.distributed import is_worker, launch_train, worker_train

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
        data, run_dir = fresh_run(path, args, lambda: load_run_data(cfg))
        result = train_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    print(f"written: {report_for(run_dir)}")
    if args.mlflow:
        from modelladder.train.loggers import log_run_to_mlflow

        print(f"mlflow run {log_run_to_mlflow(run_dir, args.mlflow)} in {args.mlflow}")
    return 0


def cmd_pretrain(args) -> int:
    from modelladder.config import load_run_config
    from modelladder.pretrain import prepare_data, pretrain_run
    from modelladder.runs import run_path

    cfg = load_run_config(args.config, args.overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    data, run_dir = fresh_run(path, args, lambda: prepare_data(cfg))
    result = pretrain_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    speed = f", {result['tokens_per_s']:,.0f} tokens/s" if "tokens_per_s" in result else ""  # image runs: no tokens
    print(f"{result['steps']} steps{speed}, {result['train_seconds']:.1f} s")
    return 0


def cmd_finetune(args) -> int:
    from modelladder.finetune import load_finetune_config
    from modelladder.pipeline import load_run_data, train_run
    from modelladder.runs import run_path

    cfg = load_finetune_config(args.pretrained, args.config, args.overrides)
    default = Path(args.config).stem if args.config else f"{args.pretrained.name}-finetuned"
    path = run_path(args.runs_dir, args.name or cfg.name or default)
    data, run_dir = fresh_run(path, args, lambda: load_run_data(cfg))
    result = train_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    print(f"written: {report_for(run_dir)}")
    return 0


def cmd_generate(args) -> int:
    from modelladder.generate import generate_text

    def show(text: str) -> None:
        print(text, end="", flush=True)

    if (args.run is None) == (args.base is None):
        raise InputError("ladder generate needs a run folder or --base [PATH], not both")
    generate_text(args.run, args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                  top_p=args.top_p, seed=args.seed, base=args.base or None, on_text=show)
    print()
    return 0


def fresh_run(path: Path, args, load):
    """(data, run folder): an existing folder is refused before `load()` reads any data, and bad data fails
    before a folder is created or replaced (unless --overwrite or --resume)."""
    from modelladder.runs import prepare

    if path.exists() and not (args.overwrite or args.resume):
        prepare(path)
    data = load()
    return data, prepare(path, overwrite=args.overwrite, resume=args.resume)


def report_for(folder: Path) -> Path:
    from modelladder.report import write_report

    return write_report(folder)


def print_result(run_dir: Path, result: dict) -> None:
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
    print(f"{run_dir} [{result['split']}, n={result['n']}]  {metrics}")
