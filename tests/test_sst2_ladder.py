"""configs/ladders/sst2.yaml as `ladder run` reads it, without reading data or training: the five rungs in
ladder order, the pretrain stage, and the pretrained rung fine-tuning that stage's architecture."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from modelladder.cli import main
from modelladder.config import rung_configs, stage_configs, to_yaml, validate_ladder
from modelladder.verbs.pretrain import check_pretrain_config
from modelladder.verbs.transfer import resolve

SST2 = Path(__file__).resolve().parents[1] / "configs" / "ladders" / "sst2.yaml"


def shown_ladder(capsys):
    assert main(["config", "show", str(SST2)]) == 0
    return validate_ladder(yaml.safe_load(capsys.readouterr().out))


def test_sst2_ladder_climbs_from_tfidf_to_minilm_through_a_pretrained_rung(capsys):
    ladder = shown_ladder(capsys)
    rungs = rung_configs(ladder)
    assert [(r.name, r.model.name) for r in rungs] == [
        ("tfidf_logreg", "tfidf_logreg"), ("lstm", "rnn"), ("transformer", "transformer"),
        ("pretrained", "transformer"), ("minilm", "hf")]
    [stage] = stage_configs(ladder)
    check_pretrain_config(stage)
    assert (stage.name, stage.task.name, stage.data.dataset) == ("movie_lm", "causal_lm", "imdb_unsup")
    assert stage.model.tokenizer.lowercase  # SST-2's sentences are lower-cased
    assert rungs[3].finetune.from_ == "movie_lm" and rungs[3].finetune.mode == "full"
    assert rungs[3].finetune.backbone_lr == 0.0002  # the head keeps train.optimizer.lr 0.002
    assert all(r.finetune is None for r in rungs[:3] + rungs[4:])


def test_sst2_pretrained_rung_resolves_against_its_stage(capsys, tmp_path):
    """What run_stages hands the rung once the stage is trained: its folder, whose architecture the rung takes."""
    ladder = shown_ladder(capsys)
    [stage] = stage_configs(ladder)
    folder = tmp_path / stage.name
    folder.mkdir()
    (folder / "config.yaml").write_text(to_yaml(stage))
    (folder / "preprocess.json").write_text(json.dumps({"kind": "corpus"}))
    for name in ("model.safetensors", "tokenizer.json"):
        (folder / name).write_bytes(b"")  # resolve reads only the config; the weights load at training time
    rung = rung_configs(ladder)[3]
    tuned = resolve(rung.model_copy(update={"finetune": rung.finetune.model_copy(update={"from_": str(folder)})}))
    assert tuned.finetune.from_ == str(folder)
    assert (tuned.model.dim, tuned.model.depth, tuned.model.vocab_size) == (128, 2, 8192)
    assert tuned.model.causal and tuned.model.positions == "rope"
    assert (tuned.model.max_length, tuned.model.pooling, tuned.model.dropout) == (64, "mean", 0.1)
    assert tuned.task.name == "classification" and tuned.data.dataset == "sst2"
