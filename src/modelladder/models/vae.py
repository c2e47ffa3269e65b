"""Variational autoencoder: the encoder gives the mean and log-variance of q(z|x), the decoder maps a
latent z to pixels in [0, 1] (sigmoid). The ELBO and its beta live in the vae task (tasks/vae.py).

kind mlp: flatten -> Linear -> activation per width in `hidden`, then two Linear heads (mean, log-variance);
the decoder mirrors the widths. kind conv: stride-2 convolutions as the conv autoencoder (models/autoencoder.py).
forward(x) decodes a sample of q(z|x) in training mode and its mean in eval mode.

head classifier (what fine-tuning from a VAE run sets, verbs/transfer.py): the encoder and the mean of q(z|x)
with a new Dropout -> Linear head to the classes instead of the decoder, for task classification.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from modelladder.models.autoencoder import (
    conv_decoder,
    conv_encoder,
    head_problems,
    mlp_decoder,
    mlp_encoder,
    tuning_space,
)
from modelladder.models.base import NETWORK_SPACE, Network
from modelladder.schema import Strict


class VAEConfig(Strict):
    name: Literal["vae"] = "vae"
    kind: Literal["mlp", "conv"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field([512], min_length=1)  # mlp: encoder widths
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"  # mlp
    channels: list[Annotated[int, Field(gt=0)]] = Field([32, 64], min_length=1)  # conv: channels per stride-2 conv
    latent: int = Field(16, gt=0)  # dimensions of z
    head: Literal["decoder", "classifier"] = "decoder"  # classifier: a Linear head on the mean of z (fine-tuning)
    dropout: float = Field(0.0, ge=0, lt=1)  # head classifier: on the mean, before the Linear layer


class VAE(Network):
    Config = VAEConfig
    input_kind = "pixels"  # the shared model suite's images in [0, 1]
    tasks = ("vae", "classification")  # head decoder, head classifier
    backbone_parts = ("encoder", "mean")  # what a pretrained VAE gives a classifier (verbs/transfer.py)
    finetune_fields = frozenset({"head", "dropout"})  # what a fine-tuned classifier sets for itself
    search_space: ClassVar[dict[str, dict]] = dict(NETWORK_SPACE)

    @classmethod
    def search_space_for(cls, cfg: VAEConfig) -> dict[str, dict]:
        """The training fields, the encoder of its kind, the size of z; a classifier head's dropout (task.beta is
        left alone: it changes what the validation loss measures)."""
        return tuning_space(cls.search_space, cfg, latents=[8, 16, 32], mlp_latent=True)

    def __init__(self, cfg: VAEConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if cfg.kind == "mlp":
            self.encoder, width = mlp_encoder(input_shape, cfg.hidden, cfg.activation)
        else:
            body, width, sizes = conv_encoder(input_shape, cfg.channels, "vae")
            self.encoder = nn.Sequential(*body)
        self.classifier = cfg.head == "classifier"
        if not self.classifier:  # built in this order so that a seed gives the same weights as before heads
            self.decoder = mlp_decoder(cfg.latent, cfg.hidden[::-1], input_shape, cfg.activation) \
                if cfg.kind == "mlp" else conv_decoder(cfg.latent, cfg.channels, input_shape, sizes)
        self.mean = nn.Linear(width, cfg.latent)
        if self.classifier:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.latent, n_outputs))
        else:
            self.log_var = nn.Linear(width, cfg.latent)
        self.latent = cfg.latent
        self.frozen = False  # finetune mode 'frozen' (models/modes.py): the encoder stays in eval mode

    @classmethod
    def problems(cls, cfg) -> list[str]:
        return head_problems(cfg, "vae")

    encodes = True  # models/base.py: encode(x) gives the code ladder export writes

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and log-variance (N, latent) of q(z|x)."""
        h = self.encoder(x)
        return self.mean(h), self.log_var(h)

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)

    def sample_latent(self, mean: Tensor, log_var: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """z = mean + sigma * eps (the reparameterisation: gradients flow through mean and sigma)."""
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + eps * torch.exp(0.5 * log_var)

    def sample(self, noise: Tensor) -> Tensor:
        """Images from the prior: `noise` (N, latent) is z ~ N(0, I)."""
        return self.decoder(noise)

    def forward(self, x: Tensor) -> Tensor:
        if self.classifier:
            return self.head(self.mean(self.encoder(x)))
        mean, log_var = self.encode(x)
        return self.decoder(self.sample_latent(mean, log_var) if self.training else mean)

    def train(self, mode: bool = True) -> VAE:
        super().train(mode)
        if self.frozen:  # a frozen encoder's features must not change with training-mode layers
            self.encoder.eval()
        return self
