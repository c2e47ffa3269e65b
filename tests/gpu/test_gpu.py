"""The tests marked gpu, run by benchmarks/gpu/run.sh on a machine with CUDA (tests/gpu/helpers.py: they skip,
saying why, anywhere else): DDP and FSDP over nccl, bf16 autocast, checkpoint and resume on CUDA, and serving
on CUDA.

With one GPU, the DDP and FSDP runs are one rank each, the loop made to take the DDP / FSDP path anyway
(force_parallel_context): DistributedDataParallel and fully_shard over an nccl group of one. nccl does not
accept two ranks on one GPU ("Duplicate GPU detected"), which test_two_ranks_on_the_gpus_present records.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.gpu.helpers import GPU, force_parallel_context, spawn_cuda

pytestmark = GPU  # the heavier imports sit in the tests: collecting them where they skip stays cheap

STOP_STEP = 25  # DROPOUT checkpoints at steps 7, 14, 21 (an epoch), 28...: steps 22-25 are trained again
CHAR_LM = ["train.max_steps=40", "train.batch_size=16", "train.log_every=10", "train.checkpoint_every=10",
           "train.progress=false", "data.limit=60000", "model.depth=2"]


def digits_run(name: str) -> dict:
    """The digits runs of tests/distributed, on CUDA: mlp, dropout (checkpoints every 7 steps), ddp_bf16, fsdp_bf16."""
    from tests.distributed.helpers import run_config

    mlp = {"name": "mlp", "hidden": [32], "dropout": 0.0}
    return {"ddp": run_config(mlp, device="cuda"),
            "dropout": run_config({**mlp, "dropout": 0.3}, checkpoint_every=7, device="cuda"),
            "ddp_bf16": run_config(mlp, precision="bf16", device="cuda"),
            "fsdp_bf16": run_config(mlp, precision="bf16", distributed={"strategy": "fsdp"}, device="cuda")}[name]


def train(name: str, run_dir, **kwargs) -> None:
    from tests.distributed.helpers import train as train_raw

    train_raw(digits_run(name), run_dir, **kwargs)


def records(run_dir) -> list[dict]:
    from tests.train.helpers import records as read

    return read(run_dir)


def weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def parallel_jobs(root) -> None:
    """Every rank's runs, DDP then FSDP (one process start-up for all of them)."""
    force_parallel_context(root / "contexts.jsonl")
    for name in ("ddp", "ddp_bf16", "fsdp_bf16"):
        train(name, root / name)


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    root = tmp_path_factory.mktemp("nccl")
    spawn_cuda(parallel_jobs, torch.cuda.device_count(), root)
    return root


def test_ddp_and_fsdp_ran_over_nccl(parallel):
    contexts = [json.loads(line) for line in (parallel / "contexts.jsonl").read_text().splitlines()]
    print("contexts:", contexts)
    assert [c["context"] for c in contexts] == ["Context", "Context", "Sharded"]
    assert {c["backend"] for c in contexts} == {"nccl"} and {c["device"][:4] for c in contexts} == {"cuda"}


@pytest.mark.parametrize(("name", "atol"), [("ddp", 1e-5), ("ddp_bf16", 1e-2), ("fsdp_bf16", 1e-2)])
def test_nccl_runs_match_one_cuda_process(parallel, tmp_path, name, atol):
    """bf16: a rank's bf16 matmuls may round differently from the one-process run's, hence 1e-2 on weights ~0.3."""
    train(name, tmp_path)
    one, many = weights(tmp_path / "model.safetensors"), weights(parallel / name / "model.safetensors")
    assert one.keys() == many.keys()
    worst = max((one[k] - many[k]).abs().max().item() for k in one)
    print(f"{name}: largest weight difference against one process {worst:.2e}")
    assert worst <= atol
    assert [(r["split"], r["step"]) for r in records(parallel / name)] == [(r["split"], r["step"])
                                                                           for r in records(tmp_path)]


@pytest.mark.timeout(90)  # should nccl hang instead of refusing, the benchmarks after the tests still run
def test_two_ranks_on_the_gpus_present(tmp_path):
    """Two nccl ranks: one per GPU where there are two; on one GPU nccl may refuse them (a loud skip, saying so)."""
    try:
        spawn_cuda(parallel_jobs_two, 2, tmp_path)
    except Exception as err:  # torch.multiprocessing re-raises a rank's error as its text
        if torch.cuda.device_count() < 2:
            pytest.skip(f"GPU TEST SKIPPED: nccl refused two ranks on one GPU: {str(err).strip().splitlines()[-1]}")
        raise
    assert (tmp_path / "ddp" / "model.safetensors").exists()


def parallel_jobs_two(root) -> None:
    train("ddp", root / "ddp")


def test_bf16_autocast_trains_in_bf16_with_fp32_weights(tmp_path):
    from modelladder.config import validate_run
    from modelladder.models.build import build_model
    from modelladder.train.loop import fit
    from modelladder.verbs.build import load_run_data, make_task

    cfg = validate_run(digits_run("ddp_bf16"))
    data = load_run_data(cfg)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=cfg.seed, task=cfg.task.name)
    seen = set()
    model.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
    result = fit(model, make_task(cfg, data), data, cfg.train, seed=cfg.seed, run_dir=tmp_path)
    losses = [r["train_loss"] for r in result.history]
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 and p.device.type == "cuda" for p in model.parameters())
    assert losses[-1] < losses[0], losses


def test_the_gpu_char_recipe_runs_in_bf16_and_resumes(tmp_path):
    """configs/pretrain/shakespeare_char_gpu.yaml, two blocks for 40 steps: the loss falls; interrupted at step
    20 and resumed, it ends where the whole run does (embedding backward on CUDA adds with atomics, so not
    necessarily bitwise: the largest difference is printed, 1e-3 allowed on weights ~0.02-1)."""
    from benchmarks.gpu.lm import GPU_RECIPE
    from modelladder.config import load_run_config
    from modelladder.runs import prepare
    from modelladder.verbs.pretrain import pretrain_run

    cfg = load_run_config(GPU_RECIPE, CHAR_LM)
    whole = pretrain_run(cfg, prepare(tmp_path / "whole"))
    train_losses = [r["loss"] for r in records(tmp_path / "whole") if r["split"] == "train"]
    assert train_losses[-1] < train_losses[0] - 0.5, train_losses

    class Stop(Exception):
        pass

    class StopAt:
        def on_log(self, record):
            if record["step"] == 20:
                raise Stop

    with pytest.raises(Stop):
        pretrain_run(cfg, prepare(tmp_path / "resumed"), callbacks=[StopAt()])
    resumed = pretrain_run(cfg, tmp_path / "resumed", resume=True)
    a, b = weights(tmp_path / "whole" / "model.safetensors"), weights(tmp_path / "resumed" / "model.safetensors")
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    print(f"char LM resumed on CUDA: largest weight difference {worst:.2e}, val loss "
          f"{whole['metrics']['loss']:.4f} vs {resumed['metrics']['loss']:.4f}")
    assert worst <= 1e-3


def test_a_run_interrupted_on_cuda_resumes_bitwise(tmp_path):
    """Dropout draws from the CUDA generator, whose state the checkpoints hold."""
    from tests.distributed.helpers import interrupted_then_resumed

    train("dropout", tmp_path / "whole")
    interrupted_then_resumed(digits_run("dropout"), tmp_path / "resumed", STOP_STEP)
    assert (tmp_path / "resumed" / "model.safetensors").read_bytes() == \
        (tmp_path / "whole" / "model.safetensors").read_bytes()
    assert records(tmp_path / "resumed") == records(tmp_path / "whole")


def test_serving_on_cuda_gives_the_cpu_predictions(tmp_path):
    """A digits CNN trained on the CPU, served from the GPU: the same classes as on the CPU, probabilities within
    1e-3 (cuDNN may convolve in TF32), through Predictor and through the HTTP app."""
    from fastapi.testclient import TestClient
    from sklearn.datasets import load_digits

    from modelladder.serve.app import create_app
    from modelladder.serve.predictor import Predictor
    from tests.serve.runs import image_run

    images = load_digits().images[:64]
    predictor = Predictor.load(image_run(tmp_path))
    on_cpu = predictor.predict_proba(images)
    predictor.model.to("cuda")
    on_cuda = predictor.predict_proba(images)
    np.testing.assert_array_equal(on_cuda.argmax(1), on_cpu.argmax(1))
    np.testing.assert_allclose(on_cuda, on_cpu, atol=1e-3)
    with TestClient(create_app(predictor)) as client:
        answer = client.post("/predict", json={"images": images[:8].tolist()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == list(predictor.decode(on_cpu[:8]))
