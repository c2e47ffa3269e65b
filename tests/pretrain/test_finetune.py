"""Transfer: a classifier starts from a pretrained run's backbone (bit for bit) with a new head; frozen keeps
the backbone, LoRA trains only adapters and head; `ladder finetune` and ladders with pretrain stages work end
to end; bad pretrained runs and disagreeing configs are clear errors."""

from __future__ import annotations

import io
import json
import re

import pytest
import torch
import yaml
from rich.console import Console
from safetensors.torch import load_file

from modelladder.config import validate_run
from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.verbs.evaluate import evaluate_run
from modelladder.verbs.finetune import load_finetune_config
from modelladder.verbs.pretrain import pretrain_run
from modelladder.verbs.train import train_run
from modelladder.verbs.transfer import Transfer
from tests.e2e.helpers import ladder
from tests.pretrain.helpers import (
    finetune_config,
    pretrained_lm,
    tiny_config,
    write_corpus,
    write_labelled,
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return pretrained_lm(tmp_path_factory)


def backbone(weights: dict) -> dict:
    return {k: v for k, v in weights.items() if k.startswith("backbone.")}


def test_the_backbone_is_copied_exactly_and_the_head_is_new(pretrained):
    lm, labelled = pretrained
    cfg = finetune_config(labelled, lm)
    transfer = Transfer(cfg)
    # the architecture is the pretrained one; pooling is the classifier's own
    pretrained_model = validate_run(yaml.safe_load((lm / "config.yaml").read_text())).model
    assert transfer.cfg.model == pretrained_model.model_copy(update={"pooling": "mean"})
    fresh = build_model(transfer.cfg.model, (), 2, seed=1)
    model = transfer.start(build_model(transfer.cfg.model, (), 2, seed=1))
    weights = load_file(lm / "model.safetensors")
    state = model.state_dict()
    assert set(backbone(state)) == set(weights)
    assert all(torch.equal(state[k], weights[k]) for k in weights)
    assert not torch.equal(state["backbone.tokens.weight"], fresh.state_dict()["backbone.tokens.weight"])
    assert torch.equal(state["head.weight"], fresh.state_dict()["head.weight"])  # the seeded new head
    assert all(p.requires_grad for p in model.parameters())


def test_full_fine_tuning_learns_and_the_run_folder_reloads(pretrained, tmp_path):
    lm, labelled = pretrained
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train_run(finetune_config(labelled, lm), run_dir)
    assert result["metrics"]["accuracy"] >= 0.8, result["metrics"]
    assert (run_dir / "tokenizer.json").read_text() == (lm / "tokenizer.json").read_text()  # reused, not retrained
    again = evaluate_run(run_dir)  # rebuilt from config.yaml and model.safetensors alone
    assert again["metrics"] == result["metrics"]


def test_frozen_mode_changes_the_head_only(pretrained, tmp_path):
    lm, labelled = pretrained
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = finetune_config(labelled, lm, mode="frozen")
    train_run(cfg, run_dir)
    weights, trained = load_file(lm / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert all(torch.equal(trained[k], weights[k]) for k in weights)
    head = build_model(Transfer(cfg).cfg.model, (), 2, seed=1).state_dict()["head.weight"]
    assert not torch.equal(trained["head.weight"], head)
    model = Transfer(cfg).start(build_model(Transfer(cfg).cfg.model, (), 2, seed=1))
    model.train()
    assert not model.backbone.training and model.head.weight.requires_grad  # no dropout in the frozen features


def test_lora_trains_adapters_and_head_then_merges_them(pretrained, tmp_path):
    lm, labelled = pretrained
    cfg = finetune_config(labelled, lm, mode="lora", finetune={"lora": {"r": 4}})
    model = Transfer(cfg).start(build_model(Transfer(cfg).cfg.model, (), 2, seed=1))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name or name.startswith("head.") for name in trainable)
    adapted = {name.split(".lora_")[0] for name in trainable if "lora_" in name}
    assert len(adapted) == 2 * 4  # qkv, proj, fc and the MLP's proj in each of the 2 blocks
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = train_run(cfg, run_dir)
    weights, trained = load_file(lm / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert set(trained) == set(weights) | {"head.weight", "head.bias"}  # merged: the plain model's names
    assert torch.equal(trained["backbone.tokens.weight"], weights["backbone.tokens.weight"])
    assert not torch.equal(trained["backbone.blocks.0.attn.qkv.weight"], weights["backbone.blocks.0.attn.qkv.weight"])
    assert evaluate_run(run_dir)["metrics"] == result["metrics"]


def test_lora_needs_linear_layers_in_the_backbone(tmp_path):
    lm = tmp_path / "rnn_lm"
    lm.mkdir()
    pretrain_run(rnn_lm_config(write_corpus(tmp_path), max_steps=2), lm)
    cfg = finetune_config(write_labelled(tmp_path), lm, mode="lora", model={"name": "rnn"})
    with pytest.raises(InputError, match="^finetune.mode 'lora' adapts Linear layers, and model 'rnn' has none"):
        Transfer(cfg).start(build_model(Transfer(cfg).cfg.model, (), 2, seed=1))


def rnn_lm_config(corpus, max_steps: int):
    """The tiny causal_lm config with a one-layer LSTM in place of the transformer."""
    raw = tiny_config(corpus).model_dump(mode="json")
    raw["model"] = {"name": "rnn", "vocab_size": 40, "max_length": 32, "embed_dim": 32, "hidden": 48,
                    "input_dropout": 0.0, "tokenizer": {"kind": "char"}}
    raw["train"]["max_steps"] = max_steps
    return validate_run(raw)


def test_an_lstm_language_model_pretrains_generates_and_fine_tunes(tmp_path):
    from modelladder.verbs.generate import generate, generate_text
    from modelladder.verbs.pretrain import load_language_model

    lm = tmp_path / "lm"
    lm.mkdir()
    result = pretrain_run(rnn_lm_config(write_corpus(tmp_path), max_steps=60), lm)
    assert result["metrics"]["loss"] < 2.0, result  # from ln(40) = 3.7
    text = generate_text(lm, "the ", 30, seed=5, top_k=5)
    assert text == generate_text(lm, "the ", 30, seed=5, top_k=5) and len(text) == 30
    _, model, encoder = load_language_model(lm)
    prompt = encoder.tokenizer.encode("the cat", add_special_tokens=False).ids
    cached = list(generate(model, prompt, 40, seed=2))  # 47 tokens > the context of 32: the window moves on
    assert cached == list(generate(model, prompt, 40, seed=2, use_cache=False))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    tuned = train_run(finetune_config(write_labelled(tmp_path), lm, model={"name": "rnn", "pooling": "mean"}), run_dir)
    weights, trained = load_file(lm / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert set(weights) - set(trained) == {"out.weight", "out.bias"}  # the LM head stays behind
    assert tuned["metrics"]["accuracy"] >= 0.8, tuned["metrics"]


def test_bad_pretrained_runs_and_disagreeing_configs_are_input_errors(pretrained, tmp_path):
    lm, labelled = pretrained
    where = lm / "config.yaml"
    cases = [
        ({"finetune": {"from": str(tmp_path / "nowhere")}}, f"finetune.from {tmp_path / 'nowhere'} does not exist"),
        ({"model": {"dim": 64}}, (f"model.dim 64 differs from the pretrained run's 32 ({where}): leave it out to "
                                 "fine-tune the pretrained architecture")),
        ({"model": {"max_length": 64}}, (f"model.max_length 64 differs from the pretrained run's 32 ({where}): leave "
                                        "it out to fine-tune the pretrained architecture (its learned position "
                                        "embeddings have that many rows; positions 'rope' lets it change)")),
        ({"model": {"name": "rnn"}}, f"model.name 'rnn' differs from the pretrained run's 'transformer' ({where})"),
        ({"task": {"name": "causal_lm"}}, "task.name 'causal_lm' is a pretraining objective"),
    ]
    for overrides, message in cases:
        with pytest.raises(InputError, match=f"^{re.escape(message)}"):
            Transfer(finetune_config(labelled, lm, **overrides))
    classifier = tmp_path / "classifier"
    classifier.mkdir()
    train_run(validate_run({"data": {"dataset": "text", "path": str(labelled)}, "model": {"name": "tfidf_logreg"}}),
              classifier)
    with pytest.raises(InputError, match=f"finetune.from {classifier} is not a `ladder pretrain` run"):
        Transfer(finetune_config(labelled, classifier))
    (lm.parent / "unfinished").mkdir()
    for name in ("config.yaml", "preprocess.json"):
        (lm.parent / "unfinished" / name).write_bytes((lm / name).read_bytes())
    with pytest.raises(InputError, match="model.safetensors is missing: the run folder has no trained model"):
        Transfer(finetune_config(labelled, lm.parent / "unfinished"))


@pytest.mark.slow  # three `ladder` processes and an HTML report with plots: 30 s on an idle machine, minutes on a busy one
def test_ladder_finetune_cli_end_to_end(pretrained, tmp_path):
    lm, labelled = pretrained
    (tmp_path / "ft.yaml").write_text(f"data: {{dataset: text, path: {labelled}}}\nmodel: {{pooling: last}}\n"
                                      "train: {epochs: 2, batch_size: 16, progress: false}\n")
    done = ladder("finetune", lm, "ft.yaml", "--set", "finetune.mode=frozen", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "runs" / "ft"
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["finetune"]["from"] == str(lm) and saved["finetune"]["mode"] == "frozen"
    assert saved["model"]["dim"] == 32 and saved["model"]["pooling"] == "last"
    predicted = ladder("predict", "runs/ft", "--text", "the cat sat on the mat.", "--text", "a dog ran.", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.splitlines()[0] == "id,text,prediction,confidence" and len(predicted.stdout.splitlines()) == 3
    bad = ladder("finetune", lm, "ft.yaml", "--set", "model.heads=4", cwd=tmp_path)
    assert bad.returncode == 2 and "error: model.heads 4 differs from the pretrained run's 2" in bad.stderr


def test_the_finetune_config_takes_the_pretrained_family_by_default(pretrained, tmp_path):
    lm, labelled = pretrained
    (tmp_path / "ft.yaml").write_text(f"data: {{dataset: text, path: {labelled}}}\n")
    cfg = load_finetune_config(lm, tmp_path / "ft.yaml", ["model.pooling=mean"])
    assert cfg.model.name == "transformer" and cfg.model.causal and cfg.finetune.from_ == str(lm)
    with pytest.raises(InputError, match="model.pooling 'cls' reads the first token"):
        build_model(load_finetune_config(lm, tmp_path / "ft.yaml").model, (), 2, seed=0)
    assert TextEncoder.load(lm / "tokenizer.json").vocab_size <= cfg.model.vocab_size


LADDER = """
name: transfer
seed: 0
data: {{dataset: text, path: {labelled}}}
train: {{epochs: 3, batch_size: 16, progress: false, threads: 1, optimizer: {{lr: 0.003}}}}
pretrain:
  - name: lm
    data: {{dataset: text, path: {corpus}}}
    model: {{name: transformer, causal: true, vocab_size: 40, max_length: 32, dim: 32, depth: 2, heads: 2,
             tokenizer: {{kind: char}}}}
    task: {{name: causal_lm}}
    train: {{max_steps: 40, batch_size: 16, progress: false, threads: 1, optimizer: {{lr: 0.01}}}}
rungs:
  - name: tfidf
    model: {{name: tfidf_logreg}}
  - name: pretrained
    model: {{name: transformer, pooling: mean}}
    finetune: {{from: lm}}
"""


def test_a_ladder_pretrains_its_stage_then_fine_tunes_and_reuses_the_stage(tmp_path):
    from modelladder.config import load_ladder_config
    from modelladder.verbs.ladder import run_ladder

    (tmp_path / "ladder.yaml").write_text(LADDER.format(labelled=write_labelled(tmp_path), corpus=write_corpus(tmp_path)))
    ladder_cfg, shown = load_ladder_config(tmp_path / "ladder.yaml"), io.StringIO()
    rows = run_ladder(ladder_cfg, tmp_path / "runs", console=Console(file=shown))
    root = tmp_path / "runs" / "transfer"
    assert [r["rung"] for r in rows] == ["tfidf", "pretrained"] and rows[1]["test_accuracy"] >= 0.8, rows
    assert "-> pretrain lm (transformer, causal_lm on text)" in shown.getvalue()
    assert (root / "lm" / "model.safetensors").is_file() and "lm" in json.loads((root / "pretrain.json").read_text())
    tuned = yaml.safe_load((root / "pretrained" / "config.yaml").read_text())
    assert tuned["finetune"]["from"] == str(root / "lm") and tuned["model"]["dim"] == 32
    stage_weights = (root / "lm" / "model.safetensors").read_bytes()
    again = run_ladder(ladder_cfg, tmp_path / "runs", overwrite=True, console=Console(file=shown))
    assert [r["test_accuracy"] for r in again] == [r["test_accuracy"] for r in rows]
    assert "-> pretrain lm: reused" in shown.getvalue()
    assert (root / "lm" / "model.safetensors").read_bytes() == stage_weights
    assert not (tmp_path / "runs" / ".transfer.stages").exists()


def test_a_rung_must_fine_tune_from_a_stage_or_a_folder(tmp_path):
    from modelladder.config import validate_ladder

    raw = yaml.safe_load(LADDER.format(labelled="x.csv", corpus="c.txt"))
    raw["rungs"][1]["finetune"]["from"] = "lmm"
    with pytest.raises(InputError) as err:
        validate_ladder(raw)
    message = "rungs[1].finetune.from 'lmm' is neither a pretrain stage of this ladder ['lm'] nor an existing run folder"
    assert err.value.problems == [message]
