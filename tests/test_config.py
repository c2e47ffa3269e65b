"""Config: strict keys, every problem at once, dotted fields, did-you-mean, --set overrides."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from modelladder.config import (RunConfig, apply_overrides, load_ladder_config, load_run_config, read_yaml,
                                rung_configs, to_yaml, validate_ladder, validate_run, validate_scale)
from modelladder.errors import InputError

MLP = {"name": "mlp", "hidden": [128]}


def problems_of(raw: dict) -> list[str]:
    with pytest.raises(InputError) as err:
        validate_run(raw)
    return err.value.problems


def test_defaults_fill_in():
    cfg = validate_run({"model": MLP})
    assert cfg.data.dataset == "digits"
    assert cfg.train.optimizer.name == "adamw" and cfg.train.optimizer.lr == 3e-3
    assert cfg.train.schedule.name == "cosine"
    assert cfg.model.hidden == [128]


def test_unknown_key_with_did_you_mean():
    assert problems_of({"model": MLP, "trian": {}}) == ["unknown key trian (did you mean 'train'?)"]
    assert problems_of({"model": MLP, "train": {"optimizer": {"lrr": 0.1}}}) == [
        "unknown key train.optimizer.lrr (did you mean 'lr'?)"
    ]


def test_unknown_key_inside_model_names_the_models_fields():
    (problem,) = problems_of({"model": {"name": "mlp", "hiden": [3]}})
    assert problem == "unknown key model.hiden (did you mean 'hidden'?)"


def test_unknown_key_deep_inside_model_names_that_sections_fields():
    (problem,) = problems_of({"model": {"name": "clip", "text": {"tokenizer": {"kindd": "word"}}}})
    assert problem == "unknown key model.text.tokenizer.kindd (did you mean 'kind'?)"
    assert problems_of({"model": {"name": "mlp", "hidden": [8, -1]}}) == ["model.hidden[1] must be > 0, got -1"]


def test_model_name_missing_or_not_a_mapping():
    (problem,) = problems_of({"model": {"hidden": [3]}})
    assert problem.startswith("model.name must be one of [") and problem.endswith("got 'None'")
    assert problems_of({"model": "mlp"}) == [
        "model input should be a valid dictionary or object to extract fields from, got 'mlp'"]


def test_model_is_its_own_config_class_and_dumps_its_own_fields():
    from modelladder.models.clip import ClipConfig

    cfg = validate_run({"model": {"name": "clip", "text": {"dim": 32}}})
    assert type(cfg.model) is ClipConfig and cfg.model.text.dim == 32
    assert cfg.model_dump(mode="json")["model"] == cfg.model.model_dump(mode="json")
    assert yaml.safe_load(to_yaml(cfg))["model"]["text"]["dim"] == 32
    assert RunConfig(model=cfg.model).model is cfg.model


def test_assigning_model_validates_it():
    cfg = validate_run({"model": MLP})
    cfg.model = {"name": "cnn", "hidden": 7}
    assert cfg.model.name == "cnn" and cfg.model.hidden == 7
    with pytest.raises(ValidationError, match="model.name 'nope' is not a registered model"):
        cfg.model = {"name": "nope"}
    with pytest.raises(ValidationError):
        cfg.model = {"name": "mlp", "hidden": [-1]}


def test_negative_learning_rate_names_field_value_and_bound():
    assert problems_of({"model": MLP, "train": {"optimizer": {"lr": -0.1}}}) == [
        "train.optimizer.lr must be > 0, got -0.1"
    ]


def test_unknown_names_get_did_you_mean():
    (problem,) = problems_of({"model": {"name": "mlpp"}})
    assert problem.startswith("model.name must be one of [") and "got 'mlpp' (did you mean 'mlp'?)" in problem
    (problem,) = problems_of({"model": MLP, "data": {"dataset": "minst"}})
    assert "data.dataset must be one of" in problem and "(did you mean 'mnist'?)" in problem
    (problem,) = problems_of({"model": MLP, "train": {"optimizer": {"name": "adamm"}}})
    assert problem.startswith("train.optimizer.name must be 'sgd', 'adam', 'adamw', 'rmsprop' or 'muon', got 'adamm'")
    assert problem.endswith("(did you mean 'adam'?)")


def test_all_problems_reported_at_once():
    problems = problems_of({
        "model": MLP,
        "data": {"dataset": "minst"},
        "train": {"epochs": 0, "batch_size": -4, "optimizer": {"lr": -1}},
    })
    assert len(problems) == 4
    assert any(p.startswith("data.dataset") for p in problems)
    assert "train.epochs must be > 0, got 0" in problems
    assert "train.batch_size must be > 0, got -4" in problems
    assert "train.optimizer.lr must be > 0, got -1" in problems


def test_missing_model_is_required():
    assert problems_of({}) == ["model is required"]


def test_set_overrides_parse_yaml_values():
    raw = apply_overrides({"model": MLP}, ["train.epochs=3", "train.optimizer.lr=0.01",
                                           "model.hidden=[64, 32]", "data.normalize=false"])
    cfg = validate_run(raw)
    assert cfg.train.epochs == 3 and cfg.train.optimizer.lr == 0.01
    assert cfg.model.hidden == [64, 32] and cfg.data.normalize is False


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "a..b=1"])
def test_set_override_syntax_errors(bad):
    with pytest.raises(InputError, match="--set expects KEY=VALUE"):
        apply_overrides({}, [bad])


def test_yaml_round_trip(tmp_path):
    cfg = validate_run({"model": MLP, "train": {"epochs": 2}})
    path = tmp_path / "c.yaml"
    path.write_text(to_yaml(cfg))
    assert load_run_config(path) == cfg


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  name: mlp\n  hidden: [1, 2\n")
    with pytest.raises(InputError, match=r"bad.yaml line \d+ is not valid YAML"):
        read_yaml(path)
    with pytest.raises(InputError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml")


LADDER = {
    "name": "t",
    "data": {"dataset": "digits"},
    "train": {"epochs": 5, "optimizer": {"lr": 0.01}},
    "rungs": [
        {"name": "lr", "model": {"name": "logreg"}},
        {"name": "mlp", "model": MLP, "train": {"optimizer": {"name": "sgd"}}},
    ],
}


def test_ladder_rungs_merge_train_overrides():
    runs = rung_configs(validate_ladder(LADDER))
    assert [r.name for r in runs] == ["lr", "mlp"]
    assert runs[1].train.optimizer.name == "sgd" and runs[1].train.optimizer.lr == 0.01
    assert runs[1].train.epochs == 5 and runs[0].train.optimizer.name == "adamw"


def test_ladder_rung_errors_are_prefixed():
    bad = {**LADDER, "rungs": [{"name": "a", "model": {"name": "mlp", "dropout": 3}},
                               {"name": "a", "model": {"name": "forest"}},
                               {"name": "c", "model": {"name": "mlp", "hiden": [3]}}]}
    with pytest.raises(InputError) as err:
        validate_ladder(bad)
    text = "\n".join(err.value.problems)
    assert "rungs[0].model.dropout must be < 1, got 3" in text
    assert "rungs[1].model.name must be one of" in text and "got 'forest'" in text
    assert "unknown key rungs[2].model.hiden (did you mean 'hidden'?)" in text
    assert "rungs[1].name 'a' is used by more than one rung" in text


def test_shipped_ladders_validate():
    from pathlib import Path

    from modelladder.verbs.ladder import default_ladder

    for path in [default_ladder(), *Path(__file__).resolve().parents[1].glob("configs/**/*.yaml")]:
        raw = read_yaml(path)
        (validate_ladder if "rungs" in raw else validate_scale if "scale" in raw else validate_run)(raw)
    assert load_ladder_config(default_ladder()).name == "digits"
