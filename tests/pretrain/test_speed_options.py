"""The pretraining recipe's options (issue 20 part 2): fused ReLU² / RMSNorm equal torch's, the one-call rotary
equals the rotate-half formula, optimizer muon and schedule wsd train and resume bitwise, model.tie_head false
and model.zero_init build what they say and load back identically."""

from __future__ import annotations

import itertools

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from modelladder.config import OptimizerConfig, ScheduleConfig, TrainConfig
from modelladder.models.fused import RMSNorm, relu_squared, rotate
from modelladder.models.transformer import Rotary
from modelladder.train.muon import hidden_matrices, orthogonalize
from modelladder.train.optim import build_optimizer, lr_multiplier
from modelladder.verbs.pretrain import build_language_model, load_language_model, pretrain_run
from tests.pretrain.helpers import tiny_config, write_corpus
from tests.pretrain.test_pretrain import Interrupt, StopAtStep, train_losses
from tests.train.helpers import records

MUON = {"optimizer": {"name": "muon", "lr": 0.01, "muon_lr": 0.02, "weight_decay": 0.01}}


def test_fused_relu_squared_and_rms_norm_match_torch_and_their_gradients():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    norm = RMSNorm(16).double()
    nn.init.normal_(norm.weight)
    reference = nn.RMSNorm(16).double()
    reference.load_state_dict(norm.state_dict())
    assert torch.equal(norm(x), reference(x))
    assert torch.autograd.gradcheck(lambda x, w: norm(x), (x, norm.weight))
    h = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.equal(relu_squared(h), torch.relu(h).square())
    assert torch.autograd.gradcheck(relu_squared, (h,))


def test_rotary_in_one_call_is_the_rotate_half_rotation():
    rotary, x = Rotary(8, 16), torch.randn(2, 3, 2, 16, 8)
    angles = torch.outer(torch.arange(16.0), 10_000 ** (-torch.arange(0, 8, 2) / 8)).repeat(1, 2)
    first, second = x.chunk(2, dim=-1)
    expected = x * angles.cos() + torch.cat((-second, first), dim=-1) * angles.sin()
    torch.testing.assert_close(rotary(x, 0), expected)
    torch.testing.assert_close(rotary(x[..., 4:7, :], 4), expected[..., 4:7, :])
    grad_x = x.double().requires_grad_()  # the training path (hand-written backward) on a strided view
    cos, sin = rotary.cos.double(), rotary.sin.double()
    assert torch.autograd.gradcheck(lambda t: rotate(t, cos, sin), (grad_x[:, :, :1],))


def test_newton_schulz_makes_the_singular_values_near_one():
    g = torch.randn(24, 64) @ torch.diag(torch.logspace(-2, 1, 64))
    for m in (g, g.T):
        singular = torch.linalg.svdvals(orthogonalize(m))
        assert singular.min() > 0.5 and singular.max() < 1.3


def test_muon_updates_the_hidden_matrices_and_adamw_the_rest(tmp_path):
    cfg = tiny_config(write_corpus(tmp_path), model={"tie_head": False}, train=MUON)
    model = build_language_model(cfg)
    matrices = hidden_matrices(model)
    names = {name for name, p in model.named_parameters() if p in matrices}
    assert names == {f"backbone.blocks.{i}.{part}.weight" for i in range(2)
                     for part in ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")}  # not the embedding, not the head
    opt = build_optimizer(model, cfg.train.optimizer)
    muon = [g for g in opt.param_groups if g["muon"]]
    assert [g["lr"] for g in muon] == [0.02] and muon[0]["lr_scale"] == pytest.approx(2.0)


def test_muon_with_wsd_trains_and_resumes_bitwise(tmp_path):
    train = {**MUON, "max_steps": 30, "checkpoint_every": 8,
             "schedule": {"name": "wsd", "warmup_steps": 3, "decay_fraction": 0.5, "min_lr_ratio": 0.1}}
    cfg = tiny_config(write_corpus(tmp_path), model={"tie_head": False, "zero_init": True}, train=train)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    pretrain_run(cfg, whole)
    losses = train_losses(whole)
    assert losses[-1] < 0.7 * losses[0]
    with pytest.raises(Interrupt):
        pretrain_run(cfg, broken, callbacks=[StopAtStep(20)])
    pretrain_run(cfg, broken, resume=True)
    assert records(broken) == records(whole)
    assert (broken / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()


def test_an_untied_zero_init_model_saves_its_head_and_loads_back_identically(tmp_path):
    cfg = tiny_config(write_corpus(tmp_path), model={"tie_head": False, "zero_init": True},
                      train={"max_steps": 5})
    fresh = build_language_model(cfg)
    assert all(not p.any() for name, p in fresh.named_parameters() if name.endswith("proj.weight"))
    assert fresh.head is not None and fresh.head.weight.data_ptr() != fresh.backbone.tokens.weight.data_ptr()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pretrain_run(cfg, run_dir)
    _, model, encoder = load_language_model(run_dir)
    ids = torch.from_numpy(encoder.encode_corpus("the cat sat on the mat")[:8].astype("int64"))[None]
    again = load_language_model(run_dir)[1]
    assert "head.weight" in dict(model.named_parameters())
    assert torch.equal(model(ids), again(ids))
    assert not torch.equal(model.head.weight, model.backbone.tokens.weight)


def test_wsd_is_flat_then_falls_linearly_to_the_floor():
    cfg = ScheduleConfig(name="wsd", warmup_steps=10, decay_fraction=0.5, min_lr_ratio=0.1)
    values = [lr_multiplier(cfg, step, 110, 50) for step in range(110)]
    assert values[9] < 1 and values[10:61] == [1.0] * 51
    assert values[85] == pytest.approx(0.55) and values[-1] == pytest.approx(0.118)
    assert all(a >= b for a, b in itertools.pairwise(values[60:]))


@pytest.mark.parametrize("bad", [{"name": "muon", "ns_steps": 0}, {"name": "muon", "muon_lr": 0},
                                 {"name": "muon", "muon_momentum": 1.0}])
def test_muon_settings_are_checked(bad):
    with pytest.raises(ValidationError):
        OptimizerConfig(**bad)


def test_muon_is_refused_with_fsdp():
    with pytest.raises(ValidationError, match="FSDP shards"):
        TrainConfig(optimizer={"name": "muon"}, distributed={"strategy": "fsdp"})
