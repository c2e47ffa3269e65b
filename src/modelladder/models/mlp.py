"""Multilayer perceptron: flatten, then Linear -> [BatchNorm] -> activation -> [Dropout] per hidden layer.

{name: mlp, hidden: [128]} on 28x28 MNIST is exactly the tutorial 784-128-10 ReLU network.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.schema import Strict

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLPConfig(Strict):
    name: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = [128]  # widths of the hidden layers; [] is a linear model
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)  # after each hidden activation
    batchnorm: bool = False  # BatchNorm1d between each hidden Linear and its activation


class MLP(Network):
    Config = MLPConfig
    # width and depth, dropout, and the training fields every network tunes
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.hidden": {"choices": [[64], [128], [256], [128, 64], [256, 128]]},
                    "model.dropout": DROPOUT}

    def __init__(self, cfg: MLPConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for size in cfg.hidden:
            layers.append(nn.Linear(width, size))
            if cfg.batchnorm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[cfg.activation]())
            if cfg.dropout > 0:
                layers.append(nn.Dropout(cfg.dropout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
