"""The verbs that describe: config show, datasets, models."""

from __future__ import annotations


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
