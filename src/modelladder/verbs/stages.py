"""A ladder's `pretrain:` stages: `ladder pretrain` runs made first into <ladder>/<stage>/; a rung's finetune.from
may name a stage. A finished stage with the same config is reused, also across --overwrite (pretraining is the
expensive part): until the ladder folder is made again, it waits in .<ladder>.stages/."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from modelladder.config import LadderConfig, RunConfig, stage_configs, to_yaml
from modelladder.runs import prepare, read_json, write_json
from modelladder.verbs.pretrain import check_pretrain_config, prepare_data, pretrain_run


def run_stages(ladder: LadderConfig, rungs: list[RunConfig], root: Path, console: Console) -> list[RunConfig]:
    """Pretrain every stage of `ladder` into root/<stage>/ (or reuse a finished one with the same config); the
    rungs with finetune.from naming a stage then point at its folder."""
    stages = stage_configs(ladder)
    for cfg in stages:
        check_pretrain_config(cfg)
    summaries = {}
    for cfg in stages:
        folder = root / cfg.name
        if _take_back(cfg, folder):
            summaries[cfg.name] = {**_read_summary(folder), "reused": True}
            console.print(f"-> pretrain {cfg.name}: reused {folder} (finished, same config)")
            continue
        console.print(f"-> pretrain {cfg.name} ({cfg.model.name}, {cfg.task.name} on {cfg.data.dataset})")
        result = pretrain_run(cfg, prepare(folder, overwrite=True), data=prepare_data(cfg))
        summaries[cfg.name] = {**_read_summary(folder), "reused": False}
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
        console.print(f"   held-out {metrics}  ({result['steps']} steps, {result['train_seconds']:.0f} s)")
    shutil.rmtree(_waiting_room(root), ignore_errors=True)
    if stages:
        write_json(root / "pretrain.json", summaries)
    folders = {cfg.name: str(root / cfg.name) for cfg in stages}
    return [_point_at(cfg, folders) for cfg in rungs]


def set_aside_stages(ladder: LadderConfig, path: Path) -> None:
    """Before --overwrite deletes the ladder folder `path`: move its finished stages to the waiting room."""
    waiting = _waiting_room(path)
    for stage in ladder.pretrain:
        folder = path / stage.name
        if _finished(folder) and not (waiting / stage.name).exists():
            waiting.mkdir(parents=True, exist_ok=True)
            folder.rename(waiting / stage.name)


def _waiting_room(path: Path) -> Path:
    return path.parent / f".{path.name}.stages"


def _take_back(cfg: RunConfig, folder: Path) -> bool:
    """Whether a finished stage with cfg's config is at `folder` (moved back from the waiting room)."""
    waiting = _waiting_room(folder.parent) / cfg.name
    if not folder.exists() and _finished(waiting):
        waiting.rename(folder)
    return _finished(folder) and (folder / "config.yaml").read_text() == to_yaml(cfg)


def _finished(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("config.yaml", "model.safetensors", "summary.json"))


def _read_summary(folder: Path) -> dict:
    return read_json(folder / "summary.json")


def _point_at(cfg: RunConfig, folders: dict[str, str]) -> RunConfig:
    if cfg.finetune is None or cfg.finetune.from_ not in folders:
        return cfg
    return cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={"from_": folders[cfg.finetune.from_]})})
