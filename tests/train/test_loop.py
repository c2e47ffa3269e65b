"""fit: learning, logging, early stopping, divergence, and the contracts around it."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from modelladder.config import AugmentConfig, EarlyStoppingConfig, OptimizerConfig, TrainConfig
from modelladder.errors import InputError
from modelladder.tasks.classification import Classification
from modelladder.tasks.regression import Regression
from modelladder.train.checkpoint import latest_checkpoint, load_checkpoint, load_weights
from modelladder.train.loop import TrainingDiverged, evaluate, fit
from tests.train.helpers import blobs, linear_data, mlp, same_weights


def config(**kw) -> TrainConfig:
    kw.setdefault("optimizer", OptimizerConfig(name="sgd", lr=0.05))
    # one thread: tiny models on a shared 2-core machine stall in OpenMP waits with two
    return TrainConfig(**{"epochs": 3, "batch_size": 32, "log_every": 4, "progress": False, "threads": 1, **kw})


def test_loss_falls_and_accuracy_rises(tmp_path):
    data = blobs()
    model = mlp()
    before = evaluate(model, Classification(3), data.X_val, data.y_val)
    result = fit(model, Classification(3), data, config(epochs=5), seed=0, run_dir=tmp_path)
    assert before["accuracy"] < 0.6
    assert result.history[-1]["val_accuracy"] >= 0.95
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"] < before["loss"]
    assert (result.steps, result.epochs, result.stopped_early, result.best) == (80, 5, False, None)
    assert result.train_seconds > 0
    saved = mlp(seed=1)
    assert load_weights(tmp_path / "model.safetensors", saved) == {"step": "80", "weights": "final"}
    assert same_weights(saved, model)


def test_metrics_jsonl_lines(tmp_path):
    fit(mlp(), Classification(3), blobs(), config(epochs=2), seed=0, run_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in lines if r["split"] == "train"]
    val = [r for r in lines if r["split"] == "val"]
    assert [r["step"] for r in train] == [4, 8, 12, 16, 20, 24, 28, 32]  # 16 steps per epoch
    assert list(train[0]) == ["step", "epoch", "split", "loss", "lr", "samples_per_s"]
    assert [(r["epoch"], r["step"]) for r in val] == [(1, 16), (2, 32)]
    assert list(val[0])[:3] == ["epoch", "step", "split"] and list(val[0])[-1] == "loss"
    assert {"accuracy", "f1_macro", "log_loss", "roc_auc"} <= set(val[0])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000016", "step-000032"]


def test_regression_without_a_validation_split(tmp_path):
    data = linear_data()
    data.X_val, data.y_val = data.X_val[:0], data.y_val[:0]
    model = mlp(n_in=5, n_out=1)
    result = fit(model, Regression(), data, config(epochs=20, optimizer=OptimizerConfig(name="adam", lr=0.01)),
                 seed=0, run_dir=tmp_path)
    assert list(result.history[0]) == ["epoch", "step", "train_loss", "lr"]
    assert result.history[-1]["train_loss"] < 0.05 * result.history[0]["train_loss"]
    assert evaluate(model, Regression(), data.X_test, data.y_test)["r2"] > 0.95


def test_max_steps_stops_inside_an_epoch_and_still_reports(tmp_path):
    result = fit(mlp(), Classification(3), blobs(), config(max_steps=20), seed=0, run_dir=tmp_path)
    assert (result.steps, result.epochs) == (20, 1)
    assert [(r["epoch"], r["step"]) for r in result.history] == [(1, 16), (2, 20)]
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step-000020"


def test_fit_leaves_the_callers_random_state_and_threads(tmp_path):
    threads = torch.get_num_threads()
    during = []

    class Threads:
        def on_epoch_end(self, record):
            during.append(torch.get_num_threads())

    model = mlp(dropout=0.5)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(model, Classification(3), blobs(), config(epochs=1, threads=threads + 1), seed=7, run_dir=tmp_path,
        callbacks=[Threads()])
    assert torch.equal(torch.rand(3), expected)
    assert during == [threads + 1] and torch.get_num_threads() == threads


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    def run(seed, folder):
        model = mlp(dropout=0.3)
        fit(model, Classification(3), blobs(), config(epochs=1), seed=seed, run_dir=tmp_path / folder)
        return model

    assert same_weights(run(1, "a"), run(1, "b"))
    assert not same_weights(run(1, "c"), run(2, "d"))


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    """Overfit a tiny noisy problem: val loss bottoms out early, so patience runs out long before 60 epochs."""
    data = blobs(n=40, n_features=20, seed=3, val=200)
    rng = np.random.default_rng(0)
    data.y_train = rng.integers(0, 3, size=40)  # random labels: nothing to learn, everything to overfit
    snapshots = {}

    class Snapshot:
        def on_epoch_end(self, record):
            snapshots[record["step"]] = {k: v.clone() for k, v in model.state_dict().items()}

    model = mlp(n_in=20, hidden=64)
    cfg = config(epochs=60, batch_size=40, optimizer=OptimizerConfig(name="adam", lr=0.01),
                 early_stopping=EarlyStoppingConfig(metric="val_loss", patience=3))
    result = fit(model, Classification(3), data, cfg, seed=0, run_dir=tmp_path, callbacks=[Snapshot()])
    assert result.stopped_early and result.epochs < 60
    losses = [r["val_loss"] for r in result.history]
    best = int(np.argmin(losses))
    assert result.epochs == best + 1 + 3  # three epochs without improvement after the best
    assert result.best == {"metric": "val_loss", "value": losses[best], "epoch": best + 1, "step": best + 1}
    assert all(torch.equal(v, snapshots[best + 1][k]) for k, v in model.state_dict().items())
    assert load_weights(tmp_path / "model.safetensors", mlp(n_in=20, hidden=64))["weights"] == "best"
    assert (tmp_path / "checkpoints" / "best" / "model.safetensors").is_file()


def test_early_stopping_max_mode_and_min_delta(tmp_path):
    cfg = config(epochs=30, early_stopping=EarlyStoppingConfig(metric="val_accuracy", mode="max", patience=2,
                                                                min_delta=0.5))
    result = fit(mlp(), Classification(3), blobs(), cfg, seed=0, run_dir=tmp_path)
    assert result.stopped_early and result.epochs == 3  # no later epoch can beat the first by 0.5
    assert result.best["epoch"] == 1


def test_unknown_early_stopping_metric_lists_the_available_ones(tmp_path):
    cfg = config(early_stopping=EarlyStoppingConfig(metric="val_acuracy"))
    with pytest.raises(InputError, match=r"^train.early_stopping.metric must be one of \['train_loss', "
                                         r"'val_accuracy', .*'val_loss'\], got 'val_acuracy' "
                                         r"\(did you mean 'val_accuracy'\?\)$"):
        fit(mlp(), Classification(3), blobs(), cfg, seed=0, run_dir=tmp_path)


class NaNAfter(nn.Module):
    """A model whose output turns NaN from its `calls`-th training forward on."""

    def __init__(self, calls: int):
        super().__init__()
        self.net, self.calls, self.limit = mlp(), 0, calls

    def forward(self, x):
        self.calls += self.training
        out = self.net(x)
        return out * float("nan") if self.training and self.calls >= self.limit else out


def test_a_nan_loss_raises_and_keeps_the_last_good_checkpoint(tmp_path):
    model = NaNAfter(calls=11)
    with pytest.raises(TrainingDiverged, match=r"^training diverged: the loss is nan at step 11 \(epoch 1\); "
                                               r"the last good checkpoint is .*step-000010\. "
                                               r"Lower train.optimizer.lr or set train.grad_clip\.$"):
        fit(model, Classification(3), blobs(), config(checkpoint_every=5, log_every=50), seed=0, run_dir=tmp_path)
    last = latest_checkpoint(tmp_path / "checkpoints")
    assert last.name == "step-000010"
    fresh = NaNAfter(calls=11)
    state = load_checkpoint(last, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))
    assert state["step"] == 10 and all(torch.isfinite(p).all() for p in fresh.parameters())


def test_a_huge_learning_rate_diverges(tmp_path):
    cfg = config(optimizer=OptimizerConfig(name="sgd", lr=1e30), log_every=1)
    with pytest.raises(TrainingDiverged, match=r"training diverged: the loss is (nan|inf) at step \d+"):
        fit(mlp(), Classification(3), blobs(), cfg, seed=0, run_dir=tmp_path)


def test_callbacks_see_logs_epochs_checkpoints_and_the_end(tmp_path):
    seen = []

    class Recorder:
        def on_fit_start(self, info):
            seen.append(("start", info["total_steps"]))

        def on_log(self, record):
            seen.append(("log", record["step"]))

        def on_epoch_end(self, record):
            seen.append(("epoch", record["epoch"]))

        def on_checkpoint(self, path):
            seen.append(("checkpoint", path.name))

        def on_fit_end(self, result):
            seen.append(("end", result.steps))

    class OnlyEpochs:  # hooks are optional
        def on_epoch_end(self, record):
            seen.append(("other", record["epoch"]))

    fit(mlp(), Classification(3), blobs(n=96), config(epochs=2, log_every=2), seed=0, run_dir=tmp_path,
        callbacks=[Recorder(), OnlyEpochs()])
    assert seen == [("start", 6), ("log", 2), ("epoch", 1), ("other", 1), ("checkpoint", "step-000003"),
                    ("log", 4), ("log", 6), ("epoch", 2), ("other", 2), ("checkpoint", "step-000006"), ("end", 6)]


def test_an_existing_run_is_not_overwritten_and_resume_needs_a_checkpoint(tmp_path):
    fit(mlp(), Classification(3), blobs(), config(epochs=1), seed=0, run_dir=tmp_path / "run")
    with pytest.raises(InputError, match=r"already holds a training run \(metrics.jsonl\); resume it or choose"):
        fit(mlp(), Classification(3), blobs(), config(epochs=1), seed=0, run_dir=tmp_path / "run")
    with pytest.raises(InputError, match=r"^cannot resume: .*checkpoints holds no checkpoint"):
        fit(mlp(), Classification(3), blobs(), config(), seed=0, run_dir=tmp_path / "empty", resume=True)
    with pytest.raises(InputError, match=r"it was made with train.batch_size 32, this run has 16"):
        fit(mlp(), Classification(3), blobs(), config(batch_size=16), seed=0, run_dir=tmp_path / "run", resume=True)


def test_mixed_precision_on_cpu_warns_and_runs_fp32(tmp_path):
    with pytest.warns(UserWarning, match=r"train.precision 'bf16': mixed precision is for GPUs; running fp32 on cpu"):
        result = fit(mlp(), Classification(3), blobs(), config(epochs=1, precision="bf16"), seed=0,
                     run_dir=tmp_path)
    assert result.steps == 16


def test_cuda_without_a_gpu_is_an_input_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match=r"^train.device is 'cuda' but no CUDA device is available"):
        fit(mlp(), Classification(3), blobs(), config(device="cuda"), seed=0, run_dir=tmp_path)


def test_augmentation_is_applied_per_batch_with_its_own_generator(tmp_path, monkeypatch):
    calls = []

    def fake_augment(x, shift, rotate, generator):
        calls.append((x.shape[0], shift, rotate))
        return x + 0.01 * torch.randn(x.shape, generator=generator)

    monkeypatch.setitem(sys.modules, "modelladder.data.images", types.SimpleNamespace(augment=fake_augment))
    fit(mlp(), Classification(3), blobs(n=64), config(epochs=1), seed=0, run_dir=tmp_path / "on",
        augment=AugmentConfig(shift=2, rotate=10.0))
    assert calls == [(32, 2, 10.0), (32, 2, 10.0)]
    calls.clear()
    fit(mlp(), Classification(3), blobs(n=64), config(epochs=1), seed=0, run_dir=tmp_path / "off",
        augment=AugmentConfig())
    assert calls == []


def test_progress_bar_shows_loss_metric_and_speed(tmp_path):
    import io

    from rich.console import Console

    from modelladder.train.progress import ProgressBar

    out = io.StringIO()
    bar = ProgressBar("val_accuracy", console=Console(file=out, force_terminal=True, width=150))
    fit(mlp(), Classification(3), blobs(), config(epochs=2), seed=0, run_dir=tmp_path, callbacks=[bar])
    text = out.getvalue()
    assert "32/32" in text and "loss " in text and "samples/s" in text and "val_accuracy 1" in text


def test_silent_without_a_terminal(tmp_path, capfd):
    fit(mlp(), Classification(3), blobs(), config(epochs=1, progress=True), seed=0, run_dir=tmp_path)
    assert capfd.readouterr() == ("", "")


def test_resume_with_augmentation_switched_on_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "modelladder.data.images", types.SimpleNamespace(augment=lambda x, **kw: x))
    fit(mlp(), Classification(3), blobs(), config(epochs=1), seed=0, run_dir=tmp_path)
    with pytest.raises(InputError, match=r"holds no random state for \['augment'\] \(it holds \['torch'\]\)"):
        fit(mlp(), Classification(3), blobs(), config(epochs=2), seed=0, run_dir=tmp_path, resume=True,
            augment=AugmentConfig(shift=1))
