"""Generative runs end to end on digits: eval records, pictures in the run folder (and in report.html), the
classifier's view of generated digits, and clear errors for runs that cannot work."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelladder.errors import InputError
from modelladder.evaluate.generative import frechet_distance
from modelladder.report import write_report
from modelladder.serve.predictor import Predictor
from modelladder.verbs.build import load_run_data
from modelladder.verbs.train import train_run
from tests.generative.helpers import run_config

SHORT = {"epochs": 2, "batch_size": 64, "progress": False, "threads": 1, "log_every": 5}


def train(cfg, run_dir):
    run_dir.mkdir(parents=True)
    return train_run(cfg, run_dir, data=load_run_data(cfg))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A digits MLP classifier run (about 95% accuracy): the judge of generated digits."""
    run_dir = tmp_path_factory.mktemp("runs") / "classifier"
    cfg = run_config({"name": "mlp", "hidden": [64]}, {"name": "classification"}, train={**SHORT, "epochs": 8})
    result = train(cfg, run_dir)
    assert result["metrics"]["accuracy"] > 0.9
    return run_dir


def test_autoencoder_run_writes_its_errors_and_reconstructions(tmp_path):
    cfg = run_config({"name": "autoencoder", "hidden": [32]}, {"name": "reconstruction"}, train=SHORT)
    result = train(cfg, tmp_path / "ae")
    assert set(result["metrics"]) == {"bce", "mse", "loss"}
    assert 0 < result["metrics"]["mse"] < 0.2
    assert (tmp_path / "ae" / "pictures" / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((tmp_path / "ae" / "eval_test.json").read_text())
    assert record["split"] == "test" and record["n"] == 360
    html = write_report(tmp_path / "ae").read_text()
    assert "pictures/reconstructions.png" in html and html.count('class="picture"') == 1


def test_vae_run_scores_prior_samples_with_the_classifier(tmp_path, classifier):
    cfg = run_config({"name": "vae", "hidden": [64], "latent": 4}, {"name": "vae", "sample_every": 10},
                     train=SHORT, eval={"classifier": str(classifier)})
    metrics = train(cfg, tmp_path / "vae")["metrics"]
    assert metrics["kl"] >= 0 and metrics["neg_elbo"] == pytest.approx(metrics["recon"] + metrics["kl"])
    assert 0.1 <= metrics["classifier_confidence"] <= 1 and 0 <= metrics["classifier_class_entropy"] <= 1
    assert metrics["classifier_confidence_real"] > 0.8
    assert metrics["classifier_fd"] > metrics["classifier_fd_real"] >= 0
    pictures = sorted(p.name for p in (tmp_path / "vae" / "pictures").iterdir())
    # 2 epochs of 21 steps, a grid every 10 steps (checked at each log line)
    assert pictures == ["interpolation.png", "reconstructions.png", "samples-step-000010.png",
                        "samples-step-000020.png", "samples-step-000030.png", "samples-step-000040.png",
                        "samples.png"]
    record = json.loads((tmp_path / "vae" / "eval_test.json").read_text())
    assert "not the Inception FID" in record["note"]
    assert sum(record["predicted_classes"].values()) == record["samples"] == 180


def test_gan_run_writes_fixed_noise_grids_and_scores(tmp_path, classifier):
    cfg = run_config({"name": "gan", "latent": 16, "width": 8}, {"name": "gan", "sample_every": 20},
                     train={**SHORT, "optimizer": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}},
                     eval={"classifier": str(classifier)})
    metrics = train(cfg, tmp_path / "gan")["metrics"]
    assert {"d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake", "classifier_fd", "classifier_confidence"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())
    assert {p.name for p in (tmp_path / "gan" / "pictures").iterdir()} == {
        "samples-step-000020.png", "samples-step-000040.png", "samples.png"}
    with pytest.raises(InputError, match="which makes no predictions"):
        Predictor.load(tmp_path / "gan").predict(np.zeros((1, 8, 8)))


def test_frechet_distance_of_gaussians_has_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 2))
    b = rng.normal(size=(20000, 2)) * [2.0, 1.0] + [3.0, 0.0]
    # ||mu_a - mu_b||^2 + sum (sigma_a - sigma_b)^2 for diagonal covariances: 9 + 1
    assert frechet_distance(a, b) == pytest.approx(10.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(("model", "task", "message"), [
    ({"name": "gan"}, {"name": "classification"}, "model.name 'gan' trains with task.name 'gan', got 'classification'"),
    ({"name": "mlp"}, {"name": "vae"}, "model.name 'mlp' trains with task.name 'classification' or 'regression', "
                                       "got 'vae' (task.name 'vae' trains model.name 'vae')"),
    ({"name": "vae"}, {"name": "reconstruction"},
     "model.name 'vae' trains with task.name 'vae' or 'classification', got 'reconstruction' "
     "(task.name 'reconstruction' trains model.name 'autoencoder')"),
])
def test_models_and_generative_tasks_must_match(model, task, message):
    with pytest.raises(InputError) as err:
        load_run_data(run_config(model, task))
    assert err.value.problems == [message]


def test_a_missing_classifier_run_fails_before_training(tmp_path):
    cfg = run_config({"name": "gan"}, {"name": "gan"}, eval={"classifier": str(tmp_path / "nope")})
    with pytest.raises(InputError, match=f"run folder {tmp_path / 'nope'} does not exist"):
        load_run_data(cfg)


def test_gan_refuses_penalties_and_mixed_precision():
    cfg = run_config({"name": "gan"}, {"name": "gan"}, train={"l2": 0.1, "precision": "bf16"})
    with pytest.raises(InputError) as err:
        load_run_data(cfg)
    assert err.value.problems == [
        ("task.name 'gan' trains in fp32 (its two updates have no loss scaling): train.precision must be 'fp32', "
         "got 'bf16'"),
        ("task.name 'gan' cannot be combined with train.l1 / train.l2 (it would mix both networks' weights into "
         "each update); use train.optimizer.weight_decay")]
