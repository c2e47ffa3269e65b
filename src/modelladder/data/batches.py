"""Where the loop's batches come from: dense features held as one tensor, token sequences, or
random windows of a token stream (language-model pretraining).

Both sources hand out an epoch as a list of index tensors drawn from one seeded generator, so a
batch is fully described by (seed, epoch, position) and a resumed run sees the same batches. Text
batches are length-bucketed: examples are shuffled, cut into chunks of `BUCKET` batches, sorted by
length inside each chunk and split into batches whose order is shuffled again, so a batch pads to
the length of its own longest sequence and short texts don't pay for long ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

BUCKET = 50  # batches per sorting chunk: larger pads less, smaller keeps more randomness


class TokenSequences:
    """Ragged token-id sequences held as one flat int64 tensor plus offsets (no per-text tensors)."""

    def __init__(self, sequences: Sequence[np.ndarray], pad_id: int):
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        if len(lengths) and lengths.min() < 1:
            raise ValueError("every token sequence needs at least one token")
        self.lengths = torch.from_numpy(lengths)
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
        flat = np.concatenate(sequences).astype(np.int64) if len(sequences) else np.zeros(0, np.int64)
        self.ids = torch.from_numpy(flat)
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """(ids (B, L), mask (B, L)) for the examples `idx`, padded to their longest; mask is True on tokens."""
        lengths = self.lengths[idx]
        positions = torch.arange(int(lengths.max()) if len(idx) else 1)  # an empty (DP Poisson) batch: (0, 1)
        mask = positions[None, :] < lengths[:, None]
        where = (self.offsets[idx][:, None] + positions[None, :]).clamp_(max=len(self.ids) - 1)
        return self.ids[where].masked_fill_(~mask, self.pad_id), mask


class TokenWindows:
    """A token stream (often a memory-mapped uint16 / uint32 file, so it need not fit in memory) read as
    windows of `context` + 1 tokens: the inputs and, shifted by one, the next-token targets.

    An epoch is as many windows as the stream holds without overlap; training draws their starts at
    random (as nanoGPT does), evaluation reads the non-overlapping windows in order.
    """

    def __init__(self, tokens: np.ndarray, context: int):
        if len(tokens) < context + 1:
            raise ValueError(f"a token stream of {len(tokens)} tokens is shorter than one window ({context} + 1)")
        self.tokens, self.context = tokens, context

    def __len__(self) -> int:
        return (len(self.tokens) - 1) // self.context

    def take(self, starts: Tensor) -> tuple[Tensor, Tensor]:
        rows = starts.numpy()[:, None] + np.arange(self.context + 1)
        windows = torch.from_numpy(self.tokens[rows].astype(np.int64))
        return windows[:, :-1], windows[:, 1:]


def make_source(X, y: np.ndarray | None, target_dtype: torch.dtype, device: torch.device):
    """The batch source for features `X`: TokenSequences -> TokenSource, TokenWindows -> WindowSource,
    an array -> DenseSource."""
    if isinstance(X, TokenSequences):
        return TokenSource(X, y, target_dtype, device)
    if isinstance(X, TokenWindows):
        return WindowSource(X, device)
    return DenseSource(X, y, target_dtype, device)


def _targets(y: np.ndarray | None, target_dtype: torch.dtype, device: torch.device) -> Tensor | None:
    if y is None:
        return None
    return torch.from_numpy(np.require(y, requirements=["C", "W"])).to(device, target_dtype)


class DenseSource:
    """Features (N, ...) as one float32 tensor on the device; a batch is an index_select."""

    def __init__(self, X: np.ndarray, y: np.ndarray | None, target_dtype: torch.dtype, device: torch.device):
        # from_numpy shares memory on CPU; np.require copies only read-only or non-contiguous arrays
        self.X = torch.from_numpy(np.require(X, np.float32, ["C", "W"])).to(device)
        self.y = _targets(y, target_dtype, device)
        self.device = device

    def __len__(self) -> int:
        return len(self.X)

    def epoch(self, generator: torch.Generator, batch_size: int) -> list[Tensor]:
        return list(torch.randperm(len(self.X), generator=generator).to(self.device).split(batch_size))

    def in_order(self, batch_size: int) -> list[Tensor]:
        return list(torch.arange(len(self.X), device=self.device).split(batch_size))

    def take(self, idx: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.X.index_select(0, idx), None if self.y is None else self.y.index_select(0, idx)

    def padded_length(self, idx: Tensor) -> None:
        return None  # not a text batch


class TokenSource:
    """Token sequences kept on the host; each batch is padded there and moved to the device."""

    def __init__(self, X: TokenSequences, y: np.ndarray | None, target_dtype: torch.dtype, device: torch.device):
        self.X, self.device = X, device
        self.y = _targets(y, target_dtype, torch.device("cpu"))

    def __len__(self) -> int:
        return len(self.X)

    def epoch(self, generator: torch.Generator, batch_size: int) -> list[Tensor]:
        order = torch.randperm(len(self.X), generator=generator)
        batches = []
        for chunk in order.split(batch_size * BUCKET):
            by_length = chunk[torch.argsort(self.X.lengths[chunk], stable=True)]
            batches.extend(by_length.split(batch_size))
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def in_order(self, batch_size: int) -> list[Tensor]:
        """Every example once, sorted by length (callers put results back with `unsort`)."""
        return list(torch.argsort(self.X.lengths, stable=True).split(batch_size))

    def padded_length(self, idx: Tensor) -> int | None:
        """The length the batch `idx` is padded to (what its FLOPs depend on); None for an empty batch."""
        return int(self.X.lengths[idx].max()) if len(idx) else None

    def take(self, idx: Tensor) -> tuple[tuple[Tensor, Tensor], Tensor | None]:
        ids, mask = self.X.take(idx)
        x = (ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True))
        return x, None if self.y is None else self.y[idx].to(self.device, non_blocking=True)


class WindowSource:
    """Windows of a token stream: x is (B, context) token ids, y the same shifted by one token."""

    def __init__(self, X: TokenWindows, device: torch.device):
        self.X, self.device = X, device

    def __len__(self) -> int:
        return len(self.X)

    def epoch(self, generator: torch.Generator, batch_size: int) -> list[Tensor]:
        last_start = len(self.X.tokens) - self.X.context - 1
        return list(torch.randint(0, last_start + 1, (len(self.X),), generator=generator).split(batch_size))

    def in_order(self, batch_size: int) -> list[Tensor]:
        return list((torch.arange(len(self.X)) * self.X.context).split(batch_size))

    def padded_length(self, starts: Tensor) -> None:
        return None  # windows all have the context's length: not counted per length

    def take(self, starts: Tensor) -> tuple[Tensor, Tensor]:
        x, y = self.X.take(starts)
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def unsort(batches: list[Tensor], outputs: list[Tensor]) -> Tensor:
    """Outputs of `in_order` batches concatenated back into example order."""
    order = torch.cat(batches).to(outputs[0].device)
    out = torch.cat(outputs)
    result = torch.empty_like(out)
    result[order] = out
    return result
