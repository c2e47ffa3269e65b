"""The scale: section of a `ladder scale` config: every problem named by its field, exit 2 from the command, no
folder made."""

from __future__ import annotations

import pytest
import yaml

from modelladder.config import validate_scale
from modelladder.errors import InputError
from tests.e2e.helpers import ladder

BASE = {
    "name": "s",
    "data": {"dataset": "text", "path": "corpus.txt", "split": {"val": 0.2}},
    "model": {"name": "transformer", "causal": True, "vocab_size": 40, "max_length": 16, "dim": 16, "depth": 1,
              "heads": 1, "dropout": 0.0, "tokenizer": {"kind": "char"}},
    "task": {"name": "causal_lm"},
    "train": {"batch_size": 4, "progress": False},
}


def problems(scale) -> str:
    with pytest.raises(InputError) as err:
        validate_scale({**BASE, "scale": scale})
    return "\n".join(err.value.problems)


def test_a_good_section_validates():
    base, scale = validate_scale({**BASE, "scale": {"sizes": [{"dim": 16, "depth": 1}, {"dim": 32, "depth": 1}],
                                                     "budgets": ["1e8", 3e8]}})
    assert base.model.name == "transformer" and scale.budgets == [1e8, 3e8] and scale.head_dim == 16


def test_bad_fields_are_named():
    text = problems({"sizes": [{"dim": 16, "depth": 0}], "budgets": [1e8, -1], "windows": 0, "bootstap": 3})
    assert "scale.sizes[0].depth must be > 0, got 0" in text
    assert "scale.budgets[1] must be > 0, got -1" in text
    assert "scale.windows must be > 0, got 0" in text
    assert "unknown key scale.bootstap (did you mean 'bootstrap'?)" in text


def test_the_grid_must_be_one_of_sizes_or_params():
    assert "scale.sizes (width/depth pairs) or as scale.params" in problems({"budgets": [1e8, 1e9]})
    assert "not multiples of scale.head_dim 16" in problems({"sizes": [{"dim": 24, "depth": 1}], "budgets": [1, 2]})
    assert "scale.budgets lists the same value twice" in problems({"params": [1000], "budgets": [1e8, 1e8]})
    assert "scale.budgets list should have at least 2 items" in problems({"params": [1000], "budgets": [1e8]})


def test_a_missing_section_and_a_bad_base_are_reported_together():
    with pytest.raises(InputError) as err:
        validate_scale({**BASE, "train": {"batch_size": 0}})
    text = "\n".join(err.value.problems)
    assert "needs a scale section" in text and "train.batch_size must be > 0, got 0" in text


def test_the_command_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "scale.yaml"
    config.write_text(yaml.safe_dump({**BASE, "scale": {"sizes": [{"dim": 16, "depth": 1}], "budgets": [1e8, 0]}}))
    done = ladder("scale", config, "--runs-dir", tmp_path / "runs", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "error: scale.budgets[1] must be > 0, got 0" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_the_grid_refuses_a_budget_below_one_batch_and_finds_shapes(tmp_path):
    from modelladder.verbs.scale_grid import count_params, nearest_shape, plan_grid, sized

    base, scale = validate_scale({**BASE, "scale": {"sizes": [{"dim": 16, "depth": 1}, {"dim": 32, "depth": 2}],
                                                     "budgets": [1e4, 1e9]}})
    with pytest.raises(InputError) as err:
        plan_grid(base, scale, tmp_path)
    assert "scale.budgets[0] 10000 FLOPs buys 0 tokens for size d16_L1" in err.value.problems[0]
    assert not any(tmp_path.iterdir())
    scale.budgets = [1e8, 1e9]
    runs = plan_grid(base, scale, tmp_path)
    assert [(r.budget, r.size) for r in runs] == [(1e8, "d16_L1"), (1e8, "d32_L2"), (1e9, "d16_L1"), (1e9, "d32_L2")]
    run = runs[-1]  # 1e9 FLOPs for 2 blocks of 32 on a 16-token context, batches of 4 x 16 tokens
    # per block: qkv, proj and the 4x MLP with biases (12 d^2 + 9 d), two LayerNorms (4 d); the final LayerNorm
    assert run.n_params == 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32
    assert run.per_token == 6 * run.n_params + 12 * 2 * 32 * 16
    assert run.steps == round(1e9 / run.per_token / 64) and run.tokens == 64 * run.steps
    assert run.cfg.train.max_steps == run.steps and run.cfg.model.heads == 2
    assert run.folder == tmp_path / "scale" / "1e09" / "d32_L2"
    n_params = count_params(sized(base, 48, 3, 16))[0]
    assert nearest_shape(base, n_params, 16, aspect=16.0) == (48, 3)


def test_resume_may_extend_the_grid_but_not_change_its_runs(tmp_path):
    from modelladder.verbs.scale import check_resumable

    base, scale = validate_scale({**BASE, "scale": {"params": [1000, 4000], "budgets": [1e8, 1e9], "windows": 4}})
    config = {**base.model_dump(mode="json", by_alias=True), "scale": scale.model_dump()}
    check_resumable(tmp_path, config)  # no scale.yaml yet: nothing to compare
    (tmp_path / "scale.yaml").write_text(yaml.safe_dump(config))
    grown = {**config, "scale": {**config["scale"], "budgets": [1e8, 1e9, 1e10], "bootstrap": 10}}
    check_resumable(tmp_path, grown)
    changed = {**config, "train": {**config["train"], "batch_size": 8}, "scale": {**config["scale"], "windows": 8}}
    with pytest.raises(InputError) as err:
        check_resumable(tmp_path, changed)
    assert "--resume: train, scale.windows differ from the runs' config" in err.value.problems[0]


def test_the_recurrent_family_counts_6n_per_token(tmp_path):
    from modelladder.verbs.scale import check_family
    from modelladder.verbs.scale_grid import plan_grid

    rnn = {"name": "rnn", "cell": "lstm", "vocab_size": 40, "max_length": 16, "embed_dim": 8, "hidden": 8,
           "tokenizer": {"kind": "char"}}
    base, scale = validate_scale({**BASE, "model": rnn, "scale": {"sizes": [{"dim": 16, "depth": 1},
                                                                           {"dim": 32, "depth": 2}],
                                                                 "budgets": [1e8, 1e9]}})
    check_family(base)
    run = plan_grid(base, scale, tmp_path)[-1]
    assert (run.cfg.model.hidden, run.cfg.model.embed_dim, run.cfg.model.layers) == (32, 32, 2)
    lstm = 4 * (32 * 32 + 32 * 32 + 2 * 32)  # per layer: input and recurrent weights, two biases, 4 gates
    assert run.n_params == 2 * lstm + 32 * 40 + 40  # and the output projection; the embedding is left out
    assert run.per_token == 6 * run.n_params and run.row()["heads"] is None
    with pytest.raises(InputError, match="model.name transformer or rnn, got task.name 'causal_lm' and model.name"):
        check_family(validate_scale({**BASE, "model": {"name": "mlp"}, "scale": {"params": [10], "budgets": [1, 2]}})[0])
