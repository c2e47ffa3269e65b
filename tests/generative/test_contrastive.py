"""SimCLR (task contrastive, model simclr): NT-Xent is the textbook formula, the views move an image by the
same fraction at any size, the loss falls, the pretrained encoder's linear probe beats a random encoder's by
a clear margin (on digits, and on an MNIST subset), a resumed run ends bitwise where an uninterrupted one
ends, and the head must suit the task."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelladder.config import OptimizerConfig, TrainConfig, validate_run
from modelladder.data.load import load_data
from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.tasks.contrastive import SHIFT, augment_views, features, nt_xent, probe_accuracy
from modelladder.train.loop import fit
from modelladder.verbs.build import check_model_fits_data, make_task
from tests.conftest import require_data
from tests.generative.helpers import digits, run_config
from tests.train.helpers import records, same_weights
from tests.train.test_resume import Interrupt, StopAt

ENCODER = {"name": "simclr", "head": "projection", "channels": [16, 32], "features": 64}
TRAIN = TrainConfig(epochs=15, batch_size=128, progress=False, threads=2, log_every=5,
                    optimizer=OptimizerConfig(name="adamw", lr=3e-3))


def setup(limit: int | None = None, seed: int = 0, data=None):
    cfg = run_config(ENCODER, {"name": "contrastive", "temperature": 0.5})
    data = digits(limit) if data is None else data
    return build_model(cfg.model, data.input_shape, data.n_outputs, seed=seed), make_task(cfg, data), data


def probe_margin(net, task, data, X_test, y_test) -> tuple[dict, dict]:
    """Probe and k-NN accuracy on (X_test, y_test) of `net`'s features and of a random encoder's."""
    random_net, _, _ = setup(data=data)
    X, y = task.probe
    trained = probe_accuracy(features(net, X), y, features(net, X_test), y_test)
    untrained = probe_accuracy(features(random_net, X), y, features(random_net, X_test), y_test)
    return trained, untrained


def test_nt_xent_equals_a_hand_computation():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 2.0]])  # views 0, 2 and 1, 3 are pairs
    tau = 0.5
    unit = z / z.norm(dim=1, keepdim=True)
    expected = []
    for i in range(4):
        partner = (i + 2) % 4
        others = [math.exp(float(unit[i] @ unit[k]) / tau) for k in range(4) if k != i]
        expected.append(-math.log(math.exp(float(unit[i] @ unit[partner]) / tau) / sum(others)))
    assert torch.allclose(nt_xent(z, tau), torch.tensor(expected), atol=1e-6)


@pytest.mark.parametrize("size", [8, 28])
def test_the_views_shift_by_the_same_fraction_of_the_image_at_any_size(size):
    """A single bright pixel's centre of mass moves at most SHIFT of the size plus what zoom and rotation add."""
    x = torch.zeros(64, 1, size, size)
    x[:, 0, size // 2, size // 2] = 1.0
    views = augment_views(x, (1e9,), torch.Generator().manual_seed(0))  # a huge std makes the noise ~0
    grid = torch.arange(size, dtype=torch.float32)
    mass = views.clamp(min=0).sum(dim=(1, 2, 3))
    row = (views.clamp(min=0).sum(dim=3)[:, 0] @ grid) / mass
    moved = (row - size // 2).abs() / size
    assert moved.max() <= SHIFT + 0.08 and moved.max() >= SHIFT / 3


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """SimCLR trained on scikit-learn's digits (about 20 s on 2 threads), its task and data."""
    net, task, data = setup()
    result = fit(net, task, data, TRAIN, seed=0, run_dir=tmp_path_factory.mktemp("simclr"))
    return net, task, data, result


def test_the_loss_falls(pretrained):
    _, _, _, result = pretrained
    # chance is log(2 * 128 - 1) = 5.5 nats; the first epoch already learns some, the rest another 0.5
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.5
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_the_linear_probe_beats_a_random_encoder_by_a_clear_margin(pretrained):
    net, task, data, _ = pretrained
    trained, untrained = probe_margin(net, task, data, data.X_test, data.y_test)
    assert trained["probe_accuracy"] >= untrained["probe_accuracy"] + 0.05, (trained, untrained)
    # k-NN on a random encoder is already about pixel k-NN (0.94 on digits), so no margin is possible there
    assert trained["knn_accuracy"] >= 0.9, (trained, untrained)


@pytest.mark.slow
def test_on_an_mnist_subset_the_linear_probe_beats_a_random_encoder_by_a_clear_margin(tmp_path):
    """2,000 MNIST images, 3 epochs (about 30 s), scored on the first 2,000 test images."""
    require_data("mnist")
    data = load_data(validate_run({"data": {"dataset": "mnist", "limit": 2000}, "model": {"name": "vae"}}).data,
                     seed=0, task="classification")
    net, task, _ = setup(data=data)
    fit(net, task, data, TRAIN.model_copy(update={"epochs": 3}), seed=0, run_dir=tmp_path)
    trained, untrained = probe_margin(net, task, data, data.X_test[:2000], data.y_test[:2000])
    assert trained["probe_accuracy"] >= untrained["probe_accuracy"] + 0.05, (trained, untrained)


def test_a_resumed_run_ends_bitwise_where_an_uninterrupted_one_ends(tmp_path):
    train = TRAIN.model_copy(update={"epochs": 2, "batch_size": 64, "threads": 1})
    net, task, data = setup(200)  # 3 steps per epoch, 6 in all
    reference = fit(net, task, data, train, seed=3, run_dir=tmp_path / "ref")
    crashed, _, _ = setup(200)
    with pytest.raises(Interrupt):
        fit(crashed, task, data, train, seed=3, run_dir=tmp_path / "run", callbacks=[StopAt("on_checkpoint", 3)])
    resumed, _, _ = setup(200, seed=42)  # resume must not depend on the initial weights
    result = fit(resumed, task, data, train, seed=3, run_dir=tmp_path / "run", resume=True)
    assert same_weights(resumed, net)
    assert result.history == reference.history
    assert records(tmp_path / "run") == records(tmp_path / "ref")
    assert np.isfinite([r["loss"] for r in records(tmp_path / "ref") if r["split"] == "train"]).all()


def test_the_head_must_suit_the_task():
    data = digits(100)
    with pytest.raises(InputError, match="task.name 'contrastive' needs model.head 'projection' for model simclr, "
                                         "got 'classifier'"):
        check_model_fits_data(run_config({"name": "simclr"}, {"name": "contrastive"}), data)
    with pytest.raises(InputError, match="task.name 'classification' needs model.head 'classifier'"):
        check_model_fits_data(run_config(ENCODER, {"name": "classification"}), data)
    with pytest.raises(InputError, match=r"model.name 'cnn' trains with task.name 'classification' or 'regression', "
                                         r"got 'contrastive' \(task.name 'contrastive' trains model.name 'simclr'\)"):
        check_model_fits_data(run_config({"name": "cnn"}, {"name": "contrastive"}), data)
