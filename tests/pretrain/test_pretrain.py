"""`ladder pretrain`: the loss falls, the run folder describes itself, a classifier can take the backbone,
resume is bitwise for both objectives, bad configs are clear errors, and the CLI works end to end."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models.transformer import Transformer
from modelladder.verbs.pretrain import load_language_model, prepare_data, pretrain_run
from tests.conftest import require_data
from tests.e2e.helpers import ladder
from tests.pretrain.helpers import tiny_config, write_corpus
from tests.train.helpers import records


def train_losses(run_dir) -> list[float]:
    return [r["loss"] for r in records(run_dir) if r["split"] == "train"]


def test_causal_lm_loss_falls_and_the_run_folder_describes_itself(tmp_path):
    cfg = tiny_config(write_corpus(tmp_path))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = pretrain_run(cfg, run_dir)
    losses = train_losses(run_dir)
    assert losses[0] > 3.0 and result["metrics"]["loss"] < 0.6 * losses[0], losses
    assert result["metrics"]["bits_per_char"] == pytest.approx(result["metrics"]["loss"] / 0.6931, rel=1e-3)
    preprocess = json.loads((run_dir / "preprocess.json").read_text())
    assert preprocess["kind"] == "corpus" and preprocess["chars_per_token"] == 1.0
    cfg_again, model, encoder = load_language_model(run_dir)
    assert cfg_again == cfg and encoder.vocab_size <= cfg.model.vocab_size
    # every weight is the backbone's, under the names the classifier's backbone has
    weights = load_file(run_dir / "model.safetensors")
    classifier = Transformer(cfg.model.model_copy(update={"pooling": "last"}), (), 2)
    assert set(weights) == {f"backbone.{k}" for k in classifier.backbone.state_dict()}
    classifier.backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in weights.items()})
    assert all(torch.equal(a, b) for a, b in zip(classifier.backbone.state_dict().values(),
                                                 model.backbone.state_dict().values()))


def test_masked_lm_loss_falls(tmp_path):
    # masked-LM learns from 15% of the positions: it takes more steps, and rotary positions get there sooner
    cfg = tiny_config(write_corpus(tmp_path), task="masked_lm", train={"max_steps": 150, "optimizer": {"lr": 0.003}},
                      model={"positions": "rope", "dropout": 0.0})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = pretrain_run(cfg, run_dir)
    losses = train_losses(run_dir)
    assert result["metrics"]["loss"] < 0.75 * losses[0] and result["metrics"]["accuracy"] > 0.25, (losses, result)


class Interrupt(Exception):
    pass


class StopAtStep:
    def __init__(self, step: int):
        self.step = step

    def on_log(self, record: dict) -> None:
        if record["step"] == self.step:
            raise Interrupt


@pytest.mark.parametrize("task", ["causal_lm", "masked_lm"])
def test_resume_after_a_crash_is_bitwise(tmp_path, task):
    # 30 steps; checkpoints every 8; the crash at step 20 redoes steps 17-20 (and their random masks)
    cfg = tiny_config(write_corpus(tmp_path), task=task, train={"max_steps": 30, "checkpoint_every": 8})
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    pretrain_run(cfg, whole)
    with pytest.raises(Interrupt):
        pretrain_run(cfg, broken, callbacks=[StopAtStep(20)])
    pretrain_run(cfg, broken, resume=True)
    assert records(broken) == records(whole)
    assert (broken / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()


@pytest.mark.parametrize(("task", "causal", "message"), [
    ("causal_lm", False, "task.name 'causal_lm' needs model.causal true, got false"),
    ("masked_lm", True, "task.name 'masked_lm' needs model.causal false, got true"),
])
def test_the_task_and_the_model_must_agree(tmp_path, task, causal, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        prepare_data(tiny_config(write_corpus(tmp_path), task=task, model={"causal": causal}))


def test_pretraining_names_a_corpus_and_training_a_dataset():
    with pytest.raises(InputError) as err:
        validate_run({"data": {"dataset": "mnist"}, "model": {"name": "transformer"}, "task": {"name": "causal_lm"}})
    corpora = "['gutenberg', 'imdb_unsup', 'text', 'tinyshakespeare']"
    assert err.value.problems == [f"data.dataset must be one of {corpora}, got 'mnist'"]
    with pytest.raises(InputError, match="data.dataset must be one of .*'digits'.*got 'tinyshakespeare'"):
        validate_run({"data": {"dataset": "tinyshakespeare"}, "model": {"name": "transformer"}})


CLI_CONFIG = """
data: {dataset: tinyshakespeare, limit: 30000}
model: {name: transformer, causal: true, vocab_size: 72, max_length: 32, dim: 32, depth: 1, heads: 2,
        dropout: 0.0, positions: rope, norm: rms, activation: relu2, bias: false, tokenizer: {kind: char}}
task: {name: causal_lm}
train: {max_steps: 20, batch_size: 16, log_every: 10, progress: false}
"""


def test_cli_pretrain_then_generate(tmp_path):
    require_data("tinyshakespeare")
    (tmp_path / "lm.yaml").write_text(CLI_CONFIG)
    done = ladder("pretrain", "lm.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "runs/lm [val, n=3000]  loss=" in done.stdout and "bits_per_char=" in done.stdout
    args = ("generate", "runs/lm", "--prompt", "ROMEO:", "--max-new-tokens", "40", "--top-k", "10", "--seed", "3")
    first, again = ladder(*args, cwd=tmp_path), ladder(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout.startswith("ROMEO:") and len(first.stdout) == 6 + 40 + 1
    bad = ladder("generate", "runs/lm", "--prompt", "ROMÉO", cwd=tmp_path)
    assert bad.returncode == 2 and "error: --prompt holds 'É', which the run's tokenizer does not know" in bad.stderr
