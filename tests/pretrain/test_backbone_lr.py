"""finetune.backbone_lr: the backbone and the head train at their own rates, both following the schedule; a rate
of 0 keeps the backbone exactly as pretrained while the head learns; a resumed run is bitwise the same."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.train.optim import build_optimizer
from modelladder.verbs.train import train_run
from modelladder.verbs.transfer import Transfer
from tests.pretrain.helpers import (
    finetune_config,
    pretrained_lm,
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return pretrained_lm(tmp_path_factory, max_steps=10)


def config(pretrained, backbone_lr, mode="full", **train):
    lm, labelled = pretrained
    return finetune_config(labelled, lm, mode, finetune={"backbone_lr": backbone_lr},
                           train={"optimizer": {"lr": 0.004, "weight_decay": 0.01}, **train})


def test_the_optimizer_has_one_group_per_rate(pretrained):
    cfg = config(pretrained, 0.001)
    transfer = Transfer(cfg)
    model = transfer.start(build_model(transfer.cfg.model, (), 2, seed=1))
    groups = build_optimizer(model, cfg.train.optimizer, transfer.lr_scales).param_groups
    by_scale = {g["lr_scale"]: g for g in groups}
    assert set(by_scale) == {0.25, 1.0}
    assert by_scale[0.25]["lr"] == pytest.approx(0.001) and by_scale[1.0]["lr"] == 0.004
    assert all(g["weight_decay"] == 0.01 for g in groups)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)].split(".")[0] for p in by_scale[0.25]["params"]} == {"backbone"}
    assert {names[id(p)].split(".")[0] for p in by_scale[1.0]["params"]} == {"head"}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_both_rates_follow_the_schedule(pretrained, tmp_path):
    cfg = config(pretrained, 0.001, max_steps=12, epochs=5, schedule={"name": "cosine", "warmup_steps": 2})
    train_run(cfg, tmp_path)
    state = json.loads((tmp_path / "checkpoints" / "step-000012" / "state.json").read_text())
    groups = {g["lr_scale"]: g["lr"] for g in state["optimizer"]["param_groups"]}
    assert 0 < state["lr"] < 0.004  # the cosine schedule moved the rate
    assert groups[1.0] == state["lr"] and groups[0.25] == pytest.approx(0.25 * state["lr"])


def test_a_backbone_lr_of_zero_keeps_the_backbone_while_the_head_learns(pretrained, tmp_path):
    lm, _ = pretrained
    cfg = config(pretrained, 0.0, epochs=3)
    result = train_run(cfg, tmp_path)
    weights, trained = load_file(lm / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(trained[k], weights[k]) for k in weights)
    head = build_model(Transfer(cfg).cfg.model, (), 2, seed=1).state_dict()["head.weight"]
    assert not torch.equal(trained["head.weight"], head)
    assert result["metrics"]["accuracy"] > 0.6, result["metrics"]


def test_lora_adapters_take_the_backbone_rate(pretrained):
    cfg = config(pretrained, 0.002, mode="lora")
    transfer = Transfer(cfg)
    model = transfer.start(build_model(transfer.cfg.model, (), 2, seed=1))
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["lr_scale"]: g for g in build_optimizer(model, cfg.train.optimizer, transfer.lr_scales).param_groups}
    assert set(groups) == {0.5, 1.0}
    assert all("lora_" in names[id(p)] for p in groups[0.5]["params"])


def test_a_resumed_run_with_two_rates_is_bitwise_the_same(pretrained, tmp_path):
    cfg = config(pretrained, 0.001, max_steps=12, epochs=5, checkpoint_every=4)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir()
    train_run(cfg, whole)
    shutil.copytree(whole, broken)
    shutil.rmtree(broken / "checkpoints" / "step-000012")  # as if it had stopped after the checkpoint of step 8
    (broken / "model.safetensors").unlink()
    train_run(cfg, broken, resume=True)
    assert (broken / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert (broken / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()


def test_frozen_mode_has_no_backbone_rate(pretrained):
    with pytest.raises(InputError, match="finetune.backbone_lr sets the learning rate of a backbone that trains"):
        Transfer(config(pretrained, 0.001, mode="frozen")).start(
            build_model(Transfer(config(pretrained, 0.001, mode="frozen")).cfg.model, (), 2, seed=1))
