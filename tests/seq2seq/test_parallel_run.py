"""Parallel text end to end on a tiny pair file: train (1 epoch), test scored with BLEU and chrF through sacrebleu
beside WER / PER, then predict and serve cleaning a source's whitespace as the pair file was read."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from modelladder.cli import main

WORDS = ["red", "blue", "green", "cat", "dog", "big", "small", "house", "tree", "sun"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parallel")
    rng = np.random.default_rng(0)
    pairs = {" ".join(rng.choice(WORDS, size=rng.integers(1, 4))) for _ in range(80)}
    lines = ["source\ttarget"] + [f"{s}\t{s.upper()}" for s in sorted(pairs)]
    (folder / "pairs.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = {"name": "mt", "seed": 0, "data": {"dataset": "parallel", "path": str(folder / "pairs.tsv"),
                                            "source_units": "words", "split": {"test": 0.25, "val": 0.2}},
           "task": {"name": "seq2seq"},
           "model": {"name": "seq2seq_rnn", "cell": "gru", "attention": "luong", "embed_dim": 8, "hidden": 16,
                     "tokenizer": {"kind": "word"}},
           "train": {"epochs": 1, "batch_size": 16, "threads": 1, "progress": False}}
    (folder / "mt.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(folder / "mt.yaml"), "--runs-dir", str(folder / "runs")]) == 0
    return folder / "runs/mt"


@pytest.mark.slow  # the module's run: ~15 s here, most of it importing torch's optimizer and the report
def test_the_test_split_gets_bleu_and_chrf_with_intervals_and_how_they_were_scored(run):
    record = json.loads((run / "eval_test.json").read_text())
    assert set(record["metrics"]) == {"wer", "per", "exact_match", "bleu", "chrf"}
    for name in ("bleu", "chrf"):
        low, high = record["intervals"][name]
        assert 0 <= low <= record["metrics"][name] <= high <= 100 and record["interval_method"][name] == "bootstrap"
    assert "tok:13a" in record["sacrebleu"]["bleu"] and "nc:6" in record["sacrebleu"]["chrf"]
    val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert "wer" in val[-1]  # validation decodes too: the monitor


@pytest.mark.slow
def test_predict_and_serve_normalise_whitespace_as_training_did(run, capsys):
    from fastapi.testclient import TestClient

    from modelladder.serve.app import create_app
    from modelladder.serve.predictor import Predictor

    capsys.readouterr()
    assert main(["predict", str(run), "--text", "red cat", "  red \t cat  "]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split(",")[2] == lines[2].split(",")[2]
    with TestClient(create_app(Predictor.load(run))) as client:
        answers = [client.post("/predict", json={"texts": [t]}).json()["predictions"][0]
                   for t in ("red cat", "red\n\ncat ")]
    assert answers[0] == answers[1] == lines[1].split(",")[2]
