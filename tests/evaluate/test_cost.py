"""Cost accounting: training FLOPs counted exactly and without side effects, and measure_training's
time, CPU, memory and energy figures."""

from __future__ import annotations

import ctypes
import gc
import time

import numpy as np
import pytest
import torch

from modelladder.data.batches import TokenSequences
from modelladder.errors import InputError
from modelladder.evaluate.cost import (
    COST_COLUMNS,
    TrainingCost,
    inference_latency,
    measure_training,
    one_batch,
    one_thread,
    rapl_energy_uj,
    training_flops,
)
from modelladder.models.build import build_model, count_nodes, count_params
from modelladder.models.classic import RandomForestConfig
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


def release_freed_memory() -> None:
    """Free earlier tests' garbage and hand it back to the OS now: glibc returns freed heap memory only at a later
    free (a trim), which inside the measured block would offset the 64 MiB it allocates (seen on an xdist worker,
    after ~400 tests: peak 0.01 MiB)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def test_measure_training_records_time_cpu_memory_and_energy():
    release_freed_memory()
    with measure_training() as cost:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        start = time.process_time()
        while time.process_time() - start < 0.2:
            block[::4096] += 1.0
        time.sleep(0.05)  # the sampler reads the resident memory every 10 ms
    record = cost.record()
    assert list(record) == ["wall_s", "cpu_s", "peak_mem_mb", "peak_gpu_mem_mb", "energy_cpu_kwh",
                            "energy_modelled_kwh", "energy_kwh", "co2_kg", "co2_country"]
    assert record["wall_s"] >= 0.25 and record["cpu_s"] >= 0.2
    assert 60 <= record["peak_mem_mb"] < 1024
    assert record["peak_gpu_mem_mb"] is None  # no CUDA here
    # measured only where RAPL is readable; the modelled part is always there; energy is their sum
    assert (record["energy_cpu_kwh"] is None) == (rapl_energy_uj() is None)
    assert record["energy_kwh"] == pytest.approx((record["energy_cpu_kwh"] or 0) + record["energy_modelled_kwh"])
    assert record["energy_kwh"] > 0 and record["co2_kg"] > 0 and record["co2_country"] == "USA"
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


def test_a_france_grid_is_named_in_the_record():
    with measure_training(country="FRA") as cost:
        time.sleep(0.02)
    assert cost.co2_country == "FRA" and cost.co2_kg > 0


def test_costs_of_a_resumed_run_add_up():
    first = {"wall_s": 2.0, "cpu_s": 3.0, "peak_mem_mb": 500.0, "peak_gpu_mem_mb": None, "energy_cpu_kwh": None,
             "energy_modelled_kwh": 1e-5, "energy_kwh": 1e-5, "co2_kg": 4e-6}
    with measure_training(earlier=first) as cost:
        time.sleep(0.02)
        so_far = cost.so_far()
    assert so_far.wall_s >= 2.02 and cost.wall_s >= so_far.wall_s
    assert cost.cpu_s >= 3.0 and cost.energy_kwh > 1e-5 and cost.co2_kg > 4e-6
    assert cost.peak_mem_mb == 500.0  # the larger peak of the two segments
    assert TrainingCost(wall_s=1.0).plus(None).wall_s == 1.0


def test_one_thread_sets_and_restores_the_thread_counts():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
            assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_latency_record_says_how_it_was_measured():
    X = np.random.default_rng(0).normal(size=(500, 64)).astype(np.float32)
    model = mlp([32]).eval()

    @torch.no_grad()
    def predict(rows):
        return model(torch.from_numpy(rows)).numpy()

    record = inference_latency(predict, X, model=model)
    assert set(record) == {"latency_ms_p50", "latency_ms_p95", "throughput_per_s", "batch_size",
                           "throughput_batch_size", "threads", "calls", "cpu_ms_p50"}
    assert record["batch_size"] == 1 and record["throughput_batch_size"] == 256 and record["threads"] == 1
    assert 30 <= record["calls"] <= 300
    assert 0 < record["latency_ms_p50"] <= record["latency_ms_p95"] and record["throughput_per_s"] > 0
    assert inference_latency(predict, X[:0]) == {}


def test_a_random_forest_is_timed_with_one_job_and_given_its_setting_back():
    X = np.random.default_rng(0).normal(size=(60, 1, 4, 4)).astype(np.float32)
    y = np.arange(60) % 2
    rung = build_model(RandomForestConfig(n_estimators=5, n_jobs=2), (1, 4, 4), 2, seed=0).fit(X, y)
    seen = []

    def predict(rows):
        seen.append(rung.estimator_.n_jobs)
        return rung.predict_proba(rows)

    inference_latency(predict, X, model=rung)
    assert set(seen) == {1} and torch.get_num_threads() >= 1
    assert rung.estimator_.n_jobs == 2


def test_trees_have_nodes_and_no_params():
    X = np.random.default_rng(0).normal(size=(60, 1, 4, 4)).astype(np.float32)
    y = np.arange(60) % 2
    rung = build_model(RandomForestConfig(n_estimators=5, max_depth=1), (1, 4, 4), 2, seed=0).fit(X, y)
    assert count_params(rung) is None and count_nodes(rung) == 5 * 3
    assert count_nodes(mlp([8])) is None
    assert COST_COLUMNS[:2] == ["params", "nodes"] and "batch_ms_per_sample" not in COST_COLUMNS


def test_cost_country_is_validated_and_reaches_every_rung():
    from modelladder.config import validate_ladder, validate_run

    with pytest.raises(InputError) as err:
        validate_run({"model": {"name": "mlp"}, "cost": {"country": "France"}})
    assert err.value.problems == [("cost.country must be an ISO 3166 alpha-3 code that codecarbon knows (such as "
                                   "'USA', 'FRA', 'DEU'), got 'France'")]
    ladder = validate_ladder({"cost": {"country": "FRA"}, "rungs": [{"name": "a", "model": {"name": "logreg"}}]})
    from modelladder.config import rung_configs

    assert [cfg.cost.country for cfg in rung_configs(ladder)] == ["FRA"]
