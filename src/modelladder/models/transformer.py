"""Transformer for text, top to bottom: attention, MLP, Block, TransformerBackbone, then the classifier.

TransformerBackbone maps token ids to hidden states: token + learned position embeddings, pre-LayerNorm
blocks (torch's scaled_dot_product_attention, a GELU MLP), a final LayerNorm. With causal=True each
position sees only itself and earlier ones, so a GPT-style decoder is this backbone plus an LM head.
Padding is masked out of every attention, so a text's outputs do not depend on how much its batch pads.
Weights start as in GPT-2 / nanoGPT: normal(0, 0.02), residual projections normal(0, 0.02 / sqrt(2 * depth)).

The classifier Transformer pools the [CLS] token (first in every sequence the tokenizers here produce)
or the mean over real tokens, then applies a Linear head.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn

from modelladder.data.tokenize import TextEncoder, TokenizerConfig, check_fits, train_encoder
from modelladder.errors import InputError
from modelladder.schema import Strict


class TransformerConfig(Strict):
    name: Literal["transformer"] = "transformer"
    vocab_size: int = Field(8192, gt=0)  # embedding rows; the tokenizer is trained to at most this many tokens
    max_length: int = Field(256, ge=2)  # positions, [CLS] included: longer texts are cut at the end
    dim: int = Field(128, gt=0)
    depth: int = Field(2, gt=0)  # blocks
    heads: int = Field(4, gt=0)  # attention heads; must divide dim
    dropout: float = Field(0.1, ge=0, lt=1)  # on embeddings, attention weights and residual branches
    pooling: Literal["cls", "mean"] = "cls"
    tokenizer: TokenizerConfig = Field(TokenizerConfig(kind="bpe"), validate_default=True)  # checked against vocab_size

    @field_validator("heads")
    @classmethod
    def _heads_divide_dim(cls, heads: int, info: ValidationInfo) -> int:
        dim = info.data.get("dim")
        if dim is not None and dim % heads:
            raise ValueError(f"must divide dim ({dim}), got {heads}")
        return heads

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_fits(cls, tokenizer: TokenizerConfig, info: ValidationInfo) -> TokenizerConfig:
        return check_fits(tokenizer, info.data.get("vocab_size"))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None, is_causal: bool) -> Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(batch, length, dim)))


class MLP(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim)
        self.proj = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        x = x + self.attn(self.norm1(x), attn_mask, is_causal)
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module, depth: int) -> None:
    """GPT-2's initialisation for every Linear and Embedding inside `module`."""
    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Embedding)):
            nn.init.normal_(sub.weight, std=0.02)
        if isinstance(sub, nn.Linear) and sub.bias is not None:
            nn.init.zeros_(sub.bias)
    for name, p in module.named_parameters():
        if name.endswith("proj.weight"):  # residual branches: keeps the stream's variance flat with depth
            nn.init.normal_(p, std=0.02 / math.sqrt(2 * depth))


class TransformerBackbone(nn.Module):
    """Token ids (B, L) and an optional mask (B, L), True on real tokens -> hidden states (B, L, dim)."""

    def __init__(self, vocab: int, dim: int, depth: int, heads: int, max_length: int, dropout: float,
                 causal: bool = False):
        super().__init__()
        self.max_length, self.causal = max_length, causal
        self.tokens = nn.Embedding(vocab, dim)
        self.positions = nn.Embedding(max_length, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        init_weights(self, depth)

    def attention_mask(self, mask: Tensor | None, length: int) -> tuple[Tensor | None, bool]:
        """(attn_mask, is_causal) for scaled_dot_product_attention: queries see real keys (earlier ones if causal)."""
        if mask is None:
            return None, self.causal
        allowed = mask[:, None, None, :]  # (B, 1, 1, L): broadcast over heads and queries
        if self.causal:  # sdpa takes a mask or is_causal, not both: fold the triangle into the mask
            allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
        return allowed, False

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        length = ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"a sequence of {length} tokens is longer than max_length ({self.max_length})")
        positions = torch.arange(length, device=ids.device)
        h = self.dropout(self.tokens(ids) + self.positions(positions))
        attn_mask, is_causal = self.attention_mask(mask, length)
        for block in self.blocks:
            h = block(h, attn_mask, is_causal)
        return self.norm(h)


class Transformer(nn.Module):
    Config = TransformerConfig
    family = "neural"
    input_kind = "text"

    def __init__(self, cfg: TransformerConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model transformer needs text (input shape ()), got input shape {tuple(input_shape)}")
        self.pooling = cfg.pooling
        self.backbone = TransformerBackbone(cfg.vocab_size, cfg.dim, cfg.depth, cfg.heads, cfg.max_length,
                                            cfg.dropout)
        self.head = nn.Linear(cfg.dim, n_outputs)
        init_weights(self.head, cfg.depth)

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(ids (B, L), mask (B, L) True on real tokens) -> logits (B, n_outputs)."""
        ids, mask = x
        h = self.backbone(ids, mask)
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            real = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * real).sum(dim=1) / real.sum(dim=1)
        return self.head(pooled)

    @staticmethod
    def make_encoder(cfg: TransformerConfig, texts) -> TextEncoder:
        """A tokenizer of kind cfg.tokenizer.kind with at most cfg.vocab_size tokens, trained on `texts`."""
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)
