"""The training progress bar: a fit() callback drawing steps, loss, validation metric and speed with rich."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from modelladder.config import TrainConfig
from modelladder.train.state import FitResult


@contextmanager
def progress_bar(cfg: TrainConfig, task):
    """A rich progress bar as a callback when asked for and stderr is a terminal; nothing otherwise."""
    if not (cfg.progress and sys.stderr.isatty()):
        yield []
        return
    bar = ProgressBar(f"val_{task.monitor[0]}")
    try:
        yield [bar]
    finally:
        bar.progress.stop()  # also when training raised


class ProgressBar:
    """Steps done and to go, the latest train loss, validation metric and samples/s (on stderr)."""

    def __init__(self, val_metric: str, console=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.val_metric, self.info = val_metric, {}
        self.progress = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[info]}"), console=console or Console(stderr=True))

    def on_fit_start(self, info: dict) -> None:
        self.progress.start()
        self.bar = self.progress.add_task("train", total=info["total_steps"], completed=info["step"], info="")

    def on_log(self, record: dict) -> None:
        self.info["loss"] = f"loss {record['loss']:.4g}"
        self.info["speed"] = f"{record['samples_per_s']:,.0f} samples/s"
        self._show(record["step"])

    def on_epoch_end(self, record: dict) -> None:
        if self.val_metric in record:
            self.info["val"] = f"{self.val_metric} {record[self.val_metric]:.4g}"
        self._show(record["step"])

    def on_fit_end(self, result: FitResult) -> None:
        self._show(result.steps)
        self.progress.stop()

    def _show(self, step: int) -> None:
        self.progress.update(self.bar, completed=step, info="  ".join(self.info.values()))
