"""The MLP: the tutorial 784-128-10 network exactly, its options, and its config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model, count_params
from modelladder.models.mlp import MLP


def layers(model: MLP) -> list[str]:
    return [type(m).__name__ for m in model.net]


def test_tutorial_net_is_linear_relu_linear_with_101770_params():
    cfg = validate_run({"model": {"name": "mlp", "hidden": [128]}}).model
    model = build_model(cfg, (1, 28, 28), 10, seed=0)
    assert layers(model) == ["Flatten", "Linear", "ReLU", "Linear"]
    assert (model.net[1].in_features, model.net[1].out_features) == (784, 128)
    assert (model.net[3].in_features, model.net[3].out_features) == (128, 10)
    assert count_params(model) == 101_770
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_options_add_their_layers_in_order():
    cfg = MLP.Config(hidden=[32, 16], activation="gelu", dropout=0.1, batchnorm=True)
    model = build_model(cfg, (20,), 3, seed=0)
    block = ["Linear", "BatchNorm1d", "GELU", "Dropout"]
    assert layers(model) == ["Flatten", *block, *block, "Linear"]
    assert model(torch.zeros(4, 20)).shape == (4, 3)


def test_no_hidden_layer_is_a_linear_model():
    model = build_model(MLP.Config(hidden=[]), (1, 8, 8), 10, seed=0)
    assert layers(model) == ["Flatten", "Linear"]
    assert count_params(model) == 64 * 10 + 10


def test_activation_choices_map_to_modules():
    for name, module in [("relu", nn.ReLU), ("gelu", nn.GELU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)]:
        assert isinstance(MLP(MLP.Config(activation=name), (4,), 2).net[2], module)


def test_bad_values_name_the_dotted_field():
    with pytest.raises(InputError) as err:
        validate_run({"model": {"name": "mlp", "hidden": [64, -3], "dropout": 2, "activation": "rellu"}})
    assert err.value.problems == [
        "model.hidden[1] must be > 0, got -3",
        "model.activation must be 'relu', 'gelu', 'tanh' or 'sigmoid', got 'rellu' (did you mean 'relu'?)",
        "model.dropout must be < 1, got 2",
    ]
