"""Recurrent text classifier: Embedding -> LSTM or GRU -> pooling over the real tokens -> Linear head.

The defaults are the tutorial IMDB model, Embedding(10000, 128) -> LSTM(64, dropout=0.2) -> Dense(1, sigmoid),
differing only in parameterisation, not in the functions it can compute:
- the head is Linear(64, 2) under a softmax (130 parameters) where Keras has Dense(1) under a sigmoid (65):
  softmax([a, b])[1] = sigmoid(b - a), so the two heads express the same classifiers;
- PyTorch's LSTM keeps two bias vectors (b_ih and b_hh, of which only the sum matters), 256 parameters
  more than Keras' 49,408: 1,280,000 + 49,664 + 130 = 1,329,794 in all.
Keras' LSTM(dropout=0.2) drops the same input features at every step of a sequence: `input_dropout` does
the same. Padding never reaches the recurrent state: sequences are packed by their lengths (the mask must
be True on a prefix of each row, i.e. right padding). Unlike Keras' pad_sequences, a long text keeps its
first max_length tokens.

RNNLanguageModel is the same embedding and recurrent layers under a vocabulary projection, for `ladder
pretrain` with task causal_lm; the classifier can then start from its weights (verbs/transfer.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modelladder.data.tokenize import (
    PAD_ID,
    TextEncoder,
    TokenizerConfig,
    check_fits,
    train_encoder,
)
from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.schema import Strict


class RNNConfig(Strict):
    name: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    vocab_size: int = Field(10_000, gt=0)  # embedding rows; the tokenizer is trained to at most this many tokens
    max_length: int = Field(200, ge=2)  # tokens per text, [CLS] included
    embed_dim: int = Field(128, gt=0)
    hidden: int = Field(64, gt=0)  # state size per direction
    layers: int = Field(1, gt=0)
    bidirectional: bool = False
    input_dropout: float = Field(0.2, ge=0, lt=1)  # on the embeddings, one mask per sequence for all its steps
    dropout: float = Field(0.0, ge=0, lt=1)  # between stacked layers and on the pooled features
    pooling: Literal["last", "mean", "max"] = "last"  # 'last': each direction's final state
    tokenizer: TokenizerConfig = Field(TokenizerConfig(), validate_default=True)  # checked against vocab_size

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_fits(cls, tokenizer: TokenizerConfig, info: ValidationInfo) -> TokenizerConfig:
        return check_fits(tokenizer, info.data.get("vocab_size"))


class RNN(Network):
    Config = RNNConfig
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.embed_dim": {"choices": [64, 128, 256]},
                    "model.hidden": {"low": 32, "high": 256, "int": True, "log": True},
                    "model.layers": {"low": 1, "high": 2, "int": True}, "model.bidirectional": {"choices": [False, True]},
                    "model.input_dropout": DROPOUT, "model.dropout": DROPOUT}
    input_kind = "text"
    tasks = ("classification", "regression", "causal_lm")  # causal_lm: `ladder pretrain` trains RNNLanguageModel
    # what a pretrained RNNLanguageModel provides (verbs/transfer.py)
    backbone_parts = ("embed", "input_dropout", "rnn")
    finetune_fields = frozenset({"pooling", "dropout", "input_dropout", "max_length"})

    @classmethod
    def problems(cls, cfg) -> list[str]:
        if cfg.task.name == "causal_lm" and cfg.model.bidirectional:
            return ["task.name 'causal_lm' predicts each token from the earlier ones: model.bidirectional must be "
                    "false, got true"]
        return []

    @classmethod
    def language_model(cls, cfg: RNNConfig, base: nn.Module | None = None) -> RNNLanguageModel:
        return RNNLanguageModel(cfg)

    def input_embeddings(self) -> nn.Embedding:
        return self.embed

    def __init__(self, cfg: RNNConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model rnn needs text (input shape ()), got input shape {tuple(input_shape)}")
        self.pooling = cfg.pooling
        self.directions = 2 if cfg.bidirectional else 1
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        self.input_dropout = nn.Dropout1d(cfg.input_dropout)  # on (B, E, L): a feature goes for all steps
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cell(cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                        bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.hidden * self.directions, n_outputs)
        self.frozen = False  # finetune mode 'frozen' (models/modes.py): the backbone stays in eval mode

    def train(self, mode: bool = True) -> RNN:
        super().train(mode)
        if self.frozen:  # a frozen backbone's features must not change with dropout
            for part in self.backbone_parts:
                getattr(self, part).eval()
        return self

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        """(ids (B, L), mask (B, L) True on real tokens) -> logits (B, n_outputs)."""
        ids, mask = x
        lengths = mask.sum(dim=1)
        embedded = self.input_dropout(self.embed(ids).transpose(1, 2)).transpose(1, 2)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        if self.pooling == "last":
            final = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
            pooled = torch.cat(list(final[-self.directions:]), dim=1)  # the top layer, each direction
        else:
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            real = mask.unsqueeze(-1)
            if self.pooling == "mean":
                pooled = (out * real).sum(dim=1) / lengths.unsqueeze(-1)
            else:
                pooled = out.masked_fill(~real, float("-inf")).amax(dim=1)
        return self.head(self.dropout(pooled))

    @staticmethod
    def make_encoder(cfg: RNNConfig, texts) -> TextEncoder:
        """A tokenizer of kind cfg.tokenizer.kind with at most cfg.vocab_size tokens, trained on `texts`."""
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)


class RNNState:
    """What generation carries from one step to the next: the recurrent state after `length` tokens."""

    def __init__(self):
        self.state: Tensor | tuple[Tensor, Tensor] | None = None
        self.length = 0


class RNNLanguageModel(nn.Module):
    """A unidirectional RNN language model (task causal_lm): Embedding -> LSTM or GRU -> Linear over the
    vocabulary, token ids (B, L) -> logits (B, L, vocab) predicting each next token. Its embedding and
    recurrent weights have the names the RNN classifier's have (embed.*, rnn.*), so a classifier can start
    from them; the vocabulary projection (out.*) stays behind. For generation the recurrent state is the cache.
    """

    def __init__(self, cfg: RNNConfig):
        super().__init__()
        if cfg.bidirectional:
            raise InputError("model.bidirectional must be false for an rnn language model: task causal_lm predicts "
                             "each token from the earlier ones only")
        self.max_length = cfg.max_length  # the context
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        self.input_dropout = nn.Dropout1d(cfg.input_dropout)
        cell = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.rnn = cell(cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                        dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, cfg.vocab_size)

    def forward(self, ids: Tensor, cache: RNNState | None = None) -> Tensor:
        """With a cache, `ids` continue the tokens it has seen, and it moves on past them."""
        embedded = self.input_dropout(self.embed(ids).transpose(1, 2)).transpose(1, 2)
        out, state = self.rnn(embedded, None if cache is None else cache.state)
        if cache is not None:
            cache.state, cache.length = state, cache.length + ids.shape[1]
        return self.out(self.dropout(out))

    def new_cache(self, batch: int = 1) -> RNNState:
        return RNNState()
