"""The GAN objective (DCGAN's non-saturating loss), with its two updates in the task's own training step.

Each loop step: the discriminator is updated on real images (label 1) and generated ones (label 0),
then the generator is updated so that the discriminator calls its images real. Both updates go through
the loop's `update(loss, params)`, which touches only the parameters it is given; the loop's one
optimizer (train.optimizer, the same settings for both networks, DCGAN: adam lr 2e-4 betas [0.5, 0.999])
holds both networks' state, and checkpoints and resume cover it as any other run's.

The real images are the features turned back into pixels in [0, 1], then into the generator's [-1, 1].
Held-out numbers (d_loss, g_loss, how often the discriminator is right on real and on generated images)
use noise from a generator seeded with the run's seed. Training noise comes from torch's default
generator, which the loop seeds and checkpoints, so a resumed GAN ends bitwise where an uninterrupted
one does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.tasks.base import Task
from modelladder.tasks.reconstruction import generative_problems, pixel_stats, to_pixels


class GAN(Task):
    target_dtype = torch.long  # the class labels ride along (pictures pick one input per class)
    data_task = "classification"  # the data layer loads the images with their class labels
    monitor = ("loss", "min")

    def __init__(self, mean: tuple[float, ...] = (0.0,), std: tuple[float, ...] = (1.0,), *, seed: int = 0,
                 sample_every: int = 500, classifier: Path | None = None):
        self.mean, self.std, self.seed = mean, std, seed
        self.sample_every, self.classifier = sample_every, classifier

    @classmethod
    def problems(cls, cfg, data) -> list[str]:
        problems = []
        if cfg.train.precision != "fp32":
            problems.append(f"task.name 'gan' trains in fp32 (its two updates have no loss scaling): "
                            f"train.precision must be 'fp32', got '{cfg.train.precision}'")
        problems += cfg.train.penalty_problems("task.name 'gan'", "it would mix both networks' weights into each "
                                               "update")
        return [*problems, *generative_problems(cfg, data)]

    @classmethod
    def from_config(cls, cfg, data) -> GAN:
        return cls(*pixel_stats(data), seed=cfg.seed, sample_every=cfg.task.sample_every,
                   classifier=cfg.eval.classifier)

    def real(self, x: Tensor) -> Tensor:
        return to_pixels(x, self.mean, self.std) * 2 - 1

    def train_step(self, model: nn.Module, x: Tensor, y: Tensor, update) -> Tensor:
        """One discriminator update, then one generator update; returns d_loss + g_loss (what the loop logs)."""
        fake = model.generator(torch.randn(len(x), model.latent, device=x.device))
        d_real, d_fake = model.discriminator(self.real(x)), model.discriminator(fake.detach())
        d_loss = _bce(d_real, 1.0) + _bce(d_fake, 0.0)
        update(d_loss, list(model.discriminator.parameters()))
        g_loss = _bce(model.discriminator(fake), 1.0)
        update(g_loss, list(model.generator.parameters()))
        return (d_loss + g_loss).detach()

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Both losses on a batch (evaluation, FLOP counts): per example d_loss, g_loss, and whether the
        discriminator is right on the real image and on one generated image."""
        generator = None if model.training else torch.Generator(device=x.device).manual_seed(self.seed)
        noise = torch.randn(len(x), model.latent, generator=generator, device=x.device)
        d_real = model.discriminator(self.real(x)).float().squeeze(1)
        d_fake = model.discriminator(model.generator(noise)).float().squeeze(1)
        d_loss = _bce(d_real, 1.0, "none") + _bce(d_fake, 0.0, "none")
        g_loss = _bce(d_fake, 1.0, "none")
        outputs = torch.stack([d_loss, g_loss, (d_real > 0).float(), (d_fake < 0).float()], dim=1)
        return (d_loss + g_loss).mean(), outputs.detach()

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        d_loss, g_loss, real_right, fake_right = np.asarray(scores, np.float64).mean(axis=0).tolist()
        return {"d_loss": d_loss, "g_loss": g_loss, "d_accuracy_real": real_right, "d_accuracy_fake": fake_right,
                "loss": d_loss + g_loss}

    def callbacks(self, model: nn.Module, run_dir: Path) -> list:
        from modelladder.evaluate.generative import SampleGrids, sample_noise

        return [SampleGrids(model, sample_noise(64, model.latent, self.seed), Path(run_dir) / "pictures",
                            self.sample_every)]

    def evaluate_model(self, model: nn.Module, X: np.ndarray, y: np.ndarray, run_dir: Path) -> tuple[dict, dict]:
        """The split's adversarial losses, the final fixed-noise grid and, with eval.classifier, what that
        classifier makes of generated images."""
        from modelladder.evaluate.generative import score_samples
        from modelladder.train.loop import evaluate

        metrics = evaluate(model, self, X, y)
        real = to_pixels(torch.from_numpy(np.ascontiguousarray(X)).float(), self.mean, self.std).numpy()
        scores, details = score_samples(model, real, run_dir, seed=self.seed, classifier=self.classifier)
        return {**metrics, **scores}, details


def _bce(logits: Tensor, label: float, reduction: str = "mean") -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction=reduction)
