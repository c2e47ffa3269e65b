"""Transfer: a classifier that starts from a `ladder pretrain` run (`ladder finetune`, or finetune.from).

A run config with a `finetune:` section names the pretrained run folder in finetune.from. The fine-tuned
model is the pretrained one's family (model.name) with its architecture: every model field is copied from
the pretrained run's config.yaml except those a classifier sets for itself (OWN_FIELDS: pooling, dropout;
max_length where no weight depends on it); a field set to another value is an InputError naming it. The
pretrained tokenizer.json is reused, not trained again, and copied into the new run folder; the backbone's
weights (the model's `backbone_parts`) are copied exactly from the pretrained model.safetensors and the
head starts new. finetune.mode says what trains (models/modes.py): full, frozen (a linear probe) or lora;
finetune.backbone_lr gives the backbone (or its LoRA adapters) a peak learning rate of its own.
LoRA adapters are merged into the weights when training ends, so model.safetensors holds the plain model
that `ladder evaluate`, `predict` and `serve` rebuild from config.yaml; the checkpoints keep the adapters,
so a LoRA run resumes like any other.

Image encoders (autoencoder, vae, simclr) pretrained with task reconstruction, vae or contrastive are
reused the same way, without a tokenizer: the fine-tuned model is the same model with model.head
'classifier' (set here), whose backbone_parts (the encoder; the VAE's mean layer too) are copied.

In a ladder, `pretrain:` stages are `ladder pretrain` runs made first into <ladder>/<stage>/, and a rung's
finetune.from may name a stage. A finished stage with the same config is reused, also across --overwrite
(pretraining is the expensive part): until the ladder folder is made again, it waits in .<ladder>.stages/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from rich.console import Console
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from modelladder.config import (
    LadderConfig,
    RunConfig,
    apply_overrides,
    read_yaml,
    stage_configs,
    to_yaml,
    validate_run,
)
from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.models.modes import linear_names, with_lora
from modelladder.pretrain import IMAGE_PRETRAIN_TASKS, pretrained_config
from modelladder.registry import PRETRAIN_TASKS

IMAGE_ENCODERS = tuple(IMAGE_PRETRAIN_TASKS.values())  # their head field says decoder / projection or classifier
# the model fields a fine-tuned model sets for itself; every other one is the pretrained architecture
OWN_FIELDS = {"transformer": {"pooling", "dropout", "max_length"},
              "rnn": {"pooling", "dropout", "input_dropout", "max_length"},
              **{name: {"head", "dropout"} for name in IMAGE_ENCODERS}}


def resolve(cfg: RunConfig) -> RunConfig:
    """`cfg` with the pretrained run's architecture filled in (finetune.from: a folder); InputError for a model
    field that disagrees with it, or for a pretrained run that cannot serve as this model's backbone."""
    source = Path(cfg.finetune.from_).expanduser()
    pretrained = pretrained_config(source, "finetune.from")
    if cfg.task.name in PRETRAIN_TASKS or cfg.task.name in IMAGE_PRETRAIN_TASKS:
        raise InputError(f"task.name '{cfg.task.name}' is a pretraining objective: fine-tuning trains a task with a "
                         "head such as 'classification' (to pretrain further, use ladder pretrain)")
    where = source / "config.yaml"
    if cfg.model.name != pretrained.model.name:
        raise InputError(f"model.name '{cfg.model.name}' differs from the pretrained run's '{pretrained.model.name}' "
                         f"({where}): a fine-tuned model keeps the pretrained architecture; leave model.name out "
                         "or set it to the pretrained one")
    if cfg.model.name not in OWN_FIELDS:
        raise InputError(f"model.name '{cfg.model.name}' cannot be fine-tuned from a pretrained run: "
                         f"allowed are {sorted(OWN_FIELDS)}")
    own = cfg.model.model_dump(mode="json", exclude_unset=True)
    architecture = pretrained.model.model_dump(mode="json")
    keep = OWN_FIELDS[cfg.model.name] - _position_fields(pretrained)
    problems = [f"model.{key} {value!r} differs from the pretrained run's {architecture[key]!r} ({where}): "
                f"leave it out to fine-tune the pretrained architecture{_hint(key, pretrained)}"
                for key, value in own.items() if key not in keep and value != architecture[key]]
    if problems:
        raise InputError(problems)
    raw = cfg.model_dump(mode="json")
    raw["model"] = {**architecture, **{key: value for key, value in own.items() if key in keep}}
    if cfg.model.name in IMAGE_ENCODERS:
        raw["model"]["head"] = _classifier_head(own)
    raw["finetune"]["from"] = str(source)
    return validate_run(raw)


def _classifier_head(own: dict) -> str:
    """An image encoder's fine-tuned model trades the pretraining head for a classifier head."""
    if own.get("head", "classifier") != "classifier":
        raise InputError(f"model.head {own['head']!r}: a fine-tuned image encoder gets a new head 'classifier' "
                         "(the pretraining head is not reused); leave model.head out")
    return "classifier"


def _position_fields(pretrained: RunConfig) -> set[str]:
    """Fields that size pretrained weights: a transformer's learned positions have max_length rows."""
    learned = pretrained.model.name == "transformer" and pretrained.model.positions == "learned"
    return {"max_length"} if learned else set()


def _hint(key: str, pretrained: RunConfig) -> str:
    if key == "max_length" and _position_fields(pretrained):
        return " (its learned position embeddings have that many rows; positions 'rope' lets it change)"
    return ""


def load_finetune_config(pretrained: str | Path, path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """`ladder finetune PRETRAINED CONFIG`: the config file (and --set overrides) with finetune.from set to
    `pretrained`, model.name defaulting to the pretrained run's, resolved."""
    raw = apply_overrides(read_yaml(path) if path else {}, list(overrides))
    raw["finetune"] = {**(raw.get("finetune") or {}), "from": str(pretrained)}
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    raw["model"] = {"name": pretrained_config(pretrained, "finetune.from").model.name, **model}
    return resolve(validate_run(raw))


class Transfer:
    """What a fine-tuned run takes from its pretrained run, in the order train_run (pipeline.py) needs it."""

    def __init__(self, cfg: RunConfig):
        self.cfg = resolve(cfg)
        self.source = Path(self.cfg.finetune.from_)

    def start(self, model: nn.Module) -> nn.Module:
        """`model` (freshly built) with the pretrained backbone weights copied in and finetune.mode applied."""
        weights = load_file(self.source / "model.safetensors")  # safetensors: nothing is unpickled
        own = model.state_dict()
        names = [k for k in own if k.split(".")[0] in model.backbone_parts]
        bad = [k for k in names if k not in weights or weights[k].shape != own[k].shape]
        if bad:
            raise InputError(f"{self.source / 'model.safetensors'} does not hold the backbone weights {bad[:3]} of "
                             f"model '{self.cfg.model.name}' with the config of {self.source / 'config.yaml'}")
        with torch.no_grad():
            for k in names:
                own[k].copy_(weights[k])
        mode = self.cfg.finetune.mode
        backbone_lr = self.cfg.finetune.backbone_lr
        if backbone_lr is not None:
            if mode == "frozen":
                raise InputError("finetune.backbone_lr sets the learning rate of a backbone that trains, but "
                                 "finetune.mode is 'frozen': leave backbone_lr out or use mode 'full' or 'lora'")
            # train/optim.py groups parameters by these name prefixes; the loop's schedule scales every group
            model.lr_scales = {f"{part}.": backbone_lr / self.cfg.train.optimizer.lr for part in model.backbone_parts}
        if mode == "frozen":
            for part in model.backbone_parts:
                getattr(model, part).requires_grad_(False)
            model.frozen = True
        elif mode == "lora":
            self._add_lora(model)
        return model

    def _add_lora(self, model: nn.Module) -> None:
        lora = self.cfg.finetune.lora
        parts = [p for p in model.backbone_parts if linear_names(getattr(model, p))]
        if not parts:
            raise InputError(f"finetune.mode 'lora' adapts Linear layers, and model '{self.cfg.model.name}' has none "
                             f"in its backbone ({', '.join(model.backbone_parts)}): use mode 'full' or 'frozen'")
        for part in parts:
            targets = lora.target_modules or linear_names(getattr(model, part))
            settings = lora.model_copy(update={"target_modules": targets})
            setattr(model, part, with_lora(getattr(model, part), settings, field="finetune.lora"))

    def encoder(self, run_dir: Path) -> TextEncoder | None:
        """The pretrained tokenizer, cutting texts at this model's max_length, saved as run_dir/tokenizer.json;
        None for a pretrained image encoder, which has none."""
        if not (self.source / "tokenizer.json").is_file():
            return None
        encoder = TextEncoder.load(self.source / "tokenizer.json")
        if encoder.max_length != self.cfg.model.max_length:
            encoder.tokenizer.enable_truncation(self.cfg.model.max_length)
            encoder = TextEncoder(encoder.tokenizer)
        encoder.save(run_dir / "tokenizer.json")
        return encoder

    def finish(self, model: nn.Module, run_dir: Path) -> nn.Module:
        """After training: LoRA adapters merged into the weights, and model.safetensors written again plain."""
        if self.cfg.finetune.mode != "lora":
            return model
        from modelladder.train.checkpoint import save_weights

        for part in model.backbone_parts:
            if hasattr(getattr(model, part), "merge_and_unload"):
                setattr(model, part, getattr(model, part).merge_and_unload())
        path = run_dir / "model.safetensors"
        with safe_open(path, "pt") as f:
            metadata = f.metadata()
        save_weights(path, model, {**(metadata or {}), "lora": "merged"})
        return model


# ---------------------------------------------------------------- pretrain stages of a ladder


def run_stages(ladder: LadderConfig, rungs: list[RunConfig], root: Path, console: Console) -> list[RunConfig]:
    """Pretrain every stage of `ladder` into root/<stage>/ (or reuse a finished one with the same config); the
    rungs with finetune.from naming a stage then point at its folder."""
    from modelladder.pretrain import check_pretrain_config, prepare_data, pretrain_run
    from modelladder.runs import prepare, write_json

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
    from modelladder.runs import read_json

    return read_json(folder / "summary.json")


def _point_at(cfg: RunConfig, folders: dict[str, str]) -> RunConfig:
    if cfg.finetune is None or cfg.finetune.from_ not in folders:
        return cfg
    return cfg.model_copy(update={"finetune": cfg.finetune.model_copy(update={"from_": folders[cfg.finetune.from_]})})
