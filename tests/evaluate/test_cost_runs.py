"""Cost accounting across a run: env.json records what costs were measured under, a resumed run reports the
whole run's totals, and text FLOPs are the sum over the batches that were trained."""

from __future__ import annotations

import json

import numpy as np
import torch

from modelladder.config import TrainConfig, validate_run
from modelladder.data.batches import TokenSequences, make_source
from modelladder.data.bundle import DataBundle
from modelladder.evaluate.cost import text_training_flops, training_flops
from modelladder.models.transformer import Transformer, TransformerConfig
from modelladder.tasks.classification import Classification
from modelladder.train.loop import _generator, fit
from modelladder.verbs.train import train_run


def digits_mlp(**train) -> dict:
    return validate_run({"data": {"dataset": "digits"}, "model": {"name": "mlp", "hidden": [32]},
                         "cost": {"country": "DEU"},
                         "train": {"epochs": 3, "batch_size": 64, "progress": False, "threads": 1, **train}})


def test_a_run_writes_env_json_and_its_cost_columns(tmp_path):
    result = train_run(digits_mlp(), tmp_path)
    env = json.loads((tmp_path / "env.json").read_text())["cost"]
    assert env["country"] == "DEU" and env["latency_threads"] == 1 and env["cores"] >= 1
    assert env["cpu_model"] and env["python"] and env["torch"] == torch.__version__
    assert len(env["load_average_start"]) == 3 and len(env["load_average_end"]) == 3
    assert isinstance(env["rapl_readable"], bool)
    assert result["co2_country"] == "DEU" and result["params"] > 0 and result["nodes"] is None
    assert result["latency"]["threads"] == 1 and result["latency"]["throughput_per_s"] > 0


def test_a_resumed_run_reports_the_whole_runs_cost(tmp_path):
    first = train_run(digits_mlp(max_steps=40), tmp_path)
    # the cost kept with the checkpoint the resume continues from: the first segment up to its last step
    kept = json.loads((tmp_path / "checkpoints" / "step-000040" / "cost.json").read_text())
    whole = train_run(digits_mlp(), tmp_path, resume=True)
    assert whole["steps"] > first["steps"]
    for key in ("train_seconds", "wall_s", "cpu_s"):
        assert whole[key] > first[key] >= kept.get(key, 0), key
    for key in ("energy_kwh", "energy_modelled_kwh", "co2_kg"):  # codecarbon's model of 0.5 s is noisy: vs kept
        assert whole[key] > kept[key] > 0, key
    assert whole["peak_mem_mb"] >= kept["peak_mem_mb"]  # the larger of the segments' peaks


def test_text_flops_are_the_sum_over_the_batches_trained(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=120)
    X = TokenSequences([rng.integers(1, 50, size=n) for n in lengths], pad_id=0)
    y = rng.integers(0, 2, size=120)
    data = DataBundle(X, y, X, y, X, y, kind="text", input_shape=(), classes=["a", "b"])
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=300, dim=16, heads=2, depth=1, max_length=32), (), 2)
    task = Classification(2)
    cfg = TrainConfig(epochs=2, batch_size=16, progress=False, threads=1)
    result = fit(model, task, data, cfg, seed=3, run_dir=tmp_path)
    assert sum(result.examples_by_length.values()) == 2 * 120
    source = make_source(X, y, task.target_dtype, torch.device("cpu"))
    batches = [b for epoch in range(2) for b in source.epoch(_generator(3, 0, epoch), 16)]
    expected = sum(training_flops(model, task, *source.take(b), steps=1) for b in batches)
    assert text_training_flops(model, task, X, y, result.examples_by_length) == expected
    # what the first full batch times the steps gave before: not what was trained
    first_full = next(b for b in batches if len(b) == 16)
    assert training_flops(model, task, *source.take(first_full), steps=len(batches)) != expected
