"""kill -9 `ladder train` at random points, mid-checkpoint-write included, resume each time with
`ladder train --resume`, and end with bitwise the weights and metrics of the run never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from modelladder.train.checkpoint import latest_checkpoint, load_checkpoint
from tests.conftest import REPO

SEED = 20251123  # the kill points are drawn from this seed: a failure names them and can be replayed
CHECKPOINT_EVERY = 4
CONFIG = {"name": "digits-mlp", "seed": 3, "data": {"dataset": "digits", "limit": 500},
          "model": {"name": "mlp", "hidden": [32], "dropout": 0.2},
          "train": {"epochs": 4, "batch_size": 32, "checkpoint_every": CHECKPOINT_EVERY, "log_every": 3,
                    "progress": False, "threads": 1, "early_stopping": {"metric": "val_loss", "patience": 10}}}


def train(cwd: Path, spec: str | None, *, resume: bool, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tests.hardening.killer", spec or "none", "train", str(cwd / "run.yaml"),
               "--runs-dir", str(cwd / "runs"), *(["--resume"] if resume else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    if not wait:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def kill_points(rng: random.Random, total: int, epoch_ends: list[int]) -> list[str]:
    """Five points inside the run, in the order the run reaches them (each resume starts before the next)."""
    checkpoints = sorted({*range(CHECKPOINT_EVERY, total + 1, CHECKPOINT_EVERY), *epoch_ends})
    step = rng.randrange(CHECKPOINT_EVERY + 1, total // 3)
    later = [c for c in checkpoints if step < c < total]
    write_a, write_b, renamed = sorted(rng.choices(later, k=3))
    return [f"step:{step}", f"write:{write_a}:optimizer.safetensors", f"write:{write_b}:state.json",
            f"rename:{renamed}", "weights"]


def records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "samples_per_s"} for line in lines]


@pytest.mark.slow  # eight `ladder train` processes: ~1 min on a quiet 2-core machine
def test_kill_9_at_random_points_then_resume_gives_bitwise_the_same_run(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for folder in (reference, interrupted):
        folder.mkdir()
        (folder / "run.yaml").write_text(yaml.safe_dump(CONFIG))
    done = train(reference, None, resume=False)
    assert done.returncode == 0, done.stderr
    ref_dir = reference / "runs" / "digits-mlp"
    history = records(ref_dir)
    total = max(r["step"] for r in history)
    epoch_ends = [r["step"] for r in history if r.get("split") == "val"]
    points = kill_points(random.Random(SEED), total, epoch_ends)

    run_dir = interrupted / "runs" / "digits-mlp"
    for i, spec in enumerate(points):
        if i == 4:  # one kill from outside, wherever the slowed-down run happens to be
            killed_from_outside(interrupted, run_dir, random.Random(SEED + 1))
        died = train(interrupted, spec, resume=i > 0)
        assert died.returncode == -signal.SIGKILL, f"{spec}: {died.returncode} {died.stderr}"
        if spec.startswith(("write", "rename")):  # the half-made checkpoint is not one the resume can see
            target = f"step-{int(spec.split(':')[1]):06d}"
            assert latest_checkpoint(run_dir / "checkpoints").name < target
            assert any(p.name.startswith(f".tmp-{target}") for p in (run_dir / "checkpoints").iterdir())
    finished = train(interrupted, None, resume=True)
    assert finished.returncode == 0, finished.stderr

    assert (run_dir / "model.safetensors").read_bytes() == (ref_dir / "model.safetensors").read_bytes(), points
    assert records(run_dir) == history, points
    assert (json.loads((run_dir / "eval_test.json").read_text())["metrics"]
            == json.loads((ref_dir / "eval_test.json").read_text())["metrics"])


def killed_from_outside(cwd: Path, run_dir: Path, rng: random.Random) -> None:
    """SIGKILL from another process at a random moment after the resumed run logged a new line."""
    lines = len((run_dir / "metrics.jsonl").read_text().splitlines())
    proc = train(cwd, "slow:0.05", resume=True, wait=False)
    deadline = time.monotonic() + 120
    while len((run_dir / "metrics.jsonl").read_text().splitlines()) <= lines and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    load_checkpoint(latest_checkpoint(run_dir / "checkpoints"), *_model_and_optimizer(run_dir))


def _model_and_optimizer(run_dir: Path):
    """A model and optimizer of the run's shapes, to check that the newest checkpoint loads whole."""
    from modelladder.config import validate_run
    from modelladder.models.build import build_model
    from modelladder.runs import read_json
    from modelladder.train.optim import build_optimizer

    cfg = validate_run(yaml.safe_load((run_dir / "config.yaml").read_text()))
    shape = tuple(read_json(run_dir / "preprocess.json")["input_shape"])
    model = build_model(cfg.model, shape, 10, seed=0)
    return model, build_optimizer(model, cfg.train.optimizer)
