"""Two CPU processes (gloo) train as the single-process run with the same global batch does, and a run
interrupted under DDP resumes bitwise.

Not bitwise against one process: each rank's gradient is a sum over its half of the batch, and DDP's
all-reduce adds the two halves (2 ranks: a + b, the same on both, no division: the loss carries each
rank's share), while one process sums the whole batch in one matmul. Float addition is not
associative, so the weights differ in the last bits; AdamW (which divides each step by the root of
the squared-gradient average) carries that into ~1e-6 after 42 steps here, hence atol 1e-5 on weights
of size ~0.3 and rtol 1e-5 on the losses.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from modelladder.errors import InputError
from modelladder.train.checkpoint import latest_checkpoint
from tests.distributed.helpers import interrupted_then_resumed, run_config, spawn, train
from tests.train.helpers import records

MLP = run_config({"name": "mlp", "hidden": [32], "dropout": 0.0})
CNN = run_config({"name": "cnn", "channels": [4], "convs_per_block": 1, "batchnorm": False, "dropout": 0.0,
                  "hidden": 0})
DROPOUT = run_config({"name": "mlp", "hidden": [32], "dropout": 0.3}, checkpoint_every=7)
STOP_STEP = 25  # checkpoints at steps 7, 14, 21 (an epoch), 28...: steps 22-25 are trained again



def ddp_jobs(root) -> None:
    """Every rank's work: the runs the tests below compare (one process start-up for all of them)."""
    train(MLP, root / "mlp")
    train(CNN, root / "cnn")
    train(DROPOUT, root / "dropout")
    interrupted_then_resumed(DROPOUT, root / "resumed", STOP_STEP)


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(root / "cache"))
        spawn(ddp_jobs, 2, root)
    return root


def weights(run_dir) -> dict:
    return load_file(run_dir / "model.safetensors")


@pytest.mark.parametrize(("name", "raw"), [("mlp", MLP), ("cnn", CNN)])
def test_two_processes_match_one_with_the_same_global_batch(ddp, tmp_path, name, raw):
    train(raw, tmp_path)
    one, two = weights(tmp_path), weights(ddp / name)
    assert one.keys() == two.keys()
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)
    ours, theirs = records(ddp / name), records(tmp_path)
    assert [(r["split"], r["step"]) for r in ours] == [(r["split"], r["step"]) for r in theirs]
    for mine, single in zip(ours, theirs):
        assert mine.keys() == single.keys()
        for key, value in single.items():
            assert mine[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-5)), (mine, single)


def test_a_run_interrupted_under_ddp_resumes_bitwise(ddp):
    assert (ddp / "resumed" / "model.safetensors").read_bytes() == (ddp / "dropout" / "model.safetensors").read_bytes()
    assert records(ddp / "resumed") == records(ddp / "dropout")
    steps = [r["step"] for r in records(ddp / "resumed") if r["split"] == "train"]
    assert steps == sorted(set(steps))  # rank 0 alone wrote, and the redone steps' lines were dropped


def test_checkpoints_hold_every_ranks_random_state(ddp):
    state = json.loads((latest_checkpoint(ddp / "dropout" / "checkpoints") / "state.json").read_text())
    assert state["world_size"] == 2
    assert len(state["rng_ranks"]) == 1 and state["rng_ranks"][0].keys() == state["rng"].keys()
    assert state["rng_ranks"][0]["torch"] != state["rng"]["torch"]  # rank 1's dropout masks are its own


def test_one_process_refuses_to_resume_a_two_process_checkpoint(ddp, tmp_path):
    shutil.copytree(ddp / "dropout", tmp_path / "run")
    with pytest.raises(InputError, match=r"cannot resume on 1 process\(es\) a checkpoint written by a run on 2: "
                                         r"it holds every process's random state, so resume with 2"):
        train(DROPOUT, tmp_path / "run", resume=True)
