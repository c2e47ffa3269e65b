"""Transfer: a classifier that starts from a `ladder pretrain` run (`ladder finetune`, or finetune.from).

A run config with a `finetune:` section names the pretrained run folder in finetune.from. The fine-tuned
model is the pretrained one's family (model.name) with its architecture: every model field is copied from
the pretrained run's config.yaml except those a classifier sets for itself (the model class's finetune_fields:
pooling, dropout;
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
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from modelladder.config import RunConfig, validate_run
from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.models.modes import linear_names, with_lora
from modelladder.models.pickle_free import refuse_pickled_weights
from modelladder.registry import MODELS, PRETRAIN_TASKS, TASKS, load_object, lookup
from modelladder.runs import read_json, read_run_config


def image_objectives() -> list[str]:
    """The tasks whose model's encoder a classifier reuses (tasks/base.py pretrains_encoder; imports every task
    module: for checks of a pretrained run and error messages)."""
    return [name for name, path in TASKS.items() if load_object(path).pretrains_encoder]


def pretrained_config(run_dir: str | Path, field: str = "run folder") -> RunConfig:
    """The config of a finished `ladder pretrain` run folder; an InputError naming `field` and the file if
    `run_dir` is not one (or holds pickled weights: models/pickle_free.py)."""
    refuse_pickled_weights(run_dir, field)
    cfg = read_run_config(run_dir, field)
    run_dir = Path(run_dir)
    kind = read_json(run_dir / "preprocess.json").get("kind")
    if kind not in ("corpus", "image"):
        raise InputError(f"{field} {run_dir} is not a `ladder pretrain` run (its preprocess.json kind is not "
                         "'corpus' or 'image')")
    if kind == "image" and not lookup(TASKS, "task.name", cfg.task.name).pretrains_encoder:
        raise InputError(f"{field} {run_dir} is an image run with task.name '{cfg.task.name}': a pretrained "
                         f"image encoder comes from task.name {' or '.join(map(repr, image_objectives()))}")
    for name in ("model.safetensors", "tokenizer.json") if kind == "corpus" else ("model.safetensors",):
        if not (run_dir / name).is_file():
            raise InputError(f"{run_dir / name} is missing: the run folder has no trained model "
                             "(did pretraining finish?)")
    return cfg


def resolve(cfg: RunConfig) -> RunConfig:
    """`cfg` with the pretrained run's architecture filled in (finetune.from: a folder); InputError for a model
    field that disagrees with it, or for a pretrained run that cannot serve as this model's backbone."""
    source = Path(cfg.finetune.from_).expanduser()
    pretrained = pretrained_config(source, "finetune.from")
    if cfg.task.name in PRETRAIN_TASKS or lookup(TASKS, "task.name", cfg.task.name).pretrains_encoder:
        raise InputError(f"task.name '{cfg.task.name}' is a pretraining objective: fine-tuning trains a task with a "
                         "head such as 'classification' (to pretrain further, use ladder pretrain)")
    where = source / "config.yaml"
    if cfg.model.name != pretrained.model.name:
        raise InputError(f"model.name '{cfg.model.name}' differs from the pretrained run's '{pretrained.model.name}' "
                         f"({where}): a fine-tuned model keeps the pretrained architecture; leave model.name out "
                         "or set it to the pretrained one")
    own_fields = lookup(MODELS, "model.name", cfg.model.name).finetune_fields
    if not own_fields:
        allowed = sorted(name for name, path in MODELS.items() if load_object(path).finetune_fields)
        raise InputError(f"model.name '{cfg.model.name}' cannot be fine-tuned from a pretrained run: "
                         f"allowed are {allowed}")
    own = cfg.model.model_dump(mode="json", exclude_unset=True)
    architecture = pretrained.model.model_dump(mode="json")
    keep = own_fields - _position_fields(pretrained)
    problems = [f"model.{key} {value!r} differs from the pretrained run's {architecture[key]!r} ({where}): "
                f"leave it out to fine-tune the pretrained architecture{_hint(key, pretrained)}"
                for key, value in own.items() if key not in keep and value != architecture[key]]
    if problems:
        raise InputError(problems)
    raw = cfg.model_dump(mode="json")
    raw["model"] = {**architecture, **{key: value for key, value in own.items() if key in keep}}
    if "head" in own_fields:  # an image encoder trades its pretraining head (decoder, projection) for a classifier
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


class Transfer:
    """What a fine-tuned run takes from its pretrained run, in the order build_training (verbs/build.py) needs it."""

    def __init__(self, cfg: RunConfig):
        self.cfg = resolve(cfg)
        self.source = Path(self.cfg.finetune.from_)
        self.lr_scales: dict[str, float] = {}  # parameter-name prefix -> learning-rate factor (backbone_lr)

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
            self.lr_scales = {f"{part}.": backbone_lr / self.cfg.train.optimizer.lr for part in model.backbone_parts}
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
        from peft import PeftModel

        from modelladder.train.checkpoint import save_weights

        for part in model.backbone_parts:
            if isinstance(getattr(model, part), PeftModel):
                setattr(model, part, getattr(model, part).merge_and_unload())
        path = run_dir / "model.safetensors"
        with safe_open(path, "pt") as f:
            metadata = f.metadata()
        save_weights(path, model, {**(metadata or {}), "lora": "merged"})
        return model
