"""The shared suite: every model registered in registry.MODELS must pass every test here.

Each test builds the model from its default Config through build_model and runs it on a small
synthetic problem it can learn: three classes, each a fixed random 8x8 pattern plus noise.

Inputs: a model class may set `input_kind`; PROBLEMS maps each kind to a generator returning
(X, y, input_shape, n_outputs). Without the attribute a model gets kind "float": float arrays shaped
(N, 1, 8, 8), which every model that flattens or convolves its input accepts. A model that needs other
inputs (token ids for an RNN or a Transformer) sets, say, `input_kind = "tokens"` on its class and adds
a "tokens" generator here; the suite then covers it with no other change.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file

from modelladder.config import RunConfig, to_yaml, validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model, count_params, is_neural
from modelladder.registry import MODELS, load_object
from tests.models.problems import text_problem


def float_problem(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    patterns = rng.normal(size=(3, 1, 8, 8))
    y = np.arange(n) % 3
    X = patterns[y] + 0.8 * rng.normal(size=(n, 1, 8, 8))
    return X.astype(np.float32), y.astype(np.int64), (1, 8, 8), 3


PROBLEMS = {"float": float_problem, "text": text_problem}


def tensors(model, X):
    """A network's input: the float array as a tensor, or texts as (ids, mask) from the model's own tokenizer."""
    if getattr(model, "input_kind", "float") != "text":
        return torch.from_numpy(X)
    from modelladder.train.batches import TokenSequences
    encoder = type(model).make_encoder(type(model).Config(), X)
    return TokenSequences(encoder.encode(X), encoder.pad_id).take(torch.arange(len(X)))


@pytest.fixture(params=sorted(MODELS))
def name(request) -> str:
    return request.param


def model_class(name: str):
    return load_object(MODELS[name])


def problem_for(name: str):
    kind = getattr(model_class(name), "input_kind", "float")
    assert kind in PROBLEMS, f"model {name} has input_kind {kind!r}: add a generator for it to PROBLEMS"
    return PROBLEMS[kind]()


def build(name: str, seed: int = 0):
    X, y, input_shape, n_outputs = problem_for(name)
    return build_model(model_class(name).Config(), input_shape, n_outputs, seed=seed), X, y


def eval_loss(model, X, y) -> float:
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(tensors(model, X)), torch.from_numpy(y)).item()


def outputs(model, X) -> np.ndarray:
    if not is_neural(model):
        return model.predict_proba(X)
    model.eval()
    with torch.no_grad():
        return model(tensors(model, X)).numpy()


def test_builds_and_gives_one_row_per_example(name):
    model, X, y = build(name)
    assert model.family in ("neural", "classic")
    if not is_neural(model):
        model.fit(X, y)
        assert np.allclose(model.predict_proba(X).sum(axis=1), 1)
    assert outputs(model, X).shape == (len(X), 3)
    assert count_params(model) > 0


def test_training_learns_the_problem(name):
    model, X, y = build(name)
    if not is_neural(model):
        accuracy = (model.fit(X, y).predict(X) == y).mean()
        assert accuracy >= 0.9  # chance is 1/3
        return
    before = eval_loss(model, X, y)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        model.train()
        loss = F.cross_entropy(model(tensors(model, X)), torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert eval_loss(model, X, y) < 0.5 * before


def test_save_then_load_gives_identical_outputs(name, tmp_path):
    model, X, y = build(name, seed=1)
    cfg, (_, _, input_shape, n_outputs) = model_class(name).Config(), problem_for(name)
    if is_neural(model):
        model.train()
        model(tensors(model, X))  # move batchnorm statistics away from their initial values
        save_file(model.state_dict(), tmp_path / "model.safetensors")
        loaded = build_model(cfg, input_shape, n_outputs, seed=2)
        loaded.load_state_dict(load_file(tmp_path / "model.safetensors"))
        assert torch.equal(torch.from_numpy(outputs(loaded, X)), torch.from_numpy(outputs(model, X)))
    else:
        model.fit(X, y).save(tmp_path / "model.skops")
        loaded = type(model).load(tmp_path / "model.skops", cfg, input_shape, n_outputs)
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert np.array_equal(loaded.predict(X), model.predict(X))
        assert loaded.n_params() == model.n_params()


def test_config_round_trips(name):
    cfg = model_class(name).Config()
    assert type(cfg).model_validate(cfg.model_dump()) == cfg
    run = RunConfig(model=cfg)
    assert validate_run(yaml.safe_load(to_yaml(run))).model == cfg


def test_bad_values_name_the_field(name):
    fields = [f for f in model_class(name).Config.model_fields if f != "name"]
    raw = {"name": name, "no_such_key": 1, **{f: {"not": "valid"} for f in fields}}
    with pytest.raises(InputError) as err:
        validate_run({"model": raw})
    problems = err.value.problems
    assert "unknown key model.no_such_key" in problems
    for field in fields:
        assert any(p.startswith((f"model.{field} ", f"unknown key model.{field}.")) for p in problems), (field, problems)


def test_seed_decides_the_initial_weights(name):
    first, X, y = build(name, seed=0)
    again, _, _ = build(name, seed=0)
    other, _, _ = build(name, seed=1)
    if not is_neural(first):  # classic rungs start empty: the seed shows in what they fit
        assert np.array_equal(first.fit(X, y).predict_proba(X), again.fit(X, y).predict_proba(X))
        return
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_building_leaves_the_global_random_state_alone(name):
    state = torch.random.get_rng_state()
    build(name, seed=123)
    assert torch.equal(torch.random.get_rng_state(), state)
