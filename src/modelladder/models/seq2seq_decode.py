"""Decoding for the sequence-to-sequence networks: greedy search, beam search with length normalisation, and
`translate`, which turns source strings into target strings through a model, its source tokenizer and its target
vocabulary (the Predictor, `ladder predict` / serve, and task seq2seq's test scoring all call it).

A seq2seq network (models/seq2seq_rnn.py, models/seq2seq_transformer.py) offers, besides its teacher-forced
`forward(x, target_in)` and `max_target_tokens` (the longest output it can write):
- `start(x) -> state`: the encoded source, a dict of tensors whose first dimension is the batch;
- `step(previous, state) -> (logits (B, V), state)`: the next target token's logits after token ids `previous`
  (B,), the state moved on by one token.
Because every state tensor is batch-first, beams are reordered by indexing each with the beams' origins.

Beam search keeps `beam` hypotheses per source ranked by their summed log-probability; a hypothesis that has
ended (</s>) stays in the beam, extended by <pad> at no cost, and the finished hypotheses are ranked at the end by
score / length ** length_penalty (length in tokens, </s> included; 0: no normalisation, 1: the mean log-prob).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from modelladder.data.seq2seq import BOS, EOS, PAD, decode_targets


def reorder(state: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v.index_select(0, index) for k, v in state.items()}


@torch.no_grad()
def greedy(model, x: tuple[Tensor, Tensor], max_length: int) -> Tensor:
    """(B, L) token ids, each row ending in </s> (then <pad>) unless it ran to max_length."""
    state = model.start(x)
    batch = x[0].shape[0]
    previous = torch.full((batch,), BOS, dtype=torch.long, device=x[0].device)
    done = torch.zeros(batch, dtype=torch.bool, device=x[0].device)
    out = []
    for _ in range(max_length):
        logits, state = model.step(previous, state)
        previous = logits.argmax(-1).masked_fill(done, PAD)
        out.append(previous)
        done |= previous == EOS
        if bool(done.all()):
            break
    return torch.stack(out, dim=1)


@torch.no_grad()
def beam_search(model, x: tuple[Tensor, Tensor], max_length: int, beam: int, length_penalty: float = 1.0) -> Tensor:
    """(B, L) token ids: the best of `beam` hypotheses per source (module docstring)."""
    batch, device = x[0].shape[0], x[0].device
    state = reorder(model.start(x), torch.arange(batch, device=device).repeat_interleave(beam))
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # the first step expands one hypothesis, not `beam` copies of it
    previous = torch.full((batch * beam,), BOS, dtype=torch.long, device=device)
    tokens = torch.zeros((batch * beam, 0), dtype=torch.long, device=device)
    for _ in range(max_length):
        logits, state = model.step(previous, state)
        logp = torch.log_softmax(logits.float(), dim=-1)
        ended = (previous == EOS) | (previous == PAD)
        logp[ended] = float("-inf")
        logp[ended, PAD] = 0.0  # an ended hypothesis keeps its score
        vocab = logp.shape[-1]
        top, index = (scores.reshape(-1, 1) + logp).reshape(batch, beam * vocab).topk(beam, dim=1)
        rows = (torch.arange(batch, device=device)[:, None] * beam + index // vocab).reshape(-1)
        previous = (index % vocab).reshape(-1)
        tokens = torch.cat([tokens.index_select(0, rows), previous[:, None]], dim=1)
        state, scores = reorder(state, rows), top
        if bool(((previous == EOS) | (previous == PAD)).all()):
            break
    lengths = (tokens != PAD).sum(dim=1).clamp(min=1).reshape(batch, beam).float()
    best = (scores / lengths ** length_penalty).argmax(dim=1)
    return tokens.reshape(batch, beam, -1)[torch.arange(batch, device=device), best]


def decode_ids(model, x: tuple[Tensor, Tensor], max_length: int, beam: int = 1,
               length_penalty: float = 1.0) -> Tensor:
    if beam == 1:
        return greedy(model, x, max_length)
    return beam_search(model, x, max_length, beam, length_penalty)


def translate(model, texts, encoder, vocab: list[str], *, max_length: int, beam: int = 1,
              length_penalty: float = 1.0, batch_size: int = 256) -> np.ndarray:
    """Target strings (a 1-D object array) for source strings `texts`, in their order; the model is left in its
    mode. Sources are decoded in batches of similar length."""
    from modelladder.data.batches import TokenSequences

    out = np.empty(len(texts), dtype=object)
    if not len(texts):
        return out
    max_length = min(max_length, model.max_target_tokens)
    sequences = TokenSequences(encoder.encode(list(texts)), encoder.pad_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for idx in torch.argsort(sequences.lengths, stable=True).split(batch_size):
            ids, mask = sequences.take(idx)
            found = decode_ids(model, (ids.to(device), mask.to(device)), max_length, beam, length_penalty)
            for i, row in zip(idx.tolist(), found.cpu().tolist()):
                out[i] = decode_targets(row, vocab)
    finally:
        model.train(was_training)
    return out


@torch.no_grad()
def attention_weights(model, x: tuple[Tensor, Tensor], max_length: int) -> tuple[Tensor, Tensor]:
    """(ids (B, L), weights (B, L, S)): greedy decoding with the attention over the S source tokens at each
    output step, for a model whose step records "attention" in its state (an rnn with attention)."""
    max_length = min(max_length, model.max_target_tokens)
    state = model.start(x)
    batch = x[0].shape[0]
    previous = torch.full((batch,), BOS, dtype=torch.long, device=x[0].device)
    ids, weights = [], []
    for _ in range(max_length):
        logits, state = model.step(previous, state)
        previous = logits.argmax(-1)
        ids.append(previous)
        weights.append(state["attention"])
        if bool((torch.stack(ids, 1) == EOS).any(1).all()):
            break
    return torch.stack(ids, 1), torch.stack(weights, 1)
