"""Cost accounting: training FLOPs counted exactly and without side effects, and measure_training's
time, CPU, memory and energy figures."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from modelladder.data.batches import TokenSequences
from modelladder.errors import InputError
from modelladder.evaluate.cost import measure_training, one_batch, training_flops
from modelladder.models.build import count_params
from modelladder.models.mlp import MLP, MLPConfig
from modelladder.tasks.classification import Classification

B, IN, OUT = 16, 64, 10


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, IN, generator=g), torch.randint(0, OUT, (B,), generator=g)


def mlp(hidden: list[int], **kw) -> MLP:
    torch.manual_seed(0)
    return MLP(MLPConfig(hidden=hidden, **kw), (IN,), OUT)


def test_training_flops_are_forward_plus_backward_matmuls_times_steps():
    x, y = batch()
    # forward 2*B*(IN*H + H*OUT); backward: both gradients of the last layer (2 x 2*B*H*OUT), only
    # the weight gradient of the first (its input needs none): 4*B*IN*H + 6*B*H*OUT per step
    h = 32
    assert training_flops(mlp([h]), Classification(OUT), x, y, steps=7) == 7 * (4 * B * IN * h + 6 * B * h * OUT)
    assert training_flops(mlp([h]), Classification(OUT), x, y, steps=0) == 0


def test_a_bigger_mlp_has_more_params_and_flops():
    x, y = batch()
    small, big = mlp([32]), mlp([256, 128])
    assert count_params(big) > count_params(small) > 0
    task = Classification(OUT)
    assert training_flops(big, task, x, y, steps=10) > training_flops(small, task, x, y, steps=10) > 0


def test_counting_flops_leaves_model_gradients_and_random_state_alone():
    model = mlp([32], batchnorm=True, dropout=0.5).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm running stats included
    rng = torch.get_rng_state()
    training_flops(model, Classification(OUT), *batch(), steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training


def test_one_batch_is_a_full_training_batch_for_arrays_and_token_sequences():
    X = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    y = np.arange(100) % 2
    x, yb = one_batch(X, y, Classification(2), batch_size=32)
    assert x.shape == (32, 3) and x.dtype == torch.float32 and yb.dtype == torch.long
    assert all(np.any(np.all(X == row.numpy(), axis=1)) for row in x)  # rows of X with their labels
    assert torch.equal(yb, torch.from_numpy(y)[x[:, 0].long() // 3])
    seqs = TokenSequences([np.arange(1, 2 + i % 7) for i in range(50)], pad_id=0)
    (ids, mask), yb = one_batch(seqs, np.zeros(50, np.int64), Classification(2), batch_size=8)
    assert ids.shape == mask.shape and ids.shape[0] == 8 and len(yb) == 8
    assert (ids[mask] != 0).all() and (ids[~mask] == 0).all()  # tokens under the mask, padding elsewhere


def test_measure_training_records_time_cpu_memory_and_energy():
    with measure_training() as cost:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        start = time.process_time()
        while time.process_time() - start < 0.2:
            block[::4096] += 1.0
        time.sleep(0.05)  # the sampler reads the resident memory every 10 ms
    record = cost.record()
    assert list(record) == ["wall_s", "cpu_s", "peak_mem_mb", "peak_gpu_mem_mb", "energy_kwh", "co2_kg"]
    assert record["wall_s"] >= 0.25 and record["cpu_s"] >= 0.2
    assert 60 <= record["peak_mem_mb"] < 1024
    assert record["peak_gpu_mem_mb"] is None  # no CUDA here
    assert record["energy_kwh"] > 0 and record["co2_kg"] > 0
    # a 2-core machine draws under 1 kW: the estimate is a plausible size
    assert record["energy_kwh"] < 1.0 * record["wall_s"] / 3600


def test_measure_training_still_measures_when_training_raises():
    with pytest.raises(RuntimeError, match="crash"), measure_training() as cost:
        time.sleep(0.05)
        raise RuntimeError("crash")
    assert cost.wall_s >= 0.05 and cost.energy_kwh > 0


def test_unknown_country_is_an_input_error():
    message = r"^country must be an ISO 3166 alpha-3 code .*got 'Atlantis'$"
    with pytest.raises(InputError, match=message), measure_training(country="Atlantis"):
        pass
