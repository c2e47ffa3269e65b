"""Search spaces (models/space.py): every registered model's space names real run-config fields and samples into
valid run configs; the user's tune.space overrides, their errors, and list choices through Optuna."""

from __future__ import annotations

import optuna
import pytest

from modelladder.config import RunConfig, validate_run
from modelladder.errors import InputError
from modelladder.models.base import Rung
from modelladder.models.space import apply_params, decode_params, model_space, space_for, to_optuna, unknown_path
from modelladder.registry import MODELS

optuna.logging.set_verbosity(optuna.logging.WARNING)

# a model's space may depend on its config: check the variants too
VARIANTS = [{"name": name} for name in MODELS] + [
    {"name": "autoencoder", "kind": "conv"}, {"name": "autoencoder", "head": "classifier"},
    {"name": "vae", "kind": "conv"}, {"name": "hf", "mode": "full"}, {"name": "hf_causal_lm", "mode": "full"},
]


def run(model: dict, **sections) -> RunConfig:
    return validate_run({"model": model, **sections})


def samples(space: dict, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    sample, out = to_optuna(space), []
    for _ in range(n):
        trial = study.ask()
        out.append(sample(trial))
        study.tell(trial, 0.0)
    return out


@pytest.mark.parametrize("model", VARIANTS, ids=lambda m: "-".join(str(v) for v in m.values()))
def test_every_registered_space_resolves_and_samples_into_a_valid_config(model):
    cfg = run(model)
    space = space_for(cfg)
    assert space, f"{model['name']} declares nothing to tune"
    for path, spec in space.items():
        assert unknown_path(cfg, path) is None
        assert set(spec) in ({"choices"}, {"low", "high", "log", "int"})
    for params in samples(space, 4):
        tuned = apply_params(cfg, params)
        assert isinstance(tuned, RunConfig)
        for path, value in params.items():
            node = tuned
            for part in path.split("."):
                node = getattr(node, part)
            assert node == value or list(node) == value


def test_networks_tune_learning_rate_and_trees_their_depth():
    assert "train.optimizer.lr" in model_space(run({"name": "mlp"}))
    assert "train.optimizer.weight_decay" in model_space(run({"name": "cnn"}))
    assert set(model_space(run({"name": "random_forest"}))) >= {"model.max_depth", "model.n_estimators"}
    assert "model.lora.r" in model_space(run({"name": "hf"}))
    assert "model.lora.r" not in model_space(run({"name": "hf", "mode": "full"}))
    assert set(model_space(run({"name": "tfidf_svm"}))) >= {"model.ngram_max", "model.C"}


def test_a_model_with_nothing_to_tune_says_so():
    class Plain(Rung):
        pass

    assert Plain.search_space == {} and Plain.search_space_for(None) == {}
    with pytest.raises(InputError, match=r"tune.space: model 'hf_causal_lm' has nothing to tune"):
        space_for(run({"name": "hf_causal_lm", "mode": "frozen"}))


def test_overrides_nested_dotted_narrowed_and_removed():
    cfg = run({"name": "mlp"})
    space = space_for(cfg, {"model": {"hidden": [[64], [128, 64]], "dropout": None},
                            "train.optimizer.lr": {"high": 1e-3},
                            "train": {"batch_size": {"choices": [32, 64]}}})
    assert space["model.hidden"] == {"choices": [[64], [128, 64]]}
    assert "model.dropout" not in space
    assert space["train.optimizer.lr"] == {"low": 1e-4, "high": 1e-3, "log": True, "int": False}
    assert space["train.batch_size"] == {"choices": [32, 64]}
    assert space_for(cfg, {"data.augment.shift": [0, 1]})["data.augment.shift"] == {"choices": [0, 1]}
    # a whole new range replaces the model's own (no leftover keys)
    space = space_for(cfg, {"train": {"optimizer": {"lr": {"low": 1e-4, "high": 1e-2, "log": True}}}})
    assert space["train.optimizer.lr"] == {"low": 1e-4, "high": 1e-2, "log": True, "int": False}


@pytest.mark.parametrize(("override", "message"), [
    ({"model": {"hiden": [[64]]}}, (r"tune.space.model.hiden: 'model.hiden' is not a field of the run config "
                                   r"\(did you mean 'model.hidden'\?\)")),
    ({"train.optimizer.lr": {"low": 1e-2, "high": 1e-4}}, r"tune.space.train.optimizer.lr: low must be below high"),
    ({"train.optimizer.weight_decay": {"low": 0.0, "high": 0.1, "log": True}},
     r"tune.space.train.optimizer.weight_decay: a log range needs low > 0, got low=0.0"),
    ({"model.hidden": {"choices": []}}, r"tune.space.model.hidden.choices must be a non-empty list"),
    ({"model.hidden": []}, r"tune.space.model.hidden.choices must be a non-empty list"),
    ({"model.dropout": {"low": 0.0, "high": 1.0}}, (r"tune.space.model.dropout: model.dropout=1.0 gives an invalid "
                                                    r"run config: model.dropout must be < 1")),
    ({"model.dropout": 0.2}, r"tune.space.model.dropout must be a list of choices, a mapping"),
    ({"model.dropout": {"low": 0.0, "hihg": 0.3}}, r"unknown key 'hihg'.*\(did you mean 'high'\?\)"),
    ({"train.epochs": {"low": 1.5, "high": 4, "int": True}}, r"tune.space.train.epochs is an integer range"),
    ({"seed": {"low": 0, "high": 9, "int": True}}, r"tune.space.seed: seed cannot be tuned"),
    ({"data.split.val": [0.1, 0.2]}, r"tune.space.data.split.val: data.split.val cannot be tuned"),
])
def test_bad_overrides_name_the_tune_space_field(override, message):
    with pytest.raises(InputError, match=message):
        space_for(run({"name": "mlp"}), override)


def test_every_problem_is_reported_at_once():
    with pytest.raises(InputError) as err:
        space_for(run({"name": "mlp"}), {"model.hiden": [[1]], "train.optimizer.lr": {"low": 1, "high": 0.1}})
    assert len(err.value.problems) == 2


def test_list_choices_go_through_optuna_as_json_and_come_back_as_lists():
    space = space_for(run({"name": "mlp"}), {"model.hidden": [[64], [128, 64]], "model.dropout": None,
                                             "train.optimizer.weight_decay": None})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    sample = to_optuna(space)
    seen = []
    for i in range(6):
        trial = study.ask()
        params = sample(trial)
        seen.append(params["model.hidden"])
        assert isinstance(trial.params["model.hidden"], str)  # what Optuna stores
        study.tell(trial, float(i))
    assert {tuple(h) for h in seen} <= {(64,), (128, 64)} and all(isinstance(h, list) for h in seen)
    best = decode_params(space, study.best_params)
    assert best["model.hidden"] in ([64], [128, 64]) and isinstance(best["train.optimizer.lr"], float)
    assert apply_params(run({"name": "mlp"}), best).model.hidden == best["model.hidden"]


def test_scalar_choices_stay_scalars_and_ints_are_ints():
    space = space_for(run({"name": "random_forest"}))
    for params in samples(space, 5, seed=3):
        assert params["model.max_depth"] in (None, 4, 8, 16, 32)
        assert isinstance(params["model.n_estimators"], int) and 50 <= params["model.n_estimators"] <= 500
