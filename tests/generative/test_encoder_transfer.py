"""Image encoders through the fine-tune path: an autoencoder, VAE or SimCLR run pretrained with its own
objective gives a classifier its encoder bit for bit with a new head; frozen leaves the encoder unchanged;
a pretrained image run needs no tokenizer; bad combinations are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.verbs.pretrain import pretrain_run
from modelladder.verbs.train import train_run
from modelladder.verbs.transfer import Transfer, pretrained_config

TRAIN = {"epochs": 2, "batch_size": 64, "progress": False, "threads": 1, "log_every": 5}
PRETRAINED = {
    "autoencoder": ({"name": "autoencoder", "hidden": [32]}, {"name": "reconstruction"}, ("encoder",)),
    "vae": ({"name": "vae", "hidden": [32], "latent": 8}, {"name": "vae"}, ("encoder", "mean")),
    "simclr": ({"name": "simclr", "head": "projection", "channels": [8], "features": 16}, {"name": "contrastive"},
               ("encoder",)),
}


def config(model: dict, task: dict | None = None, **sections):
    raw = {"data": {"dataset": "digits", "limit": 300}, "model": model, "train": TRAIN, **sections}
    return validate_run({**raw, "task": task} if task else raw)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    """One tiny pretrained run per image encoder, made through ladder pretrain's entry point."""
    folders = {}
    for name, (model, task, _) in PRETRAINED.items():
        folders[name] = tmp_path_factory.mktemp(name)
        pretrain_run(config(model, task), folders[name])
    return folders


def parts(weights: dict, backbone: tuple[str, ...]) -> dict:
    return {k: v for k, v in weights.items() if k.split(".")[0] in backbone}


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_the_encoder_is_copied_exactly_and_the_head_is_new(pretrained, name):
    cfg = config({"name": name}, finetune={"from": str(pretrained[name])})
    transfer = Transfer(cfg)
    assert transfer.cfg.model.head == "classifier"
    fresh = build_model(transfer.cfg.model, (1, 8, 8), 10, seed=0)
    model = transfer.start(build_model(transfer.cfg.model, (1, 8, 8), 10, seed=0))
    source = parts(load_file(pretrained[name] / "model.safetensors"), PRETRAINED[name][2])
    state = model.state_dict()
    assert set(parts(state, PRETRAINED[name][2])) == set(source)
    assert all(torch.equal(state[k], source[k]) for k in source)
    assert all(torch.equal(state[k], fresh.state_dict()[k]) for k in state if k.startswith("head."))
    assert transfer.encoder(Path("unused")) is None  # an image run has no tokenizer


# chance is 0.1; the tiny SimCLR above trains 2 epochs on 240 images, so its features carry little yet
@pytest.mark.parametrize(("name", "accuracy"), [("autoencoder", 0.5), ("simclr", 0.15)])
def test_frozen_fine_tuning_leaves_the_encoder_unchanged_and_learns_the_head(pretrained, name, accuracy, tmp_path):
    cfg = config({"name": name}, finetune={"from": str(pretrained[name]), "mode": "frozen"},
                 train={**TRAIN, "epochs": 10, "optimizer": {"lr": 0.01}})
    result = train_run(cfg, tmp_path)
    before = load_file(pretrained[name] / "model.safetensors")
    after = load_file(tmp_path / "model.safetensors")
    for key, value in parts(before, PRETRAINED[name][2]).items():
        assert torch.equal(after[key], value), key  # batchnorm statistics included
    assert result["metrics"]["accuracy"] > accuracy


def test_full_fine_tuning_of_an_autoencoder_trains_the_encoder(pretrained, tmp_path):
    cfg = config({"name": "autoencoder", "dropout": 0.1}, finetune={"from": str(pretrained["autoencoder"])},
                 train={**TRAIN, "epochs": 10})
    result = train_run(cfg, tmp_path)
    before = load_file(pretrained["autoencoder"] / "model.safetensors")["encoder.1.weight"]
    assert not torch.equal(load_file(tmp_path / "model.safetensors")["encoder.1.weight"], before)
    assert result["metrics"]["accuracy"] > 0.8


def test_bad_image_transfers_are_clear_errors(pretrained, tmp_path):
    with pytest.raises(InputError, match="model.head 'decoder': a fine-tuned image encoder gets a new head"):
        Transfer(config({"name": "autoencoder", "head": "decoder"}, finetune={"from": str(pretrained["autoencoder"])}))
    with pytest.raises(InputError, match="task.name 'reconstruction' is a pretraining objective"):
        Transfer(config({"name": "autoencoder"}, {"name": "reconstruction"},
                        finetune={"from": str(pretrained["autoencoder"])}))
    with pytest.raises(InputError, match="model.name 'vae' differs from the pretrained run's 'autoencoder'"):
        Transfer(config({"name": "vae"}, finetune={"from": str(pretrained["autoencoder"])}))
    classifier = tmp_path / "mlp"
    classifier.mkdir()
    train_run(config({"name": "mlp", "hidden": [8]}), classifier)
    with pytest.raises(InputError, match="is an image run with task.name 'classification'"):
        pretrained_config(classifier, "finetune.from")
    with pytest.raises(InputError, match="ladder pretrain with task.name 'vae' trains model.name 'vae', got 'simclr'"):
        pretrain_run(config({"name": "simclr"}, {"name": "vae"}), tmp_path / "x")
