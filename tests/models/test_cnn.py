"""The CNN: runs on 8x8 digits, 28x28 MNIST and other images; pooling stops at 2x2; config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.models.cnn import CNN


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize(
    ("input_shape", "pools", "flat"),
    [((1, 8, 8), 2, 64 * 2 * 2), ((1, 28, 28), 2, 64 * 7 * 7), ((3, 32, 32), 2, 64 * 8 * 8), ((2, 3, 40), 0, 64 * 3 * 40)],
)
def test_default_cnn_runs_on_any_image_size(input_shape, pools, flat):
    model = build_model(CNN.Config(), input_shape, 10, seed=0)
    assert model(torch.randn(4, *input_shape)).shape == (4, 10)
    assert count(model, nn.MaxPool2d) == pools
    assert model.head[2].in_features == flat  # Flatten, Dropout, then the hidden Linear


def test_pooling_stops_before_the_map_drops_below_2x2():
    model = build_model(CNN.Config(channels=[8, 16, 32, 64]), (1, 8, 8), 10, seed=0)
    assert count(model, nn.MaxPool2d) == 2
    assert model.head[2].in_features == 64 * 2 * 2


def test_default_blocks_are_two_convs_then_a_pool():
    model = build_model(CNN.Config(), (1, 28, 28), 10, seed=0)
    block = ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert [type(m).__name__ for m in model.features] == block * 2
    assert [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)] == [32, 32, 64, 64]
    assert [type(m).__name__ for m in model.head] == ["Flatten", "Dropout", "Linear", "ReLU", "Linear"]
    assert model.head[1].p == 0.25


def test_options_shape_the_network():
    cfg = CNN.Config(channels=[16], kernel_size=5, batchnorm=False, dropout=0, hidden=0)
    model = build_model(cfg, (1, 8, 8), 3, seed=0)
    assert [type(m).__name__ for m in model.features] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert model.features[0].kernel_size == (5, 5)
    assert [type(m).__name__ for m in model.head] == ["Flatten", "Linear"]
    assert model.head[1].in_features == 16 * 4 * 4


def test_non_image_input_is_refused():
    with pytest.raises(InputError, match=r"^model cnn needs images shaped \(C, H, W\), got input shape \(64,\)$"):
        build_model(CNN.Config(), (64,), 10, seed=0)


def test_bad_values_name_the_dotted_field():
    with pytest.raises(InputError) as err:
        validate_run({"model": {"name": "cnn", "channels": [32, 0], "kernel_size": 4, "hidden": -1}})
    assert err.value.problems == [
        "model.channels[1] must be > 0, got 0",
        "model.kernel_size: must be odd so that padding keeps the image size, got 4",
        "model.hidden must be >= 0, got -1",
    ]
