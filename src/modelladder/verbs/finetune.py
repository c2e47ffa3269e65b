"""`ladder finetune PRETRAINED [CONFIG]`: a classifier that starts from a `ladder pretrain` run (verbs/transfer.py
says what it takes from it)."""

from __future__ import annotations

from pathlib import Path

from modelladder.config import RunConfig, load_raw, validate_run
from modelladder.runs import claim, run_path
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run
from modelladder.verbs.transfer import pretrained_config, resolve


def load_finetune_config(pretrained: str | Path, path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """`ladder finetune PRETRAINED CONFIG`: the config file (and --set overrides) with finetune.from set to
    `pretrained`, model.name defaulting to the pretrained run's, resolved."""
    raw = load_raw(path, overrides)
    raw["finetune"] = {**(raw.get("finetune") or {}), "from": str(pretrained)}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    raw["model"] = {"name": pretrained_config(pretrained, "finetune.from").model.name, **model}
    return resolve(validate_run(raw))


def main(args) -> int:
    """`ladder finetune PRETRAINED [CONFIG] [--set ...] [--name] [--runs-dir] [--resume | --overwrite]`."""
    from modelladder.verbs.report import print_result, report_for

    cfg = load_finetune_config(args.pretrained, args.config, args.overrides)
    default = Path(args.config).stem if args.config else f"{args.pretrained.name}-finetuned"
    path = run_path(args.runs_dir, args.name or cfg.name or default)
    data, run_dir = claim(path, overwrite=args.overwrite, resume=args.resume, load=lambda: load_run_data(cfg))
    result = train_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    print(f"written: {report_for(run_dir)}")
    return 0
