"""`ladder train CONFIG --nproc 2` end to end (two gloo processes through torch's elastic launcher), and
the clean errors (exit status 2, before any process starts) for what DDP cannot do here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from modelladder.cli import main
from modelladder.config import TrainConfig, validate_run
from modelladder.errors import InputError
from modelladder.registry import TASKS, lookup
from modelladder.train.parallel import check
from tests.distributed.helpers import run_config

MLP = run_config({"name": "mlp", "hidden": [32], "dropout": 0.0})


def write_config(tmp_path, raw: dict, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def test_nproc_2_trains_one_run_folder_written_by_rank_0(tmp_path, capsys):
    config = write_config(tmp_path, MLP)
    done = subprocess.run([sys.executable, "-m", "modelladder", "train", str(config), "--nproc", "2",
                           "--runs-dir", str(tmp_path / "runs"), "--name", "two"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["two"]
    assert done.stdout.count("[test, n=360]") == 1  # rank 0 alone prints the result
    run = tmp_path / "runs" / "two"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = [(r["split"], r["step"]) for r in lines]
    assert len(keys) == len(set(keys)) == 10  # 42 steps: 8 train lines and 2 val lines, each written once
    assert json.loads((run / "eval_test.json").read_text())["metrics"]["accuracy"] > 0.8
    # the same run in this one process: the same weights, up to the order of the gradient sums
    assert main(["train", str(config), "--runs-dir", str(tmp_path / "runs1"), "--name", "one"]) == 0
    one, two = load_file(tmp_path / "runs1" / "one" / "model.safetensors"), load_file(run / "model.safetensors")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("change", "message"), [
    ({"model": {"name": "logreg"}}, "model.name 'logreg' is a scikit-learn rung, which trains in one process"),
    ({"train": {**MLP["train"], "batch_size": 4}},
     ("2 processes need at least 2 examples in every batch, but train.batch_size 4 with 1293 training examples "
      "leaves a last batch of 1")),
])
def test_what_ddp_cannot_do_is_refused_before_any_process_starts(tmp_path, capsys, change, message):
    config = write_config(tmp_path, {**MLP, **change})
    assert main(["train", str(config), "--nproc", "2", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_nproc_must_be_positive_and_a_resumed_run_must_exist(tmp_path, capsys):
    config = write_config(tmp_path, MLP)
    assert main(["train", str(config), "--nproc", "0", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "--nproc must be at least 1, got 0" in capsys.readouterr().err
    assert main(["train", str(config), "--nproc", "2", "--resume", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "cannot resume: run folder" in capsys.readouterr().err


def test_tasks_with_their_own_step_and_private_training_stay_in_one_process():
    gan = lookup(TASKS, "task.name", "gan")
    private = validate_run({**MLP, "train": {**MLP["train"], "privacy": {"target_epsilon": 8.0}}}).train
    with pytest.raises(InputError) as err:
        check(gan, private, n_train=1000, world=2)
    assert err.value.problems == [
        (f"this task ({gan.__name__}) brings its own training step, which DistributedDataParallel does not "
         "synchronise: train it in one process (leave out --nproc / torchrun)"),
        ("train.privacy (DP-SGD) clips each example's gradient within one process: train it in one process "
         "(leave out --nproc / torchrun)"),
    ]
    check(lookup(TASKS, "task.name", "classification"), TrainConfig(batch_size=64), n_train=1000, world=2)
