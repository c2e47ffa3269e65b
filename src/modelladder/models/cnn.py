"""Convolutional network: blocks of (Conv -> [BatchNorm] -> ReLU) x n -> MaxPool, then Dropout -> MLP head.

The defaults (32-32-pool-64-64-pool, dropout 0.25, a 128-wide head) reach 99.5% on MNIST in 3 epochs
of AdamW with a cosine schedule.

A block pools only while the feature map stays at least 2x2, so the same config runs on 8x8 digits
and 28x28 MNIST (and any other (C, H, W) image).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.schema import Strict


class CNNConfig(Strict):
    name: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(gt=0)]] = Field([32, 64], min_length=1)  # output channels per block
    convs_per_block: int = Field(2, gt=0)  # conv layers (each with its BatchNorm and ReLU) before a pool
    kernel_size: int = Field(3, gt=0)
    batchnorm: bool = True
    dropout: float = Field(0.25, ge=0, lt=1)  # on the flattened features, before the head
    hidden: int = Field(128, ge=0)  # width of the head's hidden Linear layer; 0 = none

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError(f"must be odd so that padding keeps the image size, got {k}")
        return k


class CNN(Network):
    Config = CNNConfig
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.channels": {"choices": [[16, 32], [32, 64], [64, 128]]},
                    "model.hidden": {"choices": [0, 64, 128, 256]}, "model.dropout": DROPOUT}

    def __init__(self, cfg: CNNConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if len(input_shape) != 3:
            raise InputError(f"model cnn needs images shaped (C, H, W), got input shape {tuple(input_shape)}")
        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out_channels in cfg.channels:
            for _ in range(cfg.convs_per_block):
                layers.append(nn.Conv2d(in_channels, out_channels, cfg.kernel_size, padding=cfg.kernel_size // 2))
                if cfg.batchnorm:
                    layers.append(nn.BatchNorm2d(out_channels))
                layers.append(nn.ReLU())
                in_channels = out_channels
            if min(height, width) >= 4:  # pooling further would leave less than 2x2
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten()]
        if cfg.dropout > 0:
            head.append(nn.Dropout(cfg.dropout))
        features = in_channels * height * width
        if cfg.hidden > 0:
            head += [nn.Linear(features, cfg.hidden), nn.ReLU()]
            features = cfg.hidden
        head.append(nn.Linear(features, n_outputs))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
