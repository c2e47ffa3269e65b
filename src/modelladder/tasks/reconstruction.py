"""Reconstruction (autoencoders): the model's output is scored against its input's pixels in [0, 1].

The model sees the features the data layer made (standardised or not, data.normalize); the target is
the same images as pixels in [0, 1] (the features with the normalisation undone), which a sigmoid
output can reach. task.loss bce is binary cross-entropy, mse the squared error, each averaged over
pixels and examples as Keras' tutorial autoencoder does. Both are reported on every split.

The helpers at the bottom serve the vae and gan tasks too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.tasks.base import Task


class Reconstruction(Task):
    target_dtype = torch.long  # the class labels ride along (pictures pick one input per class)
    data_task = "classification"  # the data layer loads the images with their class labels
    monitor = ("loss", "min")
    pretrains_encoder = True

    def __init__(self, loss: str = "bce", mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,)):
        self.loss_name, self.mean, self.std = loss, mean, std

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        return generative_problems(cfg, data)

    @classmethod
    def from_config(cls, cfg, data) -> Reconstruction:
        return cls(cfg.task.loss, *pixel_stats(data))

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        output = model(x)
        bce, mse = pixel_errors(output, to_pixels(x, self.mean, self.std))
        per_example = torch.stack([bce.flatten(1).mean(1), mse.flatten(1).mean(1)], dim=1)
        chosen = per_example[:, 0] if self.loss_name == "bce" else per_example[:, 1]
        return chosen.mean(), per_example.detach()

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        bce, mse = np.asarray(scores, np.float64).mean(axis=0).tolist()
        return {"bce": bce, "mse": mse, "loss": bce if self.loss_name == "bce" else mse}

    def evaluate_model(self, model: nn.Module, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """The split's reconstruction errors, and pictures/reconstructions.png."""
        from modelladder.train.loop import evaluate

        metrics = evaluate(model, self, X, y)
        save_reconstructions(model, X, y, self, run_dir)
        return metrics, {}


# ---------------------------------------------------------------- shared by the generative tasks


def generative_problems(cfg, data) -> list[str]:
    """Image data: what every generative task needs (which models train it is declared by the models), and a
    usable eval.classifier when one is named."""
    if data.kind != "image":
        return [f"task.name '{cfg.task.name}' needs image data, but data.dataset '{cfg.data.dataset}' "
                f"is {data.kind} data"]
    if cfg.eval.classifier is not None:
        from modelladder.evaluate.generative import load_classifier

        try:
            load_classifier(cfg.eval.classifier, data.input_shape)
        except InputError as err:
            return err.problems
    return []


def pixel_stats(data) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std that turn this bundle's features back into pixels in [0, 1]."""
    return tuple(data.preprocess["mean"]), tuple(data.preprocess["std"])


def to_pixels(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    shape = (1, len(mean)) + (1,) * (x.dim() - 2)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x * std_t + mean_t).clamp_(0, 1)  # clamp: float rounding can leave 1 + 1e-7


def pixel_errors(output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel binary cross-entropy and squared error of outputs in [0, 1] (computed in fp32)."""
    output, target = output.float(), target.float()
    return F.binary_cross_entropy(output, target, reduction="none"), (output - target) ** 2


def first_per_class(y: np.ndarray, n: int = 10) -> np.ndarray:
    """Indices of up to `n` examples, one of each class first (so pictures show every digit)."""
    y = np.asarray(y)
    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)][:n]
    taken = set(firsts)
    rest = [i for i in range(len(y)) if i not in taken][: n - len(firsts)]
    return np.asarray(firsts + rest, np.int64)


@torch.no_grad()
def save_reconstructions(model: nn.Module, X: np.ndarray, y: np.ndarray, task, run_dir: Path) -> Path:
    """pictures/reconstructions.png: ten inputs (one per class where there are classes) over their outputs."""
    from modelladder.evaluate.generative import save_grid

    model.eval()
    pick = first_per_class(y)
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(X[pick])).float().to(device)
    rows = torch.cat([to_pixels(x, task.mean, task.std), model(x).float()]).cpu()
    return save_grid(rows, Path(run_dir) / "pictures" / "reconstructions.png", ncol=len(pick),
                     title="inputs (top) and their reconstructions (bottom)", row_labels=["input", "output"])
