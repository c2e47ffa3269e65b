"""The rnn rung in a form the ONNX exporter can trace: the same weights and the same outputs, without packing.

models/rnn.py packs each batch by its lengths (pack_padded_sequence), which torch.export cannot trace. Here each
layer and direction runs as its own one-layer, one-direction cell over the padded batch: right padding comes
after every real token, so a forward pass's outputs at real positions do not depend on it; the backward
direction runs on each row reversed within its own length (padding stays at the end) and is reversed back.
Pooling then reads the real positions only, as models/rnn.py does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class UnpackedRNN(nn.Module):
    """(ids (B, L), mask (B, L) True on real tokens) -> logits, equal to `rnn`'s own (in eval mode)."""

    def __init__(self, rnn: nn.Module):
        super().__init__()
        self.embed, self.head, self.pooling = rnn.embed, rnn.head, rnn.pooling
        cell, source = type(rnn.rnn), rnn.rnn
        self.directions = 2 if source.bidirectional else 1
        self.cells = nn.ModuleList()
        for layer in range(source.num_layers):
            for suffix in ("", "_reverse")[: self.directions]:
                one = cell(source.input_size if layer == 0 else source.hidden_size * self.directions,
                           source.hidden_size, batch_first=True)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(one, f"{name}_l0").data = getattr(source, f"{name}_l{layer}{suffix}").data
                self.cells.append(one)

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        ids, mask = x
        lengths = mask.sum(dim=1)
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        # each row's real tokens reversed, its padding left in place; applying it twice restores the order
        flip = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions)
        h = self.embed(ids)
        for layer in range(len(self.cells) // self.directions):
            outs = [self.cells[layer * self.directions](h)[0]]
            if self.directions == 2:
                outs.append(_gather(self.cells[layer * self.directions + 1](_gather(h, flip))[0], flip))
            h = torch.cat(outs, dim=-1)
        real = mask.unsqueeze(-1)
        if self.pooling == "last":
            # forward: the output at the last real token; backward: at the first (its last step)
            size = h.shape[-1] // self.directions
            last = _gather(h[..., :size], (lengths - 1)[:, None].expand(-1, 1)).squeeze(1)
            pooled = torch.cat([last, h[:, 0, size:]], dim=-1) if self.directions == 2 else last
        elif self.pooling == "mean":
            pooled = (h * real).sum(dim=1) / lengths.unsqueeze(-1)
        else:
            pooled = h.masked_fill(~real, float("-inf")).amax(dim=1)
        return self.head(pooled)


def _gather(h: Tensor, index: Tensor) -> Tensor:
    """h (B, L, E) at positions index (B, L') of each row -> (B, L', E)."""
    return h.gather(1, index[..., None].expand(-1, -1, h.shape[-1]))
