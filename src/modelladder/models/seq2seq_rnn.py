"""Recurrent encoder-decoder (task seq2seq): a (bidirectional) LSTM or GRU reads the source tokens, a
unidirectional one of the same cell writes the target symbols, with or without attention.

- attention none (Sutskever et al. 2014, Cho et al. 2014): the decoder starts from the encoder's final states
  (each direction's, joined and projected by `bridge`) and sees the source through them only;
- bahdanau (additive, Bahdanau et al. 2015): before each step the previous decoder state scores every encoder
  output, v . tanh(W_q h + W_k m); the weighted context joins the input embedding;
- luong (multiplicative "general", Luong et al. 2015): after each step the new state scores the encoder outputs,
  h . W m, and tanh(W_c [context; h]) is what the output layer reads.

`forward(x, target_in)` runs the decoder with teacher forcing (the reference's previous token at every step):
through the same `step` that decoding uses (models/seq2seq_decode.py) for Bahdanau's attention, in one call over
the whole target otherwise (the same function: tests/seq2seq check that the two agree). The attention
of the last step is kept in the state under "attention" (B, S), which the report draws as heat maps.
Padding never reaches the encoder's state (sequences are packed) nor the attention (masked).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modelladder.data.seq2seq import PAD
from modelladder.data.tokenize import PAD_ID, TextEncoder, TokenizerConfig, check_fits, train_encoder
from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.schema import Strict


class Seq2SeqRNNConfig(Strict):
    name: Literal["seq2seq_rnn"] = "seq2seq_rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    attention: Literal["none", "bahdanau", "luong"] = "bahdanau"
    vocab_size: int = Field(256, gt=0)  # source embedding rows; the tokenizer is trained to at most this many
    max_length: int = Field(64, ge=2)  # source tokens, [CLS] included: longer sources are cut at the end
    embed_dim: int = Field(64, gt=0)  # source and target embeddings
    hidden: int = Field(256, gt=0)  # the decoder's state; each encoder direction has hidden / 2 when bidirectional
    layers: int = Field(1, gt=0)  # encoder and decoder alike
    bidirectional: bool = True  # the encoder
    dropout: float = Field(0.2, ge=0, lt=1)  # on embeddings, between layers and before the output layer
    tokenizer: TokenizerConfig = Field(TokenizerConfig(kind="char"), validate_default=True)

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer_fits(cls, tokenizer: TokenizerConfig, info: ValidationInfo) -> TokenizerConfig:
        return check_fits(tokenizer, info.data.get("vocab_size"))


class Seq2SeqRNN(Network):
    Config = Seq2SeqRNNConfig
    input_kind = "text"
    tasks = ("seq2seq",)
    max_target_tokens = 1 << 16  # no position table: decoding may write as many tokens as it is allowed
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.embed_dim": {"choices": [32, 64, 128]},
                                               "model.hidden": {"choices": [128, 256, 512]},
                                               "model.layers": {"low": 1, "high": 2, "int": True},
                                               "model.dropout": DROPOUT, "task.label_smoothing": {"low": 0.0,
                                                                                                  "high": 0.2}}

    def __init__(self, cfg: Seq2SeqRNNConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if tuple(input_shape) != ():
            raise InputError(f"model seq2seq_rnn needs source strings (input shape ()), got {tuple(input_shape)}")
        self.attention, self.lstm, self.layers = cfg.attention, cfg.cell == "lstm", cfg.layers
        self.records_attention = cfg.attention != "none"  # its step keeps the weights (attention.json)
        self.directions = 2 if cfg.bidirectional else 1
        if cfg.hidden % self.directions:
            raise InputError(f"model.hidden must be even for a bidirectional encoder, got {cfg.hidden}")
        cell = nn.LSTM if self.lstm else nn.GRU
        between = cfg.dropout if cfg.layers > 1 else 0.0
        self.source_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=PAD_ID)
        self.encoder = cell(cfg.embed_dim, cfg.hidden // self.directions, num_layers=cfg.layers, batch_first=True,
                            bidirectional=cfg.bidirectional, dropout=between)
        self.bridge = nn.Linear(cfg.hidden, cfg.hidden)  # the encoder's final states -> the decoder's first
        self.target_embed = nn.Embedding(n_outputs, cfg.embed_dim, padding_idx=PAD)
        context = cfg.hidden if cfg.attention == "bahdanau" else 0
        self.decoder = cell(cfg.embed_dim + context, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                            dropout=between)
        if cfg.attention == "bahdanau":
            self.query = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
            self.key = nn.Linear(cfg.hidden, cfg.hidden)
            self.score = nn.Linear(cfg.hidden, 1, bias=False)
        elif cfg.attention == "luong":
            self.key = nn.Linear(cfg.hidden, cfg.hidden, bias=False)
            self.combine = nn.Linear(2 * cfg.hidden, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden * (2 if cfg.attention == "bahdanau" else 1), n_outputs)

    @staticmethod
    def make_encoder(cfg: Seq2SeqRNNConfig, texts) -> TextEncoder:
        """The source tokenizer (characters by default), trained on the training sources only."""
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)

    def input_embeddings(self) -> nn.Embedding:
        return self.source_embed

    # ------------------------------------------------------------ encoder

    def start(self, x: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """The encoded source (ids (B, S), mask (B, S)) as the decoder's first state, batch first."""
        ids, mask = x
        packed = pack_padded_sequence(self.dropout(self.source_embed(ids)), mask.sum(1).cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, final = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        state = {"memory": memory, "mask": mask}
        finals = final if self.lstm else (final,)
        for name, f in zip(("h", "c"), finals):  # (layers * directions, B, H / d) -> (B, layers, H)
            f = f.view(self.layers, self.directions, *f.shape[1:]).permute(2, 0, 1, 3).flatten(2)
            state[name] = torch.tanh(self.bridge(f)) if name == "h" else self.bridge(f)
        if self.attention != "none":  # the encoder outputs' side of the scores, computed once per source
            state["keys"] = self.key(memory)
        state["attention"] = torch.zeros(mask.shape, device=memory.device)
        return state

    # ------------------------------------------------------------ decoder

    def _attend(self, scores: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        weights = scores.masked_fill(~state["mask"], float("-inf")).softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), state["memory"]).squeeze(1), weights

    def step(self, previous: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits (B, V) of the next target token after `previous` (B,), and the state moved on by one token."""
        inputs = self.dropout(self.target_embed(previous))
        h = state["h"].transpose(0, 1).contiguous()
        recurrent = (h, state["c"].transpose(0, 1).contiguous()) if self.lstm else h
        new = dict(state)
        if self.attention == "bahdanau":  # attend with the previous state, read the context as input
            scores = self.score(torch.tanh(self.query(h[-1]).unsqueeze(1) + state["keys"])).squeeze(-1)
            context, new["attention"] = self._attend(scores, state)
            inputs = torch.cat([inputs, context], dim=-1)
        out, recurrent = self.decoder(inputs.unsqueeze(1), recurrent)
        out = out.squeeze(1)
        if self.lstm:
            new["h"], new["c"] = recurrent[0].transpose(0, 1), recurrent[1].transpose(0, 1)
        else:
            new["h"] = recurrent.transpose(0, 1)
        if self.attention == "bahdanau":
            out = torch.cat([out, context], dim=-1)
        elif self.attention == "luong":  # attend with the new state
            scores = torch.bmm(state["keys"], out.unsqueeze(-1)).squeeze(-1)
            context, new["attention"] = self._attend(scores, state)
            out = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))
        return self.out(self.dropout(out)), new

    def forward(self, x: tuple[Tensor, Tensor], target_in: Tensor) -> Tensor:
        """Teacher forcing: (source ids, mask) and the target's previous tokens (B, T) -> logits (B, T, V).
        Bahdanau's attention feeds each step's context into the next, so it runs `step` by step; without it, or
        with Luong's (which reads the state after the step), the decoder runs over all T tokens in one call."""
        state = self.start(x)
        if self.attention == "bahdanau":
            logits = []
            for t in range(target_in.shape[1]):
                step_logits, state = self.step(target_in[:, t], state)
                logits.append(step_logits)
            return torch.stack(logits, dim=1)
        h = state["h"].transpose(0, 1).contiguous()
        recurrent = (h, state["c"].transpose(0, 1).contiguous()) if self.lstm else h
        out, _ = self.decoder(self.dropout(self.target_embed(target_in)), recurrent)
        if self.attention == "luong":
            scores = torch.bmm(out, state["keys"].transpose(1, 2))  # (B, T, S)
            weights = scores.masked_fill(~state["mask"][:, None, :], float("-inf")).softmax(dim=-1)
            out = torch.tanh(self.combine(torch.cat([torch.bmm(weights, state["memory"]), out], dim=-1)))
        return self.out(self.dropout(out))
