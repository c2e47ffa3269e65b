"""Transformer encoder-decoder (task seq2seq, Vaswani et al. 2017), built from the project's Transformer parts
(models/transformer.py): the encoder is a TransformerBackbone over the source tokens (bidirectional, padding
masked); each decoder block is pre-norm causal self-attention (the same SelfAttention), then cross-attention to
the encoder's outputs, then the same MLP. Target positions are learned embeddings; weights start as GPT-2's.

`forward(x, target_in)` is teacher forcing over the whole target at once (causal masking); for decoding
(models/seq2seq_decode.py) `step` runs the decoder over the tokens written so far and returns the last one's
logits: no key/value cache, which costs little for targets of a few dozen symbols.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from modelladder.data.tokenize import TextEncoder, TokenizerConfig, train_encoder
from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.models.transformer import (
    MLP,
    BackboneChecks,
    SelfAttention,
    TransformerBackbone,
    init_weights,
    make_norm,
)
from modelladder.schema import Strict


class Seq2SeqTransformerConfig(BackboneChecks, Strict):
    name: Literal["seq2seq_transformer"] = "seq2seq_transformer"
    vocab_size: int = Field(256, gt=0)  # source embedding rows; the tokenizer is trained to at most this many
    max_length: int = Field(64, ge=2)  # source positions, [CLS] included: longer sources are cut at the end
    max_target_length: int = Field(128, ge=2)  # target positions: the longest output decoding can write
    dim: int = Field(128, gt=0)
    depth: int = Field(2, gt=0)  # encoder blocks
    decoder_depth: int = Field(2, gt=0)
    heads: int = Field(4, gt=0)  # must divide dim
    dropout: float = Field(0.1, ge=0, lt=1)
    activation: Literal["gelu", "relu2"] = "gelu"
    tokenizer: TokenizerConfig = Field(TokenizerConfig(kind="char"), validate_default=True)


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder's outputs; padding of the source masked."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        batch, length, dim = x.shape
        q = self.q(x).view(batch, length, self.heads, dim // self.heads).transpose(1, 2)
        k, v = self.kv(memory).view(batch, memory.shape[1], 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(batch, length, dim)))


class DecoderBlock(nn.Module):
    """Pre-norm: x + causal self-attention, x + cross-attention to the source, x + MLP."""

    def __init__(self, dim: int, heads: int, dropout: float, activation: str):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = make_norm("layer", dim), make_norm("layer", dim), make_norm("layer", dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.cross = CrossAttention(dim, heads, dropout)
        self.mlp = MLP(dim, dropout, activation)

    def forward(self, x: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), None, True)
        x = x + self.cross(self.norm2(x), memory, mask)
        return x + self.mlp(self.norm3(x))


class Seq2SeqTransformer(Network):
    Config = Seq2SeqTransformerConfig
    input_kind = "text"
    tasks = ("seq2seq",)
    records_attention = False  # many heads and layers: no single map over the source to draw
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.dim": {"choices": [128, 256, 384]},
                                               "model.depth": {"low": 2, "high": 6, "int": True},
                                               "model.decoder_depth": {"low": 2, "high": 6, "int": True},
                                               "model.dropout": DROPOUT,
                                               "task.label_smoothing": {"low": 0.0, "high": 0.2}}

    def __init__(self, cfg: Seq2SeqTransformerConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model seq2seq_transformer needs source strings (input shape ()), got "
                             f"{tuple(input_shape)}")
        self.max_target_tokens = cfg.max_target_length
        self.encoder = TransformerBackbone(cfg.vocab_size, cfg.dim, cfg.depth, cfg.heads, cfg.max_length,
                                           cfg.dropout, activation=cfg.activation)
        self.target_embed = nn.Embedding(n_outputs, cfg.dim)
        self.target_positions = nn.Embedding(cfg.max_target_length, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(DecoderBlock(cfg.dim, cfg.heads, cfg.dropout, cfg.activation)
                                    for _ in range(cfg.decoder_depth))
        self.norm = make_norm("layer", cfg.dim)
        self.out = nn.Linear(cfg.dim, n_outputs)
        for part in (self.target_embed, self.target_positions, self.blocks, self.out):
            init_weights(part, cfg.decoder_depth)

    @staticmethod
    def make_encoder(cfg: Seq2SeqTransformerConfig, texts) -> TextEncoder:
        """The source tokenizer (characters by default), trained on the training sources only."""
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)

    def input_embeddings(self) -> nn.Embedding:
        return self.encoder.tokens

    def decode(self, target_in: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """Logits (B, T, V) for each target position given the earlier ones and the encoded source."""
        length = target_in.shape[1]
        if length > self.max_target_tokens:
            raise ValueError(f"a target of {length} tokens is longer than max_target_length ({self.max_target_tokens})")
        positions = torch.arange(length, device=target_in.device)
        h = self.dropout(self.target_embed(target_in) + self.target_positions(positions))
        for block in self.blocks:
            h = block(h, memory, mask)
        return self.out(self.norm(h))

    def forward(self, x: tuple[Tensor, Tensor], target_in: Tensor) -> Tensor:
        """Teacher forcing: (source ids, mask) and the target's previous tokens (B, T) -> logits (B, T, V)."""
        ids, mask = x
        return self.decode(target_in, self.encoder(ids, mask), mask)

    def start(self, x: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        ids, mask = x
        return {"memory": self.encoder(ids, mask), "mask": mask,
                "prefix": torch.zeros((ids.shape[0], 0), dtype=torch.long, device=ids.device)}

    def step(self, previous: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        prefix = torch.cat([state["prefix"], previous[:, None]], dim=1)
        logits = self.decode(prefix, state["memory"], state["mask"])[:, -1]
        return logits, {**state, "prefix": prefix}
