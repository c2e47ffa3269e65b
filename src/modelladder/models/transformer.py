"""Transformer for text, top to bottom: rotary positions, attention, MLP, Block, TransformerBackbone, the KV
cache, then the two models on the backbone: the Transformer classifier and the LanguageModel.

TransformerBackbone maps token ids to hidden states: token embeddings plus learned positions (or rotary
positions inside attention), pre-norm blocks (torch's scaled_dot_product_attention, a GELU or ReLU² MLP),
a final norm. With causal=True each position sees only itself and earlier ones: a GPT-style decoder is
this backbone plus an LM head tied to the token embedding (LanguageModel), and generation can reuse the
keys and values of earlier tokens (KVCache). Padding is masked out of every attention, so a text's outputs
do not depend on how much its batch pads. Weights start as in GPT-2 / nanoGPT: normal(0, 0.02), residual
projections normal(0, 0.02 / sqrt(2 * depth)).

The classifier Transformer pools the [CLS] token (first in every sequence the tokenizers here produce), the
mean over real tokens, or the last real token (the one a causal backbone lets see the whole text), then
applies a Linear head. Its backbone has the same construction and parameter names as the LanguageModel's,
so a classifier can start from a pretrained language model's `backbone.*` weights.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator, model_validator
from torch import Tensor, nn

from modelladder.data.tokenize import (
    TextEncoder,
    TokenizerConfig,
    check_fits,
    train_encoder,
)
from modelladder.errors import InputError
from modelladder.models.base import NETWORK_SPACE, Network
from modelladder.models.fused import RMSNorm, relu_squared, rotate
from modelladder.schema import Strict


class BackboneChecks(Strict):
    """The checks every config of a TransformerBackbone (fields dim, heads, vocab_size, tokenizer) shares."""

    @field_validator("heads", check_fields=False)
    @classmethod
    def _heads_divide_dim(cls, heads: int, info: ValidationInfo) -> int:
        dim = info.data.get("dim")
        if dim is not None and dim % heads:
            raise ValueError(f"must divide dim ({dim}), got {heads}")
        return heads

    @field_validator("tokenizer", check_fields=False)
    @classmethod
    def _tokenizer_fits(cls, tokenizer: TokenizerConfig, info: ValidationInfo) -> TokenizerConfig:
        return check_fits(tokenizer, info.data.get("vocab_size"))


class TransformerConfig(BackboneChecks):
    name: Literal["transformer"] = "transformer"
    vocab_size: int = Field(8192, gt=0)  # embedding rows; the tokenizer is trained to at most this many tokens
    max_length: int = Field(256, ge=2)  # positions, [CLS] included: longer texts are cut at the end (LM: the context)
    dim: int = Field(128, gt=0)
    depth: int = Field(2, gt=0)  # blocks
    heads: int = Field(4, gt=0)  # attention heads; must divide dim
    dropout: float = Field(0.1, ge=0, lt=1)  # on embeddings, attention weights and residual branches
    pooling: Literal["cls", "mean", "last"] = "cls"  # the classifier's; 'last' is the last real token
    causal: bool = False  # each position attends only to itself and earlier ones (task causal_lm needs it)
    positions: Literal["learned", "rope"] = "learned"  # a learned embedding per position, or rotary (RoFormer)
    norm: Literal["layer", "rms"] = "layer"  # LayerNorm or RMSNorm, before each block's branches and at the end
    activation: Literal["gelu", "relu2"] = "gelu"  # the MLP's: GELU, or ReLU squared (Primer)
    bias: bool = True  # biases in the Linear layers and LayerNorms
    zero_init: bool = False  # residual projections (attention and MLP outputs) start at zero (modded-nanoGPT)
    tie_head: bool = True  # language model: the output projection is the token embedding (false: its own Linear)
    tokenizer: TokenizerConfig = Field(TokenizerConfig(kind="bpe"), validate_default=True)  # checked against vocab_size


    @model_validator(mode="after")
    def _rope_needs_even_heads(self):
        if self.positions == "rope" and (self.dim // self.heads) % 2:
            raise ValueError(f"positions 'rope' rotates pairs of channels: dim / heads must be even, "
                             f"got {self.dim} / {self.heads}")
        return self


class Rotary(nn.Module):
    """Rotary position embedding: each head's queries and keys are rotated by an angle proportional to
    their position, so attention scores depend on how far apart two tokens are.

    Channel i is paired with channel i + head_dim / 2 (rotate-half, as GPT-NeoX and Llama). The rotation is
    x * cos + roll(x, head_dim / 2) * sin with the sign of the first half folded into the sine table: three
    elementwise ops, applied to the queries and keys together (one call, not two)."""

    def __init__(self, head_dim: int, max_length: int, base: float = 10_000.0):
        super().__init__()
        frequencies = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(max_length, dtype=torch.float64), frequencies)
        sin = angles.sin()
        # not persistent: they are a function of the config, not weights
        self.register_buffer("cos", angles.cos().repeat(1, 2).float(), persistent=False)
        self.register_buffer("sin", torch.cat((-sin, sin), dim=1).float(), persistent=False)

    def forward(self, x: Tensor, start: int) -> Tensor:
        """x (..., L, head_dim) at positions start .. start + L - 1."""
        length = x.shape[-2]
        cos, sin = self.cos[start : start + length], self.sin[start : start + length]
        return rotate(x, cos, sin)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, bias: bool = True):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None, is_causal: bool, rotary: Rotary | None = None,
                cache: KVCache | None = None, layer: int = 0) -> Tensor:
        batch, length, dim = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if rotary is not None:  # queries and keys rotated in one call: (2, B, heads, L, head_dim)
            (q, k), v = rotary(qkv[:2], 0 if cache is None else cache.length), qkv[2]
        else:
            q, k, v = qkv
        if cache is not None:
            k, v = cache.store(layer, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(batch, length, dim)))


class MLP(nn.Module):
    def __init__(self, dim: int, dropout: float, activation: str = "gelu", bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim, bias=bias)
        self.proj = nn.Linear(4 * dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc(x)
        h = F.gelu(h) if self.activation == "gelu" else relu_squared(h)
        return self.dropout(self.proj(h))


def make_norm(kind: str, dim: int, bias: bool = True) -> nn.Module:
    return RMSNorm(dim) if kind == "rms" else nn.LayerNorm(dim, bias=bias)


class Block(nn.Module):
    """Pre-norm: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, dropout: float, norm: str = "layer", activation: str = "gelu",
                 bias: bool = True):
        super().__init__()
        self.norm1 = make_norm(norm, dim, bias)
        self.attn = SelfAttention(dim, heads, dropout, bias)
        self.norm2 = make_norm(norm, dim, bias)
        self.mlp = MLP(dim, dropout, activation, bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False,
                rotary: Rotary | None = None, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.norm1(x), attn_mask, is_causal, rotary, cache, layer)
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module, depth: int, zero_proj: bool = False) -> None:
    """GPT-2's initialisation for every Linear and Embedding inside `module`; with `zero_proj` the residual
    projections start at zero, so every block starts as the identity."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, std=0.02)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)
    for name, p in module.named_parameters():
        if name.endswith("proj.weight"):  # residual branches: keeps the stream's variance flat with depth
            nn.init.zeros_(p) if zero_proj else nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth))


class TransformerBackbone(nn.Module):
    """Token ids (B, L) and an optional mask (B, L), True on real tokens -> hidden states (B, L, dim)."""

    def __init__(self, vocab: int, dim: int, depth: int, heads: int, max_length: int, dropout: float,
                 causal: bool = False, *, positions: str = "learned", norm: str = "layer",
                 activation: str = "gelu", bias: bool = True, zero_init: bool = False):
        super().__init__()
        self.max_length, self.causal, self.heads = max_length, causal, heads
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(max_length, dim) if positions == "learned" else None
        self.rotary = Rotary(dim // heads, max_length) if positions == "rope" else None
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, norm, activation, bias) for _ in range(depth))
        self.norm = make_norm(norm, dim, bias)
        init_weights(self, depth, zero_init)

    @classmethod
    def from_config(cls, cfg: TransformerConfig) -> TransformerBackbone:
        return cls(cfg.vocab_size, cfg.dim, cfg.depth, cfg.heads, cfg.max_length, cfg.dropout, cfg.causal,
                   positions=cfg.positions, norm=cfg.norm, activation=cfg.activation, bias=cfg.bias,
                   zero_init=cfg.zero_init)

    def attention_mask(self, mask: Tensor | None, length: int, start: int = 0) -> tuple[Tensor | None, bool]:
        """(attn_mask, is_causal) for scaled_dot_product_attention: queries see real keys (earlier ones if
        causal); `start` keys are already cached before these `length` queries."""
        if mask is None:
            if start == 0 or not self.causal:
                return None, self.causal
            # queries start .. start + length - 1 see the keys up to their own position
            keys = torch.arange(start + length, device=self.tokens.weight.device)
            return keys[None, :] <= keys[start:, None], False
        allowed = mask[:, None, None, :]  # (B, 1, 1, L): broadcast over heads and queries
        if self.causal:  # sdpa takes a mask or is_causal, not both: fold the triangle into the mask
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        return allowed, False

    def forward(self, ids: Tensor, mask: Tensor | None = None, cache: KVCache | None = None) -> Tensor:
        """With a cache (a causal backbone, no padding), `ids` continue the tokens already in it."""
        length, start = ids.shape[1], 0 if cache is None else cache.length
        if start + length > self.max_length:
            raise ValueError(f"a sequence of {start + length} tokens is longer than max_length ({self.max_length})")
        if cache is not None and (mask is not None or not self.causal):
            raise ValueError("a KV cache needs a causal backbone and sequences without padding")
        h = self.tokens(ids)
        if self.positions is not None:
            h = h + self.positions(torch.arange(start, start + length, device=ids.device))
        h = self.dropout(h)
        attn_mask, is_causal = self.attention_mask(mask, length, start)
        for layer, block in enumerate(self.blocks):
            h = block(h, attn_mask, is_causal, self.rotary, cache, layer)
        if cache is not None:
            cache.length += length
        return self.norm(h)


class KVCache:
    """The keys and values every block computed for the tokens seen so far, so that generating one more
    token costs one position's work: buffers of max_length positions per block, filled left to right."""

    def __init__(self, backbone: TransformerBackbone, batch: int):
        weight = backbone.tokens.weight
        head_dim = weight.shape[1] // backbone.heads
        shape = (len(backbone.blocks), batch, backbone.heads, backbone.max_length, head_dim)
        self.keys = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        self.values = torch.zeros_like(self.keys)
        self.length = 0  # positions filled; the backbone advances it after each forward

    def store(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this forward's keys and values (B, heads, L, head_dim); all the layer's keys and values so far."""
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]


class Transformer(Network):
    Config = TransformerConfig
    # every dim choice is divisible by every heads choice
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "train.optimizer.lr": {"low": 1e-4, "high": 3e-3, "log": True},
                    "model.dim": {"choices": [64, 128, 256]}, "model.depth": {"low": 1, "high": 4, "int": True},
                    "model.heads": {"choices": [2, 4, 8]}, "model.dropout": {"low": 0.0, "high": 0.3}}
    input_kind = "text"
    tasks = ("classification", "regression", "causal_lm", "masked_lm")  # the last two: `ladder pretrain`
    backbone_parts = ("backbone",)  # what a pretrained LanguageModel provides (verbs/transfer.py); the head is new
    finetune_fields = frozenset({"pooling", "dropout", "max_length"})

    @classmethod
    def problems(cls, cfg) -> list[str]:
        causal = cfg.task.name == "causal_lm"
        if cfg.task.name in ("causal_lm", "masked_lm") and cfg.model.causal != causal:
            return [(f"task.name '{cfg.task.name}' needs model.causal {str(causal).lower()}, "
                     f"got {str(cfg.model.causal).lower()}")]
        return []

    @classmethod
    def language_model(cls, cfg: TransformerConfig, base: nn.Module | None = None) -> LanguageModel:
        return LanguageModel(cfg)

    def input_embeddings(self) -> nn.Embedding:
        return self.backbone.tokens

    def __init__(self, cfg: TransformerConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model transformer needs text (input shape ()), got input shape {tuple(input_shape)}")
        if cfg.causal and cfg.pooling == "cls":
            raise InputError("model.pooling 'cls' reads the first token, which sees only itself when model.causal "
                             "is true; use 'last' or 'mean'")
        self.pooling = cfg.pooling
        self.backbone = TransformerBackbone.from_config(cfg)
        self.head = nn.Linear(cfg.dim, n_outputs)
        init_weights(self.head, cfg.depth)
        self.frozen = False  # finetune mode 'frozen' (models/modes.py): the backbone stays in eval mode

    def train(self, mode: bool = True) -> Transformer:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()  # a frozen backbone's features must not change with dropout
        return self

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(ids (B, L), mask (B, L) True on real tokens) -> logits (B, n_outputs)."""
        ids, mask = x
        h = self.backbone(ids, mask)
        if self.pooling == "cls":
            pooled = h[:, 0]
        elif self.pooling == "last":
            pooled = h[torch.arange(h.shape[0], device=h.device), mask.sum(dim=1) - 1]  # shape, not len: traceable
        else:
            real = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * real).sum(dim=1) / real.sum(dim=1)
        return self.head(pooled)

    @staticmethod
    def make_encoder(cfg: TransformerConfig, texts) -> TextEncoder:
        """A tokenizer of kind cfg.tokenizer.kind with at most cfg.vocab_size tokens, trained on `texts`."""
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)


class LanguageModel(nn.Module):
    """The backbone plus an LM head tied to the token embedding: token ids (B, L) -> logits (B, L, vocab).

    With cfg.causal it is a GPT-style decoder (logits at position i predict token i + 1: task causal_lm);
    without, a BERT-style encoder whose logits at masked positions predict the hidden tokens (masked_lm).
    Its weights are the backbone's (`backbone.*`, the names the classifier's backbone has) and, with
    tie_head false, the output projection's (`head.weight`), which a fine-tuned classifier does not take.
    """

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.backbone = TransformerBackbone.from_config(cfg)
        self.max_length = cfg.max_length  # the context
        # untied (cfg.tie_head false): an output projection of its own, `head.weight`, initialised as the embedding
        self.head = None if cfg.tie_head else nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if self.head is not None:
            nn.init.normal_(self.head.weight, std=0.02)

    def forward(self, ids: Tensor, cache: KVCache | None = None) -> Tensor:
        return self.logits(self.backbone(ids, cache=cache))

    def logits(self, hidden: Tensor) -> Tensor:
        """Hidden states (..., dim) -> logits over the vocabulary (..., vocab), through the tied embedding
        or the head."""
        return F.linear(hidden, self.backbone.tokens.weight if self.head is None else self.head.weight)

    def new_cache(self, batch: int = 1) -> KVCache:
        return KVCache(self.backbone, batch)
