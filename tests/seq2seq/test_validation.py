"""Validation of a seq2seq run decodes greedily and reports WER (the task's monitor) against every reference of a
validation source, as the test split is scored; the targets the loop batches carry those references."""

from __future__ import annotations

import numpy as np
import pytest

from modelladder.config import validate_run
from modelladder.data.seq2seq import PAD, encode_references, with_target_vocabulary
from modelladder.evaluate.seq2seq import sequence_metrics

RUN = {"data": {"dataset": "digits"}, "task": {"name": "seq2seq"},
       "model": {"name": "seq2seq_rnn", "cell": "gru", "attention": "luong", "embed_dim": 8, "hidden": 16},
       "train": {"progress": False, "threads": 1}}


def test_encode_references_keeps_every_reference_of_a_row():
    vocab = with_target_vocabulary({}, [("A B",), ("C",)])["target_vocab"]
    ids = encode_references(np.array([("A B", "C"), ("C",)], dtype=object), vocab)
    assert ids.shape == (2, 2, 3) and (ids[1, 1] == PAD).all()
    assert ids[0, 0].tolist()[:2] == [vocab.index("A"), vocab.index("B")]


def test_validation_wer_is_greedy_decoding_scored_against_all_references(tmp_path):
    from modelladder.data.bundle import DataBundle
    from modelladder.models.build import build_model
    from modelladder.models.seq2seq_decode import translate
    from modelladder.train.loop import evaluate
    from modelladder.verbs.build import encoded, make_task, text_encoder

    words = np.array(["ab", "ba", "abc", "cab", "bb", "ca"], dtype=object)
    train_y = np.array([(" ".join(w.upper()),) for w in words], dtype=object)
    val_X = np.array(["ab", "cc", "bac"], dtype=object)
    preprocess = with_target_vocabulary({"kind": "seq2seq"}, train_y)
    cfg = validate_run(RUN)
    model = build_model(cfg.model, (), len(preprocess["target_vocab"]), seed=0, task="seq2seq")
    data = DataBundle(X_train=words, y_train=train_y, X_val=val_X, y_val=None, X_test=val_X, y_test=None,
                      kind="seq2seq", input_shape=(), preprocess=preprocess)
    encoder = text_encoder(cfg, data, tmp_path)
    task = make_task(cfg, data)
    hyps = translate(model, val_X, encoder, preprocess["target_vocab"], max_length=task.max_length)
    # the first source's greedy output is its SECOND reference: right, though not the one teacher-forced
    val_y = np.array([("A B C A", hyps[0]), ("C C",), ("B A C",)], dtype=object)
    data.y_val = data.y_test = val_y
    loop_data = encoded(data, encoder)
    got = evaluate(model, task, loop_data.X_val, loop_data.y_val, batch_size=2)
    expected = sequence_metrics(list(hyps), list(val_y))
    assert expected["wer"] < 1 and {k: got[k] for k in expected} == pytest.approx(expected)
    assert set(got) == {"token_loss", "token_accuracy", "wer", "per", "exact_match", "loss"}
    assert model.training  # evaluate gives the model back in its mode
    assert type(task).monitor == ("wer", "min")
