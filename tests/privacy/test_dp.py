"""DP-SGD through opacus (train.privacy): trains to a stated accuracy within its epsilon, resumes exactly,
and refuses what it cannot make private."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from modelladder.config import PrivacyConfig, TrainConfig, validate_run
from modelladder.data.batches import make_source
from modelladder.errors import InputError
from modelladder.report.card import card_context
from modelladder.tasks.classification import Classification
from modelladder.train.loop import _generator, fit
from modelladder.train.privacy import PoissonSource, make_private, privacy_spent
from modelladder.verbs.ladder import _row
from modelladder.verbs.train import train_run
from tests.train.helpers import blobs, mlp, records, same_weights

PRIVACY = {"target_epsilon": 3.0, "delta": 1e-4, "max_grad_norm": 1.0}


def digits_run(model: dict, train: dict) -> dict:
    return validate_run({"data": {"dataset": "digits"}, "model": model,
                         "train": {"batch_size": 64, "progress": False, "threads": 1, **train}})


def test_a_dp_mlp_on_digits_reaches_91_percent_within_its_epsilon(tmp_path):
    # measured: 0.911 test accuracy at epsilon 3 (the same MLP without DP: 0.969)
    cfg = digits_run({"name": "mlp", "hidden": [64]},
                     {"epochs": 10, "optimizer": {"lr": 0.01}, "privacy": PRIVACY})
    result = train_run(cfg, tmp_path)
    assert result["metrics"]["accuracy"] >= 0.88
    assert 0 < result["dp_epsilon"] <= 3.0 and math.isfinite(result["dp_epsilon"])
    assert result["dp_epsilon"] > 2.9  # the noise is calibrated to spend (about) the whole budget
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dp_epsilon"] == result["dp_epsilon"] and summary["dp_delta"] == 1e-4
    assert summary["dp_sampling"] == "poisson" and summary["dp_secure"] is False
    # the card says delta, the sampling, and what the accounting leaves out
    privacy = dict(next(part for part in card_context(tmp_path, summary, result, str)["parts"]
                        if part["title"] == "Privacy")["entries"])["differential privacy"]
    assert "delta 0.0001" in privacy and "poisson sampling" in privacy
    assert "preprocessing statistics fitted on the private training rows" in privacy
    row = _row(cfg.model_copy(update={"name": "dp_mlp"}), result)
    assert row["dp_delta"] == 1e-4 and row["dp_sampling"] == "poisson" and row["dp_secure"] is False


def test_a_dp_cnn_trains_and_reports_its_epsilon(tmp_path):
    cfg = digits_run({"name": "cnn", "channels": [8], "batchnorm": False, "hidden": 0},
                     {"epochs": 2, "optimizer": {"lr": 0.01}, "privacy": PRIVACY})
    result = train_run(cfg, tmp_path)
    assert 0 < result["dp_epsilon"] <= 3.0
    assert result["metrics"]["accuracy"] > 0.3  # far above chance (0.1) after 2 noisy epochs


def test_the_epsilon_spent_grows_with_the_steps_and_matches_the_optimizer_noise():
    cfg = TrainConfig(epochs=4, batch_size=32, privacy=PrivacyConfig(**PRIVACY))
    half, full = (privacy_spent(cfg, n_train=300, steps=s) for s in (20, 40))
    assert half["dp_epsilon"] < full["dp_epsilon"] <= 3.0
    model = mlp()
    private = make_private(model, torch.optim.SGD(model.parameters(), lr=0.1), cfg, n_train=300,
                           generator=torch.Generator().manual_seed(0))
    assert private.optimizer.noise_multiplier == full["dp_noise_multiplier"]
    assert full["dp_sample_rate"] == 1 / 10


CFG = TrainConfig(epochs=3, batch_size=32, log_every=3, progress=False, threads=1,
                  privacy=PrivacyConfig(**PRIVACY))


class Interrupt(Exception):
    pass


class StopAtCheckpoint:
    def __init__(self, step: int):
        self.step = step

    def on_checkpoint(self, path):
        if int(path.name.split("-")[1]) == self.step:
            raise Interrupt


def test_a_resumed_dp_run_ends_with_the_same_weights(tmp_path):
    ref = mlp()
    result_ref = fit(ref, Classification(3), blobs(n=300, seed=1), CFG, seed=3, run_dir=tmp_path / "ref")
    model = mlp()
    with pytest.raises(Interrupt):
        fit(model, Classification(3), blobs(n=300, seed=1), CFG, seed=3, run_dir=tmp_path / "cut",
            callbacks=[StopAtCheckpoint(10)])
    model = mlp()
    result = fit(model, Classification(3), blobs(n=300, seed=1), CFG, seed=3, run_dir=tmp_path / "cut",
                 resume=True)
    assert same_weights(model, ref)
    assert records(tmp_path / "cut") == records(tmp_path / "ref")
    assert result.history == result_ref.history
    assert not same_weights(ref, _trained_without_privacy(tmp_path))  # the noise did change the weights


def _trained_without_privacy(tmp_path) -> nn.Module:
    model = mlp()
    fit(model, Classification(3), blobs(n=300, seed=1), CFG.model_copy(update={"privacy": None}), seed=3,
        run_dir=tmp_path / "plain")
    return model


def test_batches_are_poisson_samples_with_the_accounted_rate():
    data = blobs(n=300, seed=1)
    source = PoissonSource(make_source(data.X_train, data.y_train, torch.long, torch.device("cpu")))
    batches = source.epoch(torch.Generator().manual_seed(0), 32)
    sizes = [len(b) for b in batches]
    assert len(batches) == 10  # steps per epoch: ceil(300 / 32), the sample rate 1 / 10 accounted for
    assert len(set(sizes)) > 1 and 20 < sum(sizes) / len(sizes) < 40  # Poisson: sizes vary around 30
    assert all(len(set(b.tolist())) == len(b) for b in batches)  # an example at most once per batch
    again = source.epoch(torch.Generator().manual_seed(0), 32)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))  # seeded: a resumed run draws the same


def test_an_empty_poisson_batch_still_takes_a_noised_step(tmp_path):
    data = blobs(n=4, val=8, seed=1)
    cfg = CFG.model_copy(update={"batch_size": 1, "epochs": 4, "log_every": 1})
    source = PoissonSource(make_source(data.X_train, data.y_train, torch.long, torch.device("cpu")))
    drawn = [b for epoch in range(4) for b in source.epoch(_generator(5, 0, epoch), 1)]
    assert any(len(b) == 0 for b in drawn)  # (3/4)^4: about a third of the steps take no example
    model = mlp()
    result = fit(model, Classification(3), data, cfg, seed=5, run_dir=tmp_path)
    assert result.steps == len(drawn) == 16
    assert all(math.isfinite(r["train_loss"]) for r in result.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_secure_run_keeps_its_noise_secret(tmp_path):
    cfg = CFG.model_copy(update={"privacy": PrivacyConfig(**PRIVACY, secure=True), "epochs": 1})
    first, second = mlp(), mlp()
    with pytest.warns(UserWarning, match="torchcsprng is not installed"):
        fit(first, Classification(3), blobs(n=300, seed=1), cfg, seed=3, run_dir=tmp_path / "a")
    with pytest.warns(UserWarning, match="os.urandom"):
        fit(second, Classification(3), blobs(n=300, seed=1), cfg, seed=3, run_dir=tmp_path / "b")
    assert not same_weights(first, second)  # same seed, different noise: it cannot be replayed
    state = json.loads(next((tmp_path / "a" / "checkpoints").glob("step-*/state.json")).read_text())
    assert "dp_noise" not in json.dumps(state["rng"])
    assert privacy_spent(cfg, n_train=300, steps=10)["dp_secure"] is True


def test_a_model_with_batchnorm_is_refused_with_the_reason_before_anything_is_written(tmp_path):
    cfg = digits_run({"name": "mlp", "hidden": [16], "batchnorm": True}, {"epochs": 1, "privacy": PRIVACY})
    with pytest.raises(InputError) as err:
        train_run(cfg, tmp_path)
    assert err.value.problems == [
        "train.privacy: model 'mlp' cannot be trained with DP-SGD, opacus says: BatchNorm cannot support training "
        "with differential privacy. Turn batchnorm off (it mixes the examples of a batch), or use a model without "
        "such layers (mlp and cnn with batchnorm: false work)"]
    assert not any(tmp_path.iterdir())


def test_the_loop_refuses_such_a_model_too():
    model = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    with pytest.raises(InputError, match="train.privacy: model 'sequential' cannot be trained with DP-SGD"):
        fit(model, Classification(3), blobs(n=64), CFG, seed=0, run_dir=Path("unused"))


def test_a_scikit_learn_rung_with_privacy_is_refused_before_anything_is_written(tmp_path):
    cfg = digits_run({"name": "logreg"}, {"privacy": PRIVACY})
    with pytest.raises(InputError, match="train.privacy \\(DP-SGD\\) trains networks; model.name 'logreg' is a "
                                         "scikit-learn rung"):
        train_run(cfg, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("train, message", [
    ({"grad_clip": 1.0}, ("train: train.privacy clips each example's gradient to privacy.max_grad_norm: "
                          "leave train.grad_clip unset")),
    ({"l2": 0.01}, "train: train.privacy cannot be combined with train.l1 / train.l2"),
    ({"precision": "bf16"}, "train: train.privacy needs train.precision 'fp32', got 'bf16'"),
])
def test_settings_that_would_break_the_guarantee_are_refused(train, message):
    with pytest.raises(InputError) as err:
        digits_run({"name": "mlp"}, {**train, "privacy": PRIVACY})
    assert err.value.problems[0].startswith(message)


def test_privacy_settings_are_checked():
    with pytest.raises(InputError) as err:
        digits_run({"name": "mlp"}, {"privacy": {"target_epsilon": 0, "delta": 2}})
    assert err.value.problems == ["train.privacy.target_epsilon must be > 0, got 0",
                                  "train.privacy.delta must be < 1, got 2"]
