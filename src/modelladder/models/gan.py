"""DCGAN-style generator and discriminator (Radford et al. 2015) for small images whose sides divide by 4
(28x28 MNIST, 8x8 digits).

Generator: z (latent) -> Linear -> BatchNorm -> ReLU to 2*width channels at a quarter of the size ->
ConvTranspose 4x4 stride 2 -> BatchNorm -> ReLU (width channels, half size) -> ConvTranspose 4x4 stride 2
-> Tanh: images in [-1, 1]. Discriminator: Conv 4x4 stride 2 -> LeakyReLU(0.2) -> Conv 4x4 stride 2 ->
BatchNorm (batch statistics only) -> LeakyReLU(0.2) -> Linear: one logit, "real". Weights start as DCGAN's N(0, 0.02).
forward(z) generates; the adversarial objective and its two updates live in the gan task (tasks/gan.py).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.models.base import Network
from modelladder.schema import Strict


class GANConfig(Strict):
    name: Literal["gan"] = "gan"
    latent: int = Field(64, gt=0)  # dimensions of the noise z
    width: int = Field(32, gt=0)  # channels of the generator's last block and the discriminator's first


class GAN(Network):
    Config = GANConfig
    search_space: ClassVar[dict[str, dict]] = {"train.optimizer.lr": {"low": 5e-5, "high": 1e-3, "log": True},
                    "model.latent": {"choices": [32, 64, 128]}, "model.width": {"choices": [16, 32, 64]}}
    input_kind = "pixels"  # the shared model suite's images in [0, 1]
    tasks = ("gan",)

    def __init__(self, cfg: GANConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if len(input_shape) != 3 or input_shape[1] % 4 or input_shape[2] % 4:
            raise InputError(f"model gan needs images shaped (C, H, W) with H and W divisible by 4, got input shape "
                             f"{tuple(input_shape)}")
        channels, height, width = input_shape
        h, w, wide = height // 4, width // 4, 2 * cfg.width
        self.latent = cfg.latent
        self.generator = nn.Sequential(
            nn.Linear(cfg.latent, wide * h * w, bias=False), nn.BatchNorm1d(wide * h * w), nn.ReLU(),
            nn.Unflatten(1, (wide, h, w)),
            nn.ConvTranspose2d(wide, cfg.width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(cfg.width),
            nn.ReLU(),
            nn.ConvTranspose2d(cfg.width, channels, 4, stride=2, padding=1), nn.Tanh(),
        )
        # the discriminator sees real and generated batches apart: running averages of both would describe
        # neither, so it always normalises with its batch's statistics, in evaluation as in training
        self.discriminator = nn.Sequential(
            nn.Conv2d(channels, cfg.width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(cfg.width, wide, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(wide, track_running_stats=False), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(wide * h * w, 1),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def sample(self, noise: Tensor) -> Tensor:
        """Images in [0, 1] for `noise` (N, latent)."""
        return (self.generator(noise) + 1) / 2

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)
