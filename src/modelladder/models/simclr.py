"""SimCLR network: a convolutional encoder to a representation vector, then a head.

The encoder is blocks of Conv 3x3 -> BatchNorm -> ReLU -> MaxPool (one per entry of `channels`, pooling
while the map stays at least 2x2), then Flatten -> Linear -> ReLU to `features` numbers: the representation
that a downstream classifier reuses. head projection (what task contrastive trains): SimCLR's MLP
projection Linear -> ReLU -> Linear to `projection` numbers, on which NT-Xent is computed. head classifier
(the default, and what fine-tuning sets): Dropout -> Linear to the classes, so the same encoder serves as a
plain CNN classifier trained from scratch or as the backbone of a fine-tuned one (verbs/transfer.py).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.models.base import DROPOUT, NETWORK_SPACE, Network
from modelladder.schema import Strict


class SimCLRConfig(Strict):
    name: Literal["simclr"] = "simclr"
    channels: list[Annotated[int, Field(gt=0)]] = Field([32, 64], min_length=1)  # output channels per block
    features: int = Field(128, gt=0)  # width of the representation
    projection: int = Field(64, gt=0)  # head projection: width of the space NT-Xent compares in
    head: Literal["classifier", "projection"] = "classifier"  # projection for task contrastive
    dropout: float = Field(0.0, ge=0, lt=1)  # head classifier: on the representation, before the Linear layer


class SimCLR(Network):
    Config = SimCLRConfig
    search_space: ClassVar[dict[str, dict]] = {**NETWORK_SPACE, "model.channels": {"choices": [[16, 32], [32, 64], [64, 128]]},
                    "model.features": {"choices": [64, 128, 256]}, "model.projection": {"choices": [32, 64, 128]},
                    "model.dropout": DROPOUT}
    tasks = ("contrastive", "classification")  # head projection, head classifier
    backbone_parts = ("encoder",)  # what a pretrained SimCLR provides (verbs/transfer.py); the head is new
    finetune_fields = frozenset({"head", "dropout"})  # what a fine-tuned classifier sets for itself

    def __init__(self, cfg: SimCLRConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if len(input_shape) != 3:
            raise InputError(f"model simclr needs images shaped (C, H, W), got input shape {tuple(input_shape)}")
        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out_channels in cfg.channels:
            layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU()]
            if min(height, width) >= 4:  # pooling further would leave less than 2x2
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            in_channels = out_channels
        layers += [nn.Flatten(), nn.Linear(in_channels * height * width, cfg.features), nn.ReLU()]
        self.encoder = nn.Sequential(*layers)
        if cfg.head == "projection":
            self.head = nn.Sequential(nn.Linear(cfg.features, cfg.features), nn.ReLU(),
                                      nn.Linear(cfg.features, cfg.projection))
        else:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.features, n_outputs))
        self.features = cfg.features
        self.frozen = False  # finetune mode 'frozen' (models/modes.py): the encoder stays in eval mode

    @classmethod
    def problems(cls, cfg) -> list[str]:
        """The head a task needs: task contrastive trains the projection, every other task the classifier."""
        wanted = "projection" if cfg.task.name == "contrastive" else "classifier"
        if cfg.model.head != wanted:
            return [f"task.name '{cfg.task.name}' needs model.head '{wanted}' for model simclr, got '{cfg.model.head}'"]
        return []

    encodes = True  # models/base.py: encode(x) gives the code ladder export writes

    def encode(self, x: Tensor) -> Tensor:
        """The representation (N, features): what a linear probe and a fine-tuned classifier start from."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))

    def train(self, mode: bool = True) -> SimCLR:
        super().train(mode)
        if self.frozen:  # a frozen encoder's batchnorm statistics must not move
            self.encoder.eval()
        return self
