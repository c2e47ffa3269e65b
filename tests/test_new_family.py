"""Adding a model family is one file plus one registry line: a small family defined here, registered from this
module alone, goes through train, pretrain (it declares a language model), finetune, predict and serve."""

from __future__ import annotations

import json
from typing import Literal

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import Field
from torch import Tensor, nn

from modelladder import registry
from modelladder.cli import main
from modelladder.data.tokenize import PAD_ID, TokenizerConfig, train_encoder
from modelladder.models.base import Network
from modelladder.schema import Strict
from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from tests.pretrain.helpers import write_corpus, write_labelled


class BagConfig(Strict):
    name: Literal["bag"] = "bag"
    vocab_size: int = Field(40, gt=4)
    max_length: int = Field(32, gt=1)
    dim: int = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    tokenizer: TokenizerConfig = TokenizerConfig(kind="char")


class BagLanguageModel(nn.Module):
    """Each token predicts the next from its embedding alone (a bigram model): token ids (B, L) -> logits."""

    def __init__(self, cfg: BagConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=PAD_ID)
        self.out = nn.Linear(cfg.dim, cfg.vocab_size)
        self.max_length = cfg.max_length

    def forward(self, ids: Tensor) -> Tensor:
        return self.out(self.embed(ids))


class Bag(Network):
    """A bag of token embeddings, mean-pooled, then a Linear head; its embedding is what pretraining gives it."""

    Config = BagConfig
    input_kind = "text"
    tasks = ("classification", "regression", "causal_lm")
    backbone_parts = ("embed",)
    finetune_fields = frozenset({"dropout", "max_length"})

    def __init__(self, cfg: BagConfig, input_shape: tuple[int, ...], n_outputs: int):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim, padding_idx=PAD_ID)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cfg.dim, n_outputs))

    def forward(self, x: tuple[Tensor, Tensor]) -> Tensor:
        ids, mask = x  # a text batch: padded token ids and their mask (data/batches.py)
        keep = mask.unsqueeze(-1).float()
        return self.head((self.embed(ids) * keep).sum(1) / keep.sum(1).clamp(min=1))

    @classmethod
    def make_encoder(cls, cfg: BagConfig, texts):
        return train_encoder(cfg.tokenizer.sized(cfg.vocab_size), texts, cfg.max_length)

    @classmethod
    def language_model(cls, cfg: BagConfig, base: nn.Module | None = None) -> BagLanguageModel:
        return BagLanguageModel(cfg)


@pytest.fixture
def bag_registered(monkeypatch):
    monkeypatch.setitem(registry.MODELS, "bag", f"{__name__}:Bag")


def write_yaml(path, raw: dict):
    import yaml

    path.write_text(yaml.safe_dump(raw))
    return str(path)


TRAIN = {"max_steps": 30, "epochs": 100, "batch_size": 16, "log_every": 5, "progress": False, "threads": 1,
         "optimizer": {"lr": 0.03}}


def test_a_family_registered_here_trains_pretrains_finetunes_predicts_and_serves(bag_registered, tmp_path):
    corpus, labelled = write_corpus(tmp_path), write_labelled(tmp_path)
    runs = str(tmp_path / "runs")
    classify = {"data": {"dataset": "text", "path": str(labelled), "label": "label"}, "train": TRAIN}

    # train from scratch
    assert main(["train", write_yaml(tmp_path / "train.yaml", {**classify, "model": {"name": "bag"}}),
                 "--runs-dir", runs, "--name", "scratch"]) == 0

    # pretrain its language model on the corpus, then fine-tune a classifier from it
    pretrain = {"data": {"dataset": "text", "path": str(corpus)}, "model": {"name": "bag"},
                "task": {"name": "causal_lm"}, "train": {**TRAIN, "max_steps": 40}}
    assert main(["pretrain", write_yaml(tmp_path / "pretrain.yaml", pretrain), "--runs-dir", runs,
                 "--name", "lm"]) == 0
    records = [json.loads(line) for line in (tmp_path / "runs" / "lm" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0], losses  # the bigram model learns the corpus
    assert main(["finetune", str(tmp_path / "runs" / "lm"), write_yaml(tmp_path / "ft.yaml", classify),
                 "--runs-dir", runs, "--name", "tuned"]) == 0

    # the fine-tuned model starts from the pretrained embedding, and predicts and serves as any run
    tuned = tmp_path / "runs" / "tuned"
    assert json.loads((tuned / "eval_test.json").read_text())["metrics"]["accuracy"] > 0.8
    texts = ["the cat sat on the mat.", "a dog ran to the park."]
    predictor = Predictor.load(tuned)
    assert main(["predict", str(tuned), "--text", texts[0], "--text", texts[1]]) == 0
    with TestClient(create_app(predictor, ServeSettings())) as client:
        body = client.post("/predict", json={"texts": texts}).json()
    assert body["predictions"] == list(predictor.predict(texts))
    assert set(body["predictions"]) <= {"cat", "other"}
    scores = predictor.predict_proba(texts)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)


def test_a_family_that_is_not_registered_is_refused(tmp_path):
    raw = {"model": {"name": "bag"}}
    assert main(["config", "show", write_yaml(tmp_path / "c.yaml", raw)]) == 2
