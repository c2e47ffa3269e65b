"""`ladder tune` on a seq2seq run: trials scored on validation WER (greedy decoding), the test split never seen by a
trial; a generative task is still refused, naming why."""

from __future__ import annotations

import pandas as pd
import pytest

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.verbs import train as train_verb
from modelladder.verbs.build import load_run_data
from modelladder.verbs.tune import check_tune, tune_run

RUN = {"name": "g2p", "seed": 0, "data": {"dataset": "cmudict", "limit": 300}, "task": {"name": "seq2seq"},
       "model": {"name": "seq2seq_rnn", "cell": "gru", "attention": "none", "embed_dim": 8, "hidden": 16},
       "train": {"epochs": 1, "batch_size": 64, "threads": 1, "progress": False}, "eval": {"beam": 3},
       "tune": {"trials": 2, "space": {"model.embed_dim": [8, 16], "model.hidden": [16], "model.layers": [1],
                                       "model.dropout": None, "task.label_smoothing": None,
                                       "train.optimizer.lr": [0.003], "train.optimizer.weight_decay": None}}}


@pytest.mark.slow  # ~15 s: reading CMUdict, two one-epoch trials and the retrain
def test_a_seq2seq_run_is_tuned_on_validation_wer_decoded_greedily(tmp_path, monkeypatch):
    decoded = []
    real = train_verb.evaluate_run

    def spy(run_dir, *, split, data, predictor):
        decoded.append((split, predictor.cfg.eval.beam, len(data.y_test)))
        return real(run_dir, split=split, data=data, predictor=predictor)

    monkeypatch.setattr(train_verb, "evaluate_run", spy)
    result = tune_run(validate_run(RUN), tmp_path / "run")
    assert decoded == [("val", 1, 0), ("val", 1, 0), ("test", 3, 15)]  # trials: greedy on validation, no test rows
    assert result["tuning"]["metric"] == "wer" and result["tuning"]["trials"] == 2
    trials = pd.read_csv(tmp_path / "run/tune/trials.csv")
    assert list(trials["state"]) == ["COMPLETE"] * 2 and trials["value"].between(0, 1).all()


def test_tune_metric_must_be_one_the_seq2seq_task_scores():
    cfg = validate_run({**RUN, "tune": {"trials": 1, "metric": "bleu"}})
    with pytest.raises(InputError, match=r"tune.metric must be .*\(wer, per, exact_match\), got 'bleu'"):
        check_tune(cfg, load_run_data(cfg))
