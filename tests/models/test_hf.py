"""The hf rung on all-MiniLM-L6-v2: fine-tuning on SST-2 lowers the loss, saved weights reload exactly,
frozen and LoRA modes train only what they should, and bad model paths are clear InputErrors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from modelladder.config import TrainConfig
from modelladder.data.batches import TokenSequences
from modelladder.data.bundle import DataBundle
from modelladder.data.text_sources import read_sst2
from modelladder.errors import InputError
from modelladder.models.build import build_model, count_params
from modelladder.models.hf import HFClassifier, HFConfig, model_source
from modelladder.tasks.classification import Classification
from modelladder.train.checkpoint import load_weights, save_weights
from modelladder.train.loop import evaluate, fit
from tests.conftest import require_data
from tests.threads import torch_threads

HIDDEN, LAYERS = 384, 6
BACKBONE_PARAMS = 22_713_216 - (HIDDEN * HIDDEN + HIDDEN)  # all-MiniLM-L6-v2 without its unused pooler
HEAD_PARAMS = HIDDEN * 2 + 2


@pytest.fixture(autouse=True)
def _two_threads():
    with torch_threads(2):
        yield


@pytest.fixture(scope="module")
def sst2() -> tuple[list[str], np.ndarray]:
    """256 SST-2 training phrases drawn at random (seeded), and their labels."""
    texts, labels = read_sst2(require_data("sst") / "sst2_train.tsv")
    pick = np.random.default_rng(0).choice(len(texts), 256, replace=False)
    return [texts[i] for i in pick], np.asarray(labels, np.int64)[pick]


def tokens(cfg: HFConfig, texts: list[str]) -> TokenSequences:
    encoder = HFClassifier.make_encoder(cfg, texts)
    return TokenSequences(encoder.encode(texts), encoder.pad_id)


def logits(model, x) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def train_steps(model, x, y: torch.Tensor, steps: int, lr: float) -> list[float]:
    torch.manual_seed(0)  # dropout
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_fine_tuning_on_sst2_lowers_the_loss_and_the_saved_weights_reload_exactly(sst2, tmp_path):
    texts, y = sst2
    cfg = HFConfig(mode="full")
    X = tokens(cfg, texts)
    empty = np.zeros(0, dtype=object)
    data = DataBundle(X, y, empty, y[:0], empty, y[:0], kind="text", input_shape=(), classes=["neg", "pos"])
    model, task = build_model(cfg, (), 2, seed=0), Classification(2)
    before = evaluate(model, task, X, y)["loss"]
    train = TrainConfig(epochs=1, batch_size=32, optimizer={"name": "adamw", "lr": 1e-4},
                        schedule={"name": "linear"}, progress=False)
    fit(model, task, data, train, seed=0, run_dir=tmp_path)
    after = evaluate(model, task, X, y)["loss"]
    assert after < 0.93 * before, (before, after)  # 0.693 -> 0.593 when written

    reloaded = build_model(cfg, (), 2, seed=1)  # another head init: everything must come from the file
    load_weights(tmp_path / "model.safetensors", reloaded)
    x = X.take(torch.arange(len(X)))
    assert torch.equal(logits(reloaded, x), logits(model, x))


def test_frozen_mode_trains_only_the_head(sst2):
    texts, y = sst2
    cfg = HFConfig(mode="frozen")
    x, target = tokens(cfg, texts[:64]).take(torch.arange(64)), torch.from_numpy(y[:64])
    model = build_model(cfg, (), 2, seed=0)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == HEAD_PARAMS
    assert not model.train().backbone.training  # no dropout in a frozen backbone, even in train mode
    backbone = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.head.weight.detach().clone()
    losses = train_steps(model, x, target, steps=5, lr=1e-2)
    assert losses[-1] < losses[0], losses
    assert all(torch.equal(v, backbone[k]) for k, v in model.backbone.state_dict().items())
    assert not torch.equal(model.head.weight, head)


def test_lora_mode_trains_only_the_adapters_and_the_head_and_reloads_exactly(sst2, tmp_path):
    texts, y = sst2
    cfg = HFConfig(mode="lora", lora={"r": 4})
    x, target = tokens(cfg, texts[:32]).take(torch.arange(32)), torch.from_numpy(y[:32])
    model = build_model(cfg, (), 2, seed=0)
    adapters = LAYERS * 2 * (2 * 4 * HIDDEN)  # query and value per layer, each A (4 x 384) + B (384 x 4)
    trainable = {k for k, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in k or k.startswith("head.") for k in trainable), trainable
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == adapters + HEAD_PARAMS
    assert count_params(model) == BACKBONE_PARAMS + adapters + HEAD_PARAMS
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k not in trainable}
    losses = train_steps(model, x, target, steps=4, lr=3e-3)
    assert losses[-1] < losses[0], losses
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert any(not torch.equal(state[k], torch.zeros_like(state[k])) for k in trainable if "lora_B" in k)

    save_weights(tmp_path / "lora.safetensors", model)
    reloaded = build_model(cfg, (), 2, seed=1)
    load_weights(tmp_path / "lora.safetensors", reloaded)
    assert torch.equal(logits(reloaded, x), logits(model, x))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_logits_do_not_depend_on_padding(sst2, pooling):
    texts = sst2[0][:8]
    cfg = HFConfig(pooling=pooling)
    X = tokens(cfg, texts)
    assert len(set(X.lengths.tolist())) > 1  # the batch really pads
    model = build_model(cfg, (), 2, seed=0)
    together = logits(model, X.take(torch.arange(len(X))))
    alone = torch.cat([logits(model, X.take(torch.tensor([i]))) for i in range(len(X))])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_the_encoder_is_the_pretrained_models_own_tokenizer():
    cfg = HFConfig(max_length=8)
    reference = AutoTokenizer.from_pretrained(model_source(cfg))
    texts = ["A gorgeous, witty film.", "", "one two three four five six seven eight nine"]
    encoder = HFClassifier.make_encoder(cfg, texts)
    assert encoder.pad_id == reference.pad_token_id and encoder.max_length == 8
    expected = reference(texts, truncation=True, max_length=8)["input_ids"]
    assert [s.tolist() for s in encoder.encode(texts)] == expected


def test_the_seed_decides_the_head_and_nothing_else():
    a, b, c = (build_model(HFConfig(mode="full"), (), 2, seed=s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [k for k in a if not torch.equal(a[k], c[k])] == ["head.weight", "head.bias"]


def test_a_missing_model_is_an_input_error_that_says_the_hub_was_not_asked(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never reach for the network in a test
    with pytest.raises(InputError, match=r"model.model 'no-such-org/no-such-model' is neither an existing model "
                                         r"folder nor a model found on the Hugging Face hub \(HF_HUB_OFFLINE is set, "
                                         r"so the hub was not asked\)"):
        build_model(HFConfig(model="no-such-org/no-such-model"), (), 2, seed=0)


def test_a_folder_that_is_not_a_model_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=f"model.model folder '{tmp_path / 'nothing'}' does not exist"):
        build_model(HFConfig(model=str(tmp_path / "nothing")), (), 2, seed=0)
    with pytest.raises(InputError, match=f"model.model '{tmp_path}' is not a Hugging Face model folder: "
                                         "it holds no config.json"):
        build_model(HFConfig(model=str(tmp_path)), (), 2, seed=0)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(InputError, match=f"model.model folder '{tmp_path}' does not hold a loadable model: "
                                         "Error no file named model.safetensors"):
        build_model(HFConfig(model=str(tmp_path)), (), 2, seed=0)


def test_settings_the_model_cannot_take_are_input_errors():
    with pytest.raises(InputError, match=r"model.max_length must be <= 512 \(the model's max_position_embeddings\), "
                                         "got 600"):
        build_model(HFConfig(max_length=600), (), 2, seed=0)
    with pytest.raises(InputError, match=r"model.lora.target_modules \['attn'\]: Target modules \{'attn'\} not found"):
        build_model(HFConfig(mode="lora", lora={"target_modules": ["attn"]}), (), 2, seed=0)
    with pytest.raises(InputError, match=r"model hf needs text \(input shape \(\)\), got input shape \(1, 8, 8\)"):
        build_model(HFConfig(), (1, 8, 8), 2, seed=0)
