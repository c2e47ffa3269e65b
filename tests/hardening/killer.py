"""`python -m tests.hardening.killer SPEC ladder-args...`: `ladder train` that SIGKILLs itself at one point.

SPEC is one of
  step:N            before the optimizer step that follows step N
  write:N:FILE      halfway through writing FILE of checkpoint step-N (the bytes before the kill are on disk)
  rename:N          after checkpoint step-N is complete in its temporary folder, before the rename
  weights           halfway through writing the final model.safetensors
  slow:S            no kill: sleep S seconds before each step, so that a kill from outside lands mid-run
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from modelladder import cli
from modelladder.train import checkpoint, loop


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def half_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    die()


def install(spec: str) -> None:
    kind, *args = spec.split(":")
    real_step, real_write, real_replace = loop._Loop._train_step, checkpoint._write_file, os.replace

    def step(self, x, y):
        if kind == "step" and self.s.step == int(args[0]):
            die()
        if kind == "slow":
            time.sleep(float(args[0]))
        return real_step(self, x, y)

    def write(path: Path, data: bytes, atomic: bool = True) -> None:
        if kind == "write" and path.parent.name.startswith(f".tmp-step-{int(args[0]):06d}") and path.name == args[1]:
            half_write(path, data)
        if kind == "weights" and path.name == "model.safetensors" and atomic:  # save_weights, not a checkpoint
            half_write(path.with_name(f".tmp-{path.name}-{os.getpid()}"), data)
        real_write(path, data, atomic)

    def replace(src, dst) -> None:
        if kind == "rename" and Path(src).name.startswith(f".tmp-step-{int(args[0]):06d}"):
            die()
        real_replace(src, dst)

    loop._Loop._train_step, checkpoint._write_file, os.replace = step, write, replace


if __name__ == "__main__":
    install(sys.argv[1])
    sys.exit(cli.main(sys.argv[2:]))
