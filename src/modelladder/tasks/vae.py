"""The VAE objective: the negative ELBO, reconstruction + beta * KL(q(z|x) || N(0, I)), per image.

The reconstruction term sums the per-pixel error over the image (task.loss bce: binary cross-entropy
against the pixels in [0, 1], in nats; mse: the squared error); the KL term is the closed form for a
diagonal Gaussian. Training draws z with the reparameterisation from torch's default generator (which
the loop seeds and checkpoints), evaluation from a generator seeded with the run's seed, so held-out
numbers are comparable from one evaluation to the next. beta > 1 weighs the prior more (beta-VAE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modelladder.tasks.base import Task
from modelladder.tasks.reconstruction import (
    first_per_class,
    generative_problems,
    pixel_errors,
    pixel_stats,
    save_reconstructions,
    to_pixels,
)

INTERPOLATION_STEPS = 10


class VAE(Task):
    target_dtype = torch.long  # the class labels ride along (pictures pick one input per class)
    data_task = "classification"  # the data layer loads the images with their class labels
    monitor = ("loss", "min")
    pretrains_encoder = True

    def __init__(self, loss: str = "bce", beta: float = 1.0, mean: tuple[float, ...] = (0.0,),
                 std: tuple[float, ...] = (1.0,), *, seed: int = 0, sample_every: int = 500,
                 classifier: Path | None = None):
        self.loss_name, self.beta, self.mean, self.std = loss, beta, mean, std
        self.seed, self.sample_every, self.classifier = seed, sample_every, classifier

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        return generative_problems(cfg, data)

    @classmethod
    def from_config(cls, cfg, data) -> VAE:
        return cls(cfg.task.loss, cfg.task.beta, *pixel_stats(data), seed=cfg.seed,
                   sample_every=cfg.task.sample_every, classifier=cfg.eval.classifier)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = model.encode(x)
        generator = None if model.training else torch.Generator(device=x.device).manual_seed(self.seed)
        output = model.decode(model.sample_latent(mean, log_var, generator))
        bce, mse = pixel_errors(output, to_pixels(x, self.mean, self.std))
        recon = (bce if self.loss_name == "bce" else mse).flatten(1).sum(1)
        mean, log_var = mean.float(), log_var.float()
        # 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2); expm1(v) - v is >= 0 in floating point too
        kl = 0.5 * (mean**2 + torch.expm1(log_var) - log_var).sum(1)
        outputs = torch.stack([recon, kl, bce.flatten(1).mean(1), mse.flatten(1).mean(1)], dim=1)
        return (recon + self.beta * kl).mean(), outputs.detach()

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        recon, kl, bce, mse = np.asarray(scores, np.float64).mean(axis=0).tolist()
        return {"recon": recon, "kl": kl, "neg_elbo": recon + kl, "bce": bce, "mse": mse,
                "loss": recon + self.beta * kl}

    def callbacks(self, model: nn.Module, run_dir: Path) -> list:
        from modelladder.evaluate.generative import SampleGrids, sample_noise

        return [SampleGrids(model, sample_noise(64, model.latent, self.seed), Path(run_dir) / "pictures",
                            self.sample_every)]

    def evaluate_model(self, model: nn.Module, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """The split's ELBO terms; reconstructions, prior samples and latent interpolations in pictures/;
        with eval.classifier, what that classifier makes of prior samples."""
        from modelladder.evaluate.generative import score_samples
        from modelladder.train.loop import evaluate

        metrics = evaluate(model, self, X, y)
        save_reconstructions(model, X, y, self, run_dir)
        save_interpolations(model, X, y, self, run_dir)
        real = to_pixels(torch.from_numpy(np.ascontiguousarray(X)).float(), self.mean, self.std).numpy()
        scores, details = score_samples(model, real, run_dir, seed=self.seed, classifier=self.classifier)
        return {**metrics, **scores}, details


@torch.no_grad()
def interpolate(model: nn.Module, a: Tensor, b: Tensor, steps: int = INTERPOLATION_STEPS) -> Tensor:
    """Decoded images along the straight line between the latent means of inputs a and b (each (C, H, W))."""
    was_training = model.training
    model.eval()
    mean, _ = model.encode(torch.stack([a, b]))
    weights = torch.linspace(0, 1, steps, device=mean.device)[:, None]
    images = model.decode((1 - weights) * mean[0] + weights * mean[1])
    model.train(was_training)
    return images


def save_interpolations(model: nn.Module, X: np.ndarray, y: np.ndarray, task: VAE, run_dir: Path) -> Path:
    """pictures/interpolation.png: four pairs of inputs (different classes where there are classes), each
    row the first input, the decoded points between their latent means, and the second input."""
    from modelladder.evaluate.generative import save_grid

    pick = first_per_class(y, 8)
    device = next(model.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(X[pick])).float().to(device)
    pixels = to_pixels(x, task.mean, task.std)
    rows, labels = [], []
    for i in range(0, len(pick) - 1, 2):
        rows += [pixels[i : i + 1], interpolate(model, x[i], x[i + 1]).float(), pixels[i + 1 : i + 2]]
        labels.append(f"{y[pick[i]]} -> {y[pick[i + 1]]}")
    return save_grid(torch.cat(rows).cpu(), Path(run_dir) / "pictures" / "interpolation.png",
                     ncol=INTERPOLATION_STEPS + 2, row_labels=labels,
                     title="latent interpolation: input, points between the latent means, input")
