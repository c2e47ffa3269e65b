"""What a training run carries from step to step: where it is (LoopState, the part of a checkpoint that is not
tensors or random states) and what it returns (FitResult)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class FitResult:
    history: list[dict]  # one record per epoch: train_loss, lr, val_<metric> ...
    steps: int
    epochs: int  # completed epochs
    train_seconds: float
    stopped_early: bool
    best: dict | None  # the early-stopping best: metric, value, epoch, step
    # text: examples trained per padded length, over the whole run (evaluate/cost.py text_training_flops)
    examples_by_length: dict[int, int] = field(default_factory=dict)
    stopped: str | None = None  # "time_limit" when train.max_seconds ended it before its planned steps


@dataclass
class LoopState:
    """Where a run is. A run is fully described by this, the weights, the optimizer and the random states: a
    checkpoint saves exactly that, so a resumed run ends bitwise where the uninterrupted run ends."""

    lr: float  # the learning rate of the last step (the schedule's value)
    step: int = 0
    epoch: int = 0  # completed epochs
    position: int = 0  # batches done in this epoch
    pending: list[Tensor] = field(default_factory=list)  # detached losses not yet added to the sums below
    window: list = field(default_factory=lambda: [0.0, 0])  # loss sum and steps since the last train record
    epoch_loss: list = field(default_factory=lambda: [0.0, 0])  # loss sum and steps in this epoch
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0  # spent before this process took the run over (resume)
    examples_by_length: dict[int, int] = field(default_factory=dict)  # text batches: examples per padded length

    def count_examples(self, padded_length: int | None, examples: int) -> None:
        """A batch of `examples` padded to `padded_length` tokens was trained (None: not a text batch)."""
        if padded_length is not None:
            self.examples_by_length[padded_length] = self.examples_by_length.get(padded_length, 0) + examples

    def to_checkpoint(self, pending: list[float]) -> dict:
        """The JSON part of a checkpoint (state.json) that this state writes; `pending`: the losses as floats."""
        return {"step": self.step, "epoch": self.epoch, "position": self.position, "lr": self.lr,
                "losses": {"pending": pending, "window": self.window, "epoch": self.epoch_loss},
                "history": self.history, "examples_by_length": self.examples_by_length}

    @classmethod
    def from_checkpoint(cls, state: dict, pending: list[Tensor]) -> LoopState:
        losses = state["losses"]
        return cls(lr=state["lr"], step=state["step"], epoch=state["epoch"], position=state["position"],
                   pending=pending, window=losses["window"], epoch_loss=losses["epoch"], history=state["history"],
                   train_seconds=state["train_seconds"],
                   examples_by_length={int(k): v for k, v in state.get("examples_by_length", {}).items()})
