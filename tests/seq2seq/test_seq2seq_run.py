"""Task seq2seq end to end on a little of CMUdict: train, evaluate, predict, serve; decoding; clear errors."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from modelladder.cli import main
from modelladder.config import validate_run
from modelladder.errors import InputError

RUN = {"name": "g2p", "seed": 0, "data": {"dataset": "cmudict", "limit": 300},
       "task": {"name": "seq2seq", "label_smoothing": 0.1},
       "model": {"name": "seq2seq_rnn", "cell": "gru", "attention": "luong", "embed_dim": 16, "hidden": 32},
       "train": {"epochs": 1, "batch_size": 32, "threads": 1, "progress": False}, "eval": {"beam": 3}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seq2seq")
    (folder / "g2p.yaml").write_text(yaml.safe_dump(RUN))
    assert main(["train", str(folder / "g2p.yaml"), "--runs-dir", str(folder / "runs")]) == 0
    return folder


@pytest.mark.slow
def test_train_writes_scores_predictions_and_attention(run):
    record = json.loads((run / "runs/g2p/eval_test.json").read_text())
    assert set(record["metrics"]) == {"wer", "per", "exact_match"} and record["n"] == 15
    assert record["interval_method"] == {"wer": "wilson", "per": "bootstrap", "exact_match": "wilson"}
    assert record["decoding"] == {"beam": 3, "length_penalty": 1.0}
    header = (run / "runs/g2p/predictions_test.csv").read_text().splitlines()[0]
    assert header == "row,source,true,predicted,word_error,phoneme_errors,phoneme_count"
    attention = json.loads((run / "runs/g2p/attention.json").read_text())["examples"]
    weights = torch.tensor(attention[0]["weights"])
    assert weights.shape[1] == len(attention[0]["source_tokens"]) and torch.allclose(weights.sum(1), torch.ones(1),
                                                                                      atol=1e-3)
    preprocess = json.loads((run / "runs/g2p/preprocess.json").read_text())
    assert preprocess["kind"] == "seq2seq" and preprocess["transform"]["target_vocab"][0] == "<pad>"


@pytest.mark.slow
def test_predict_and_serve(run, capsys):
    from fastapi.testclient import TestClient

    from modelladder.serve.app import create_app
    from modelladder.serve.predictor import Predictor

    capsys.readouterr()
    assert main(["predict", str(run / "runs/g2p"), "--text", "ladder", "Tokenizer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id,text,prediction" and lines[1].startswith("1,ladder,") and len(lines) == 3
    predictor = Predictor.load(run / "runs/g2p")
    with TestClient(create_app(predictor)) as client:
        answer = client.post("/predict", json={"texts": ["ladder"]})
        assert answer.status_code == 200 and answer.json()["predictions"] == [lines[1].split(",")[2]]
        assert client.post("/predict", json={"texts": ["  "]}).status_code == 422


def test_beam_of_one_is_greedy_and_a_wider_beam_scores_at_least_as_well():
    from modelladder.models.build import build_model
    from modelladder.models.seq2seq_decode import beam_search, greedy
    from modelladder.models.seq2seq_rnn import Seq2SeqRNNConfig

    model = build_model(Seq2SeqRNNConfig(hidden=16, embed_dim=8, dropout=0.0), (), 12, seed=0).eval()
    ids = torch.randint(4, 30, (5, 6))
    x = (ids, torch.ones_like(ids, dtype=torch.bool))
    assert torch.equal(beam_search(model, x, 8, beam=1, length_penalty=0.0)[:, :8], greedy(model, x, 8)[:, :8]) \
        or greedy(model, x, 8).shape[1] < 8

    def log_prob(seq):  # the summed log-probability of each row up to and including </s>
        out = model(x, torch.cat([torch.ones_like(seq[:, :1]), seq[:, :-1]], 1)).log_softmax(-1)
        picked = out.gather(2, seq.unsqueeze(-1)).squeeze(-1)
        return (picked * (seq != 0)).sum(1)

    with torch.no_grad():
        assert (log_prob(beam_search(model, x, 8, beam=4, length_penalty=0.0)) >= log_prob(greedy(model, x, 8)) - 1e-5).all()


def test_task_and_data_must_agree():
    from modelladder.verbs.build import load_run_data

    cfg = validate_run({**RUN, "data": {"dataset": "digits"}})
    with pytest.raises(InputError, match="supports task.name"):
        load_run_data(cfg)
    cfg = validate_run({**RUN, "model": {"name": "rnn"}})
    with pytest.raises(InputError, match="trains with task.name"):
        load_run_data(cfg)


@pytest.mark.parametrize("attention", ["none", "luong", "bahdanau"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_teacher_forcing_agrees_with_step_by_step_decoding(attention, cell):
    from modelladder.models.build import build_model
    from modelladder.models.seq2seq_rnn import Seq2SeqRNNConfig

    cfg = Seq2SeqRNNConfig(cell=cell, attention=attention, hidden=16, embed_dim=8, layers=2, dropout=0.0)
    model = build_model(cfg, (), 12, seed=0).eval()
    ids = torch.randint(4, 30, (3, 7))
    mask = torch.arange(7)[None, :] < torch.tensor([[7], [4], [2]])
    x, target_in = (ids.masked_fill(~mask, 0), mask), torch.randint(1, 12, (3, 5))
    with torch.no_grad():
        state, steps = model.start(x), []
        for t in range(5):
            logits, state = model.step(target_in[:, t], state)
            steps.append(logits)
        assert torch.allclose(model(x, target_in), torch.stack(steps, 1), atol=1e-5)
