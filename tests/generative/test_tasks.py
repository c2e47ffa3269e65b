"""The generative objectives through the one training loop: losses fall, the VAE's KL is never negative,
a GAN step moves both networks (each update only its own), and a resumed GAN ends bitwise where an
uninterrupted one ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelladder.config import OptimizerConfig, TrainConfig
from modelladder.models.build import build_model
from modelladder.train.loop import evaluate, fit
from modelladder.verbs.build import make_task
from tests.generative.helpers import digits, run_config
from tests.train.helpers import records, same_weights
from tests.train.test_resume import Interrupt, StopAt

TRAIN = TrainConfig(epochs=3, batch_size=32, progress=False, threads=1, log_every=5,
                    optimizer=OptimizerConfig(name="adam", lr=3e-3))


def setup(model: dict, task: dict, limit: int = 400):
    cfg = run_config(model, task)
    data = digits(limit)
    return build_model(cfg.model, data.input_shape, data.n_outputs, seed=0), make_task(cfg, data), data


@pytest.mark.parametrize(("model", "task", "metric"), [
    ({"name": "autoencoder", "hidden": [32]}, {"name": "reconstruction"}, "bce"),
    ({"name": "autoencoder", "kind": "conv", "channels": [8, 16], "latent": 8}, {"name": "reconstruction", "loss": "mse"},
     "mse"),
    ({"name": "vae", "hidden": [64], "latent": 4}, {"name": "vae"}, "neg_elbo"),
])
def test_reconstruction_losses_fall(tmp_path, model, task, metric):
    net, objective, data = setup(model, task)
    before = evaluate(net, objective, data.X_val, data.y_val)
    result = fit(net, objective, data, TRAIN, seed=0, run_dir=tmp_path)
    after = result.history[-1]
    assert after[f"val_{metric}"] < 0.8 * before[metric]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_vae_kl_is_never_negative_and_the_elbo_adds_up(tmp_path):
    net, objective, data = setup({"name": "vae", "hidden": [64], "latent": 4}, {"name": "vae", "beta": 2.0})
    _, outputs = objective.loss(net.eval(), torch.from_numpy(data.X_val), torch.from_numpy(data.y_val))
    assert (outputs[:, 1] >= 0).all()
    fit(net, objective, data, TRAIN, seed=0, run_dir=tmp_path)
    # near-zero KL terms are where float rounding could go negative: the per-example values must stay >= 0
    net.eval()
    x = torch.from_numpy(data.X_val)
    mean, log_var = net.encode(x)
    _, outputs = objective.loss(net, x, torch.from_numpy(data.y_val))
    assert (outputs[:, 1] >= 0).all()
    metrics = objective.metrics(data.y_val, outputs.numpy())
    assert metrics["neg_elbo"] == pytest.approx(metrics["recon"] + metrics["kl"])
    assert metrics["loss"] == pytest.approx(metrics["recon"] + 2.0 * metrics["kl"])
    closed_form = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, torch.exp(0.5 * log_var)), torch.distributions.Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(outputs[:, 1], closed_form.detach(), rtol=1e-4, atol=1e-5)


def gan_setup(limit: int = 300):
    return setup({"name": "gan", "latent": 8, "width": 8}, {"name": "gan"}, limit)


def test_a_gan_step_changes_both_networks_and_each_update_only_its_own():
    net, objective, data = gan_setup()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    snapshots = []

    def update(loss, params):
        loss.backward(inputs=params)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})

    start = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.from_numpy(data.X_train[:32]), torch.from_numpy(data.y_train[:32])
    net.train()
    objective.train_step(net, x, y, update)
    assert len(snapshots) == 2

    def changed(before, after, prefix):
        return [k for k in before if k.startswith(prefix) and k.endswith("weight") and not torch.equal(before[k], after[k])]

    after_d, after_g = snapshots
    assert changed(start, after_d, "discriminator.") and not changed(start, after_d, "generator.")
    assert changed(after_d, after_g, "generator.") and not changed(after_d, after_g, "discriminator.")


def test_the_loop_trains_a_gan_with_one_optimizer_holding_both_networks(tmp_path):
    net, objective, data = gan_setup()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    cfg = TRAIN.model_copy(update={"max_steps": 1})
    fit(net, objective, data, cfg, seed=0, run_dir=tmp_path)
    moved = {k.split(".")[0] for k, v in net.state_dict().items() if k.endswith("weight") and not torch.equal(v, start[k])}
    assert moved == {"generator", "discriminator"}
    record = [r for r in records(tmp_path) if r["split"] == "val"][-1]
    assert {"d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake"} <= set(record)


GAN_TRAIN = TrainConfig(epochs=2, batch_size=32, progress=False, threads=1, log_every=3, checkpoint_every=4,
                        optimizer=OptimizerConfig(name="adam", lr=2e-4, betas=(0.5, 0.999)))


@pytest.mark.parametrize(("hook", "step"), [("on_checkpoint", 4), ("on_log", 9)])
def test_a_resumed_gan_ends_bitwise_where_an_uninterrupted_one_ends(tmp_path, hook, step):
    net, objective, data = gan_setup(200)  # 7 steps per epoch, 14 in all
    reference = fit(net, objective, data, GAN_TRAIN, seed=3, run_dir=tmp_path / "ref")
    crashed, _, _ = gan_setup(200)
    with pytest.raises(Interrupt):
        fit(crashed, objective, data, GAN_TRAIN, seed=3, run_dir=tmp_path / "run", callbacks=[StopAt(hook, step)])
    resumed = build_model(run_config({"name": "gan", "latent": 8, "width": 8}, {"name": "gan"}).model,
                          data.input_shape, data.n_outputs, seed=42)  # resume must not depend on the initial weights
    result = fit(resumed, objective, data, GAN_TRAIN, seed=3, run_dir=tmp_path / "run", resume=True)
    assert same_weights(resumed, net)
    assert result.history == reference.history
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == (tmp_path / "ref" / "model.safetensors").read_bytes()
    assert np.isfinite([r["loss"] for r in records(tmp_path / "ref") if r["split"] == "train"]).all()
