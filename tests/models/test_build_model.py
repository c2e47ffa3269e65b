"""build_model looks names up in the registry, seeds networks, and hands seed and task to classic rungs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modelladder.errors import InputError
from modelladder.models.build import build_model, count_params, is_neural
from modelladder.models.classic import RandomForestRung
from modelladder.models.mlp import MLP


def test_unknown_name_suggests_the_closest():
    with pytest.raises(InputError, match=r"^model.name must be one of \[.*'mlp'.*\], got 'mpl' \(did you mean 'mlp'\?\)$"):
        build_model(SimpleNamespace(name="mpl"), (4,), 2, seed=0)


def test_families_and_counts():
    net = build_model(MLP.Config(hidden=[3]), (4,), 2, seed=0)
    assert is_neural(net) and count_params(net) == 4 * 3 + 3 + 3 * 2 + 2
    rung = build_model(RandomForestRung.Config(), (4,), 2, seed=5, task="regression")
    assert not is_neural(rung)
    assert (rung.seed, rung.task, rung.input_shape, rung.n_outputs) == (5, "regression", (4,), 2)


def test_seeded_init_matches_manual_seed_and_keeps_the_callers_stream():
    torch.manual_seed(99)
    expected_next = torch.rand(1)
    torch.manual_seed(99)
    net = build_model(MLP.Config(hidden=[3]), (4,), 2, seed=11)
    assert torch.equal(torch.rand(1), expected_next)  # the caller's random stream did not move
    torch.manual_seed(11)
    assert torch.equal(MLP(MLP.Config(hidden=[3]), (4,), 2).net[1].weight, net.net[1].weight)
