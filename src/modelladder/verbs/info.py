"""The verbs that describe: `ladder config show`, `ladder datasets`, `ladder models`."""

from __future__ import annotations

from modelladder.config import is_ladder, load_raw, to_yaml, validate_ladder, validate_run
from modelladder.registry import CORPORA, DATASETS, MODELS


def config_show(args) -> int:
    raw = load_raw(args.config, args.overrides)
    print(to_yaml(validate_ladder(raw) if is_ladder(raw) else validate_run(raw)), end="")
    return 0


def datasets(args) -> int:
    for name, path in DATASETS.items():
        print(f"{name:16s} {path}")
    for name, path in CORPORA.items():
        print(f"{name:16s} {path}  (corpus for ladder pretrain)")
    return 0


def models(args) -> int:
    for name, path in MODELS.items():
        print(f"{name:14s} {path}")
    return 0
