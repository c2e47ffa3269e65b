"""Autoencoder: an encoder to a code vector and a decoder back to the image, pixels in [0, 1] (sigmoid).

kind mlp: flatten, then Linear -> activation for each width in `hidden` (the last width is the code);
the decoder mirrors the widths and ends in Linear -> Sigmoid. {name: autoencoder, hidden: [256]} on
MNIST is exactly the tutorial network 784 -> Dense 256 ReLU -> Dense 784 sigmoid (402,448 parameters).

kind conv: a stride-2 Conv -> ReLU per entry of `channels`, then Linear to a `latent`-wide code; the
decoder is Linear -> ReLU, then stride-2 transposed convolutions back to the input size (any H, W).

head classifier (what fine-tuning from an autoencoder run sets, verbs/transfer.py): the encoder with a new
Dropout -> Linear head to the classes instead of the decoder, for task classification.

The helpers below build the same encoders and decoders for the VAE (models/vae.py).
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import Field
from torch import Tensor, nn

from modelladder.errors import InputError
from modelladder.models.base import NETWORK_SPACE, Network
from modelladder.schema import Strict

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class AutoencoderConfig(Strict):
    name: Literal["autoencoder"] = "autoencoder"
    kind: Literal["mlp", "conv"] = "mlp"
    hidden: list[Annotated[int, Field(gt=0)]] = Field([256], min_length=1)  # mlp: encoder widths; the last is the code
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"  # mlp
    channels: list[Annotated[int, Field(gt=0)]] = Field([32, 64], min_length=1)  # conv: channels per stride-2 conv
    latent: int = Field(32, gt=0)  # conv: width of the code
    head: Literal["decoder", "classifier"] = "decoder"  # classifier: a Linear head on the code (fine-tuning)
    dropout: float = Field(0.0, ge=0, lt=1)  # head classifier: on the code, before the Linear layer


def tuning_space(base: dict, cfg, latents: list[int], mlp_latent: bool) -> dict[str, dict]:
    """An autoencoder's or VAE's space for its kind and head (their configs share these fields); `mlp_latent`:
    whether kind mlp reads model.latent (the VAE's z; the mlp autoencoder's code is hidden[-1])."""
    if cfg.kind == "mlp":
        own = {"model.hidden": {"choices": [[128], [256], [512], [256, 64], [512, 128]]},
               "model.activation": {"choices": ["relu", "gelu"]}}
    else:
        own = {"model.channels": {"choices": [[16, 32], [32, 64], [64, 128]]}}
    if cfg.kind == "conv" or mlp_latent:
        own["model.latent"] = {"choices": latents}
    if cfg.head == "classifier":
        own["model.dropout"] = {"low": 0.0, "high": 0.5}
    return {**base, **own}


class Autoencoder(Network):
    Config = AutoencoderConfig
    input_kind = "pixels"  # the shared model suite's images in [0, 1]
    tasks = ("reconstruction", "classification")  # head decoder, head classifier
    backbone_parts = ("encoder",)  # what a pretrained autoencoder gives a classifier (verbs/transfer.py)
    finetune_fields = frozenset({"head", "dropout"})  # what a fine-tuned classifier sets for itself
    search_space: ClassVar[dict[str, dict]] = dict(NETWORK_SPACE)

    @classmethod
    def search_space_for(cls, cfg: AutoencoderConfig) -> dict[str, dict]:
        """The training fields, and the encoder of its kind: mlp widths (the last is the code) or conv channels
        and code width; a classifier head's dropout."""
        return tuning_space(cls.search_space, cfg, latents=[16, 32, 64], mlp_latent=False)

    def __init__(self, cfg: AutoencoderConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        if cfg.kind == "mlp":
            self.encoder, width = mlp_encoder(input_shape, cfg.hidden, cfg.activation)
            if cfg.head == "decoder":
                self.decoder = mlp_decoder(width, cfg.hidden[-2::-1], input_shape, cfg.activation)
        else:
            body, width, sizes = conv_encoder(input_shape, cfg.channels, "autoencoder")
            self.encoder = nn.Sequential(*body, nn.Linear(width, cfg.latent))
            if cfg.head == "decoder":
                self.decoder = conv_decoder(cfg.latent, cfg.channels, input_shape, sizes)
            width = cfg.latent
        self.code_size = width
        self.classifier = cfg.head == "classifier"
        if self.classifier:
            self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, n_outputs))
        self.frozen = False  # finetune mode 'frozen' (models/modes.py): the encoder stays in eval mode

    @classmethod
    def problems(cls, cfg) -> list[str]:
        return head_problems(cfg, "reconstruction")

    encodes = True  # models/base.py: encode(x) gives the code ladder export writes

    def encode(self, x: Tensor) -> Tensor:
        """The code (N, code_size): what a downstream model reuses as features."""
        return self.encoder(x)

    def decode(self, code: Tensor) -> Tensor:
        return self.decoder(code)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x)) if self.classifier else self.decoder(self.encoder(x))

    def train(self, mode: bool = True) -> Autoencoder:
        super().train(mode)
        if self.frozen:  # a frozen encoder's features must not change with training-mode layers
            self.encoder.eval()
        return self


def head_problems(cfg, objective: str) -> list[str]:
    """model.head must suit task.name: the model's own `objective` trains the decoder, any other task
    (classification) the classifier head."""
    wanted = "decoder" if cfg.task.name == objective else "classifier"
    if cfg.model.head != wanted:
        return [f"task.name '{cfg.task.name}' needs model.head '{wanted}' for model {cfg.model.name}, "
                f"got '{cfg.model.head}' (fine-tuning from a pretrained run sets it)"]
    return []


def mlp_encoder(input_shape: tuple[int, ...], hidden: list[int], activation: str) -> tuple[nn.Sequential, int]:
    """Flatten, then Linear -> activation per width; returns the layers and the last width."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    return nn.Sequential(*layers), width


def mlp_decoder(code_size: int, hidden: list[int], input_shape: tuple[int, ...], activation: str) -> nn.Sequential:
    """Linear -> activation per width in `hidden`, then Linear -> Sigmoid to the input's shape."""
    layers: list[nn.Module] = []
    width = code_size
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    layers += [nn.Linear(width, math.prod(input_shape)), nn.Sigmoid(), nn.Unflatten(1, tuple(input_shape))]
    return nn.Sequential(*layers)


def conv_encoder(input_shape: tuple[int, ...], channels: list[int], model: str):
    """Stride-2 Conv 3x3 -> ReLU per entry, then Flatten; returns the layers, the flat width and the
    (H, W) before each conv (the decoder needs them to come back to odd sizes such as 7)."""
    if len(input_shape) != 3:
        raise InputError(f"model {model} with kind conv needs images shaped (C, H, W), got input shape "
                         f"{tuple(input_shape)}")
    in_channels, height, width = input_shape
    layers: list[nn.Module] = []
    sizes = []
    for out_channels in channels:
        sizes.append((height, width))
        layers += [nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1), nn.ReLU()]
        in_channels, height, width = out_channels, (height + 1) // 2, (width + 1) // 2
    layers.append(nn.Flatten())
    return layers, in_channels * height * width, sizes


def conv_decoder(code_size: int, channels: list[int], input_shape: tuple[int, ...],
                 sizes: list[tuple[int, int]]) -> nn.Sequential:
    """Linear -> ReLU to the encoder's last feature map, then stride-2 ConvTranspose 3x3 back to each
    size in `sizes` (ReLU between, Sigmoid at the end)."""
    height, width = (sizes[-1][0] + 1) // 2, (sizes[-1][1] + 1) // 2
    layers: list[nn.Module] = [nn.Linear(code_size, channels[-1] * height * width), nn.ReLU(),
                               nn.Unflatten(1, (channels[-1], height, width))]
    outs = [*channels[-2::-1], input_shape[0]]
    for i, (out_channels, (h, w)) in enumerate(zip(outs, reversed(sizes))):
        # a stride-2 transposed conv gives 2n - 1 + output_padding: the padding makes up an even size
        padding = (h - 2 * height + 1, w - 2 * width + 1)
        layers.append(nn.ConvTranspose2d(channels[-1 - i], out_channels, 3, stride=2, padding=1,
                                         output_padding=padding))
        layers.append(nn.ReLU() if i < len(outs) - 1 else nn.Sigmoid())
        height, width = h, w
    return nn.Sequential(*layers)
