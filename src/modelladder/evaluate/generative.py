"""Generative evaluation and pictures: what a trained image classifier makes of generated images, a
Fréchet distance on that classifier's features, and PNG grids of samples, reconstructions and interpolations.

The Fréchet distance here is computed on the penultimate-layer features of the classifier run named by
eval.classifier (an MNIST / digits CNN or MLP), NOT on Inception-v3 features: it is not the FID of the
literature and is comparable only between runs scored with the same classifier and the same sample sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modelladder.errors import InputError

CONFIDENT = 0.9  # a generated image counts as "confidently classified" at this top probability or above
GRID_DPI = 100
FD_NOTE = ("classifier_fd is a Fréchet distance on the penultimate features of the classifier run {run}, "
           "not the Inception FID; classifier_fd_real is the same distance between two halves of real images "
           "(the floor that finite samples give). Compare values only under the same classifier and sample sizes.")


# ---------------------------------------------------------------- the classifier


def load_classifier(run_dir: Path, input_shape: tuple[int, ...]):
    """The Predictor of a neural image classification run whose images have `input_shape` (C, H, W)."""
    from modelladder.models.build import is_neural
    from modelladder.serve.predictor import Predictor

    predictor = Predictor.load(run_dir)
    transform = predictor.preprocess.get("transform", {})
    if predictor.preprocess.get("kind") != "image" or not predictor.classes or not is_neural(predictor.model):
        raise InputError(f"eval.classifier {run_dir} must be a neural image classification run (mlp or cnn), "
                         f"got model '{predictor.cfg.model.name}' on {predictor.preprocess.get('kind')} data")
    shape = (transform["channels"], transform["height"], transform["width"])
    if shape != tuple(input_shape):
        raise InputError(f"eval.classifier {run_dir} was trained on images shaped {shape}, "
                         f"but this run's images are {tuple(input_shape)}")
    _output_layer(predictor.model, len(predictor.classes), run_dir)
    return predictor


def _output_layer(model: nn.Module, n_classes: int, run_dir: Path) -> nn.Linear:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not last or last[-1].out_features != n_classes:
        raise InputError(f"eval.classifier {run_dir}: its model does not end in a Linear layer with one output "
                         f"per class, so it has no penultimate features to compare")
    return last[-1]


@torch.no_grad()
def classify(predictor, pixels: np.ndarray, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(class probabilities (N, K), penultimate features (N, F)) for images (N, C, H, W) in [0, 1]."""
    model = predictor.model
    layer = _output_layer(model, len(predictor.classes), predictor.run_dir)
    captured: list[Tensor] = []
    hook = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    try:
        raw = pixels * predictor.preprocess["transform"]["pixel_max"]  # back to the classifier's pixel scale
        features = predictor.features(raw)
        device = next(model.parameters()).device
        logits = [model(torch.from_numpy(features[i : i + batch_size]).to(device))
                  for i in range(0, len(features), batch_size)]
    finally:
        hook.remove()
    proba = torch.cat(logits).float().softmax(dim=1).cpu().numpy()
    return proba, torch.cat(captured).flatten(1).double().cpu().numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two sets of feature rows.

    Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2), a
    symmetric matrix: stable where a covariance is singular (dead ReLU units), unlike a general sqrtm.
    """
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root_a @ cov_b @ root_a
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    value = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(value, 0.0))


def classifier_metrics(predictor, generated: np.ndarray, real: np.ndarray) -> tuple[dict[str, float], dict]:
    """Metrics of generated images (N, C, H, W) in [0, 1] against real ones, and details for eval_<split>.json.

    The real images are cut in two halves: generated images are compared with the second half, and the
    first half gives the same numbers for real images (what a perfect generator would reach).
    """
    half = len(real) // 2
    if half < 2:
        raise InputError(f"generative evaluation needs at least 4 real images in the split, got {len(real)}")
    generated = generated[:half]
    proba_gen, feat_gen = classify(predictor, generated)
    proba_a, feat_a = classify(predictor, real[:half])
    _, feat_b = classify(predictor, real[half : 2 * half])
    k = len(predictor.classes)
    counts = np.bincount(proba_gen.argmax(axis=1), minlength=k)
    share = counts / counts.sum()
    nonzero = share[share > 0]
    metrics = {
        "classifier_confidence": float(proba_gen.max(axis=1).mean()),
        "classifier_confident_share": float((proba_gen.max(axis=1) >= CONFIDENT).mean()),
        "classifier_class_entropy": float(-(nonzero * np.log(nonzero)).sum() / np.log(k)),
        "classifier_fd": frechet_distance(feat_gen, feat_b),
        "classifier_confidence_real": float(proba_a.max(axis=1).mean()),
        "classifier_fd_real": frechet_distance(feat_a, feat_b),
    }
    details = {"classifier": str(predictor.run_dir), "samples": int(half), "features": int(feat_gen.shape[1]),
               "predicted_classes": dict(zip(predictor.classes, counts.tolist())),
               "note": FD_NOTE.format(run=predictor.run_dir)}
    return metrics, details


# ---------------------------------------------------------------- pictures


def tile(images: np.ndarray, ncol: int) -> np.ndarray:
    """Images (N, C, H, W) in [0, 1] as one (rows*H, ncol*W, C) array, a 1-pixel gap between them."""
    n, c, h, w = images.shape
    rows = -(-n // ncol)
    grid = np.ones((rows * (h + 1) - 1, ncol * (w + 1) - 1, c), np.float32)
    for i, image in enumerate(np.clip(images, 0, 1)):
        r, col = divmod(i, ncol)
        grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image.transpose(1, 2, 0)
    return grid


def save_grid(images, path: Path, *, ncol: int, title: str, row_labels: list[str] | None = None) -> Path:
    """A PNG of `images` (N, C, H, W) in [0, 1], `ncol` per row, with a title and optional row labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    images = images.detach().float().cpu().numpy() if isinstance(images, Tensor) else np.asarray(images)
    grid = tile(images, ncol)
    height, width = grid.shape[:2]
    scale = max(2.0, 24 / images.shape[-1])  # small images (8x8 digits) are drawn larger
    fig = Figure(figsize=(max(width * scale / GRID_DPI + 1.0, 5.5), height * scale / GRID_DPI + 0.5), dpi=GRID_DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    h = images.shape[2]
    ax.set_yticks([i * (h + 1) + h / 2 for i in range(len(row_labels or []))], row_labels or [], fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return path


def sample_noise(n: int, latent: int, seed: int) -> Tensor:
    """The fixed noise every sample grid of a run is drawn from (its own generator: the run's RNG is untouched)."""
    return torch.randn(n, latent, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(model: nn.Module, noise: Tensor, batch_size: int = 500) -> Tensor:
    """model.sample on `noise` in eval mode, in batches; the model's mode is left as it was."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        return torch.cat([model.sample(noise[i : i + batch_size].to(device)).float().cpu()
                          for i in range(0, len(noise), batch_size)])
    finally:
        model.train(was_training)


class SampleGrids:
    """Training callback: a grid of samples from the same fixed noise every `every` steps, saved as
    pictures/samples-step-NNNNNN.png, so the grids show one set of latent points through training."""

    def __init__(self, model: nn.Module, noise: Tensor, folder: Path, every: int):
        self.model, self.noise, self.folder, self.every = model, noise, Path(folder), every
        self.done = 0

    def on_fit_start(self, info: dict) -> None:
        self.done = info["step"] // self.every  # a resumed run does not redraw the grids it has

    def on_log(self, record: dict) -> None:
        step = record["step"]
        if step // self.every > self.done:
            self.done = step // self.every
            save_grid(generate(self.model, self.noise), self.folder / f"samples-step-{step:06d}.png",
                      ncol=8, title=f"fixed-noise samples, step {step}")


def score_samples(model: nn.Module, real: np.ndarray, run_dir: Path, *, seed: int,
                  classifier: Path | None) -> tuple[dict[str, float], dict]:
    """pictures/samples.png from the run's fixed noise and, with a classifier run, classifier_metrics of as
    many samples as half the real images (N, C, H, W) in [0, 1]."""
    save_grid(generate(model, sample_noise(64, model.latent, seed)), Path(run_dir) / "pictures" / "samples.png",
              ncol=8, title="fixed-noise samples, end of training")
    if classifier is None:
        return {}, {"note": "no eval.classifier: generated images were not scored"}
    predictor = load_classifier(classifier, real.shape[1:])
    generated = generate(model, sample_noise(len(real) // 2, model.latent, seed + 1)).numpy()
    return classifier_metrics(predictor, generated, real)
