"""Contrastive pretraining (SimCLR): two augmented views of every image, NT-Xent on their projections.

Each training step turns the batch of N images into 2N views (views()): a random zoom (the random crop of
SimCLR, scale 0.8-1.1), a rotation by up to 15 degrees, a shift by up to 1/10 of the image's width and
height and Gaussian noise of 0.1 of the pixel range, all in plain batched torch. Zoom and shift are
fractions of the image, so the views are as hard on 8x8 digits as on 28x28 MNIST. The model (models/simclr.py, head projection) maps
the views to vectors z; NT-Xent with temperature tau asks each view to pick its partner among the 2N - 1
others: loss_i = -log(exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)), sim the cosine,
averaged over the 2N views. The labels ride along unused until the end: evaluate_model scores the frozen
encoder's features with a linear probe (logistic regression) and a k-NN classifier (k = 10, cosine)
fitted on a stratified PROBE_EXAMPLES of the training split and scored on the evaluated split.

Training views draw from torch's default generator (which the loop seeds and checkpoints: a resumed run
ends bitwise where an uninterrupted one does); held-out views from a generator seeded with the run's seed,
so the held-out loss is comparable from one evaluation to the next.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.tasks.base import Task
from modelladder.tasks.reconstruction import first_per_class, generative_problems, pixel_stats, to_pixels

ZOOM, ROTATE, SHIFT, NOISE = (0.8, 1.1), 15.0, 0.1, 0.1  # zoom range, degrees, fraction of the size, pixel std
PROBE_EXAMPLES = 1000  # labelled training images the linear probe and k-NN are fitted on
NEIGHBOURS = 10


class Contrastive(Task):
    target_dtype = torch.long  # the class labels ride along (only the probes use them)
    data_task = "classification"  # the data layer loads the images with their class labels
    monitor = ("loss", "min")
    pretrains_encoder = True

    def __init__(self, temperature: float = 0.5, mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,),
                 *, seed: int = 0, probe: tuple[np.ndarray, np.ndarray] | None = None):
        self.temperature, self.mean, self.std, self.seed, self.probe = temperature, mean, std, seed, probe

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        return generative_problems(cfg, data)

    @classmethod
    def from_config(cls, cfg, data) -> Contrastive:
        from modelladder.data.splits import subsample

        keep = subsample(data.y_train, PROBE_EXAMPLES, seed=cfg.seed, stratify=True, name="the probe's examples")
        return cls(cfg.task.temperature, *pixel_stats(data), seed=cfg.seed,
                   probe=(data.X_train[keep], data.y_train[keep]))

    def views(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """2N augmented views of a batch of N images: views i and N + i come from image i."""
        return augment_views(torch.cat([x, x]), self.std, generator)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        generator = None if model.training else torch.Generator(device=x.device).manual_seed(self.seed)
        per_view = nt_xent(model(self.views(x, generator)), self.temperature)
        n = len(x)
        per_image = (per_view[:n] + per_view[n:]) / 2
        return per_view.mean(), per_image.detach()[:, None]

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        return {"loss": float(np.asarray(scores, np.float64).mean())}

    def evaluate_model(self, model: nn.Module, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """The split's NT-Xent loss, the frozen features' probe and k-NN accuracy, and pictures/views.png."""
        from modelladder.train.loop import evaluate

        metrics = evaluate(model, self, X, y)
        if self.probe is not None:
            metrics |= probe_accuracy(features(model, self.probe[0]), self.probe[1], features(model, X), y)
        save_views(self, X, y, run_dir)
        details = {"probe_examples": 0 if self.probe is None else len(self.probe[1])}
        return metrics, details


def nt_xent(z: Tensor, temperature: float) -> Tensor:
    """NT-Xent per view for 2N projections where rows i and N + i are the two views of one image."""
    z = F.normalize(z.float(), dim=1)
    n = len(z) // 2
    logits = z @ z.T / temperature
    logits.fill_diagonal_(-math.inf)  # a view is not its own partner
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner, reduction="none")


def augment_views(x: Tensor, std: tuple[float, ...], generator: torch.Generator | None) -> Tensor:
    """Each image of (N, C, H, W) zoomed, rotated and shifted at random, then given Gaussian noise of NOISE
    pixels (`std`: the features' per-channel std of a pixel, to put NOISE in feature units)."""
    n, _, h, w = x.shape
    device = x.device

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(n, generator=generator, device=device)

    zoom, angle = uniform(*ZOOM), uniform(-1, 1) * math.radians(ROTATE)
    shift = torch.stack([uniform(-SHIFT, SHIFT) * 2, uniform(-SHIFT, SHIFT) * 2], dim=1)  # affine_grid spans 2
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    # a rotation in pixel space written in affine_grid's [-1, 1] coordinates, as data/images.py's augment
    theta = torch.stack([torch.stack([cos, -sin * h / w, shift[:, 0]], 1),
                         torch.stack([sin * w / h, cos, shift[:, 1]], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    fill = x.amin(dim=(2, 3), keepdim=True)  # the background of normalised images is not 0
    out = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype)
    scale = torch.tensor([NOISE / s for s in std], dtype=x.dtype, device=device).view(1, -1, 1, 1)
    return out + noise * scale


@torch.no_grad()
def features(model: nn.Module, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The encoder's representation (N, F) of images X, in eval mode (the model's mode is kept)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model.encode(torch.from_numpy(np.ascontiguousarray(X[i : i + batch_size])).float().to(device)).cpu()
           for i in range(0, len(X), batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64)


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy on (x, y) of logistic regression on standardised features and of k-NN (cosine) on them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_x, train_y)
    knn = KNeighborsClassifier(n_neighbors=min(NEIGHBOURS, len(train_y)), metric="cosine").fit(train_x, train_y)
    return {"probe_accuracy": float(probe.score(x, y)), "knn_accuracy": float(knn.score(x, y))}


def save_views(task: Contrastive, X: np.ndarray, y: np.ndarray, run_dir: Path) -> Path:
    """pictures/views.png: ten images (one per class where there are classes) over their two views."""
    from modelladder.evaluate.generative import save_grid

    x = torch.from_numpy(np.ascontiguousarray(X[first_per_class(y)])).float()
    views = task.views(x, torch.Generator().manual_seed(task.seed))
    rows = torch.cat([to_pixels(t, task.mean, task.std) for t in (x, *views.chunk(2))])
    return save_grid(rows, Path(run_dir) / "pictures" / "views.png", ncol=len(x),
                     title="images (top) and the two augmented views SimCLR compares",
                     row_labels=["image", "view 1", "view 2"])
