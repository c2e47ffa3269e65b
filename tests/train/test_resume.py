"""THE resume test: a run interrupted at any step and resumed ends bit-for-bit where the uninterrupted
run ends: every weight, every metrics.jsonl record (timing fields aside), the history and model file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelladder.config import EarlyStoppingConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from modelladder.tasks.classification import Classification
from modelladder.train.checkpoint import load_weights
from modelladder.train.loop import fit
from tests.train.helpers import blobs, mlp, records, same_weights

# 300 rows at batch 32: 10 steps per epoch (the last one holds 12 rows), 40 steps in all
CFG = TrainConfig(epochs=4, batch_size=32, log_every=3, progress=False, threads=1, l2=1e-4, grad_clip=1.0,
                  optimizer=OptimizerConfig(name="adamw", lr=0.01, weight_decay=0.01),
                  schedule=ScheduleConfig(name="cosine", warmup_steps=5),
                  early_stopping=EarlyStoppingConfig(metric="val_loss", patience=10))


def data():
    return blobs(n=300, seed=1)


class Interrupt(Exception):
    pass


class StopAt:
    """Raise at `hook` when the step reaches `step`, as a crash there would end the run."""

    def __init__(self, hook: str, step: int):
        self.step = step
        setattr(self, hook, self.check)

    def check(self, arg):
        step = int(arg.name.split("-")[1]) if hasattr(arg, "name") else arg["step"]
        if step == self.step:
            raise Interrupt


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    model = mlp(dropout=0.3)
    result = fit(model, Classification(3), data(), CFG, seed=5, run_dir=run_dir)
    return model, result, run_dir


def assert_same_as(uninterrupted, model, result, run_dir):
    model_ref, result_ref, dir_ref = uninterrupted
    assert same_weights(model, model_ref)
    assert records(run_dir) == records(dir_ref)
    assert result.history == result_ref.history
    assert (result.steps, result.epochs, result.best) == (result_ref.steps, result_ref.epochs, result_ref.best)
    assert (run_dir / "model.safetensors").read_bytes() == (dir_ref / "model.safetensors").read_bytes()
    saved = mlp(dropout=0.3, seed=1)
    load_weights(run_dir / "model.safetensors", saved)
    assert same_weights(saved, model)


@pytest.mark.parametrize(("hook", "step", "checkpoint_every"), [
    ("on_checkpoint", 7, 7),  # mid-epoch, right after its checkpoint
    ("on_checkpoint", 10, None),  # at an epoch end
    ("on_log", 24, 4),  # mid-epoch, 4 steps and two log lines after the last checkpoint (step 20)
    ("on_epoch_end", 30, 6),  # after the epoch's val line, before its checkpoint: steps 25-30 are redone
])
def test_resume_after_a_crash_is_bitwise(uninterrupted, tmp_path, hook, step, checkpoint_every):
    cfg = CFG.model_copy(update={"checkpoint_every": checkpoint_every})
    with pytest.raises(Interrupt):
        fit(mlp(dropout=0.3), Classification(3), data(), cfg, seed=5, run_dir=tmp_path, callbacks=[StopAt(hook, step)])
    model = mlp(dropout=0.3, seed=99)  # resume must not depend on the initial weights
    result = fit(model, Classification(3), data(), cfg, seed=5, run_dir=tmp_path, resume=True)
    assert_same_as(uninterrupted, model, result, tmp_path)


def test_resume_after_max_steps_inside_an_epoch_is_bitwise(tmp_path):
    """max_steps changes the length a cosine schedule spans, so this one uses the per-epoch step schedule."""
    cfg = CFG.model_copy(update={"schedule": ScheduleConfig(name="step", gamma=0.5, warmup_steps=5)})
    reference = mlp(dropout=0.3)
    reference_result = fit(reference, Classification(3), data(), cfg, seed=5, run_dir=tmp_path / "reference")
    first = fit(mlp(dropout=0.3), Classification(3), data(), cfg.model_copy(update={"max_steps": 13}), seed=5,
                run_dir=tmp_path / "run")
    assert first.steps == 13 and first.history[-1]["step"] == 13  # a report for the partial epoch
    model = mlp(dropout=0.3)
    result = fit(model, Classification(3), data(), cfg, seed=5, run_dir=tmp_path / "run", resume=True)
    assert_same_as((reference, reference_result, tmp_path / "reference"), model, result, tmp_path / "run")


def test_resume_after_a_killed_process_is_bitwise(uninterrupted, tmp_path):
    """A real kill: the process dies at step 18 with no cleanup; the last checkpoint is step 15."""
    script = textwrap.dedent(f"""
        import os
        from modelladder.tasks.classification import Classification
        from modelladder.train.loop import fit
        from tests.train.helpers import mlp
        from tests.train.test_resume import CFG, data

        class Kill:
            def on_log(self, record):
                if record["step"] == 18:
                    os._exit(9)

        cfg = CFG.model_copy(update={{"checkpoint_every": 5}})
        fit(mlp(dropout=0.3), Classification(3), data(), cfg, seed=5, run_dir={str(tmp_path)!r}, callbacks=[Kill()])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 9, done.stderr
    assert records(tmp_path)[-1]["step"] == 18  # lines after the checkpoint that resume must drop
    model = mlp(dropout=0.3)
    result = fit(model, Classification(3), data(), CFG.model_copy(update={"checkpoint_every": 5}), seed=5,
                 run_dir=tmp_path, resume=True)
    assert_same_as(uninterrupted, model, result, tmp_path)


def test_resuming_a_finished_run_changes_nothing(uninterrupted, tmp_path):
    fit(mlp(dropout=0.3), Classification(3), data(), CFG, seed=5, run_dir=tmp_path)
    model = mlp(dropout=0.3, seed=3)
    result = fit(model, Classification(3), data(), CFG, seed=5, run_dir=tmp_path, resume=True)
    assert_same_as(uninterrupted, model, result, tmp_path)
