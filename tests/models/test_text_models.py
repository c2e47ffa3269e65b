"""The text rungs: the tutorial LSTM's size, padding never changes a text's logits, the causal backbone, TF-IDF."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
import torch
import torch.nn.functional as F
from scipy.special import expit

from modelladder.config import validate_run
from modelladder.errors import InputError
from modelladder.models.build import build_model, count_params
from modelladder.models.rnn import RNN, RNNConfig
from modelladder.models.text_classic import TfidfLogRegRung, TfidfSVMRung
from modelladder.models.transformer import Transformer, TransformerBackbone, TransformerConfig
from tests.models.problems import text_problem


def batch(sequences: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) padded on the right to the longest sequence, as the training loop batches text."""
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.bool)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.from_numpy(s)
        mask[i, : len(s)] = True
    return ids, mask


SMALL = {  # small networks so the tests stay fast; the defaults are checked on their own
    "rnn": RNNConfig(vocab_size=64, embed_dim=16, hidden=16),
    "transformer": TransformerConfig(vocab_size=300, dim=32, heads=4, max_length=32),
}


def test_the_default_rnn_is_the_tutorial_imdb_lstm():
    model = build_model(RNNConfig(), (), 2, seed=0)
    assert model.embed.weight.shape == (10_000, 128)
    assert sum(p.numel() for p in model.rnn.parameters()) == 49_408 + 256  # + PyTorch's second bias vector
    assert sum(p.numel() for p in model.head.parameters()) == 64 * 2 + 2  # 2-logit softmax for Dense(1, sigmoid)
    assert count_params(model) == 1_280_000 + 49_664 + 130
    assert model.rnn.input_size == 128 and model.rnn.hidden_size == 64 and model.rnn.num_layers == 1
    assert type(model.rnn) is torch.nn.LSTM and model.input_dropout.p == 0.2


@pytest.mark.parametrize("options", [
    {"pooling": "last"}, {"pooling": "mean"}, {"pooling": "max"},
    {"pooling": "last", "bidirectional": True, "layers": 2, "cell": "gru"},
    {"pooling": "mean", "bidirectional": True}, {"pooling": "max", "bidirectional": True, "cell": "gru"},
])
def test_rnn_logits_do_not_depend_on_padding(options):
    cfg = SMALL["rnn"].model_copy(update=options)
    check_padding_invariance(RNN, cfg)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_transformer_logits_do_not_depend_on_padding(pooling):
    check_padding_invariance(Transformer, SMALL["transformer"].model_copy(update={"pooling": pooling}))


def check_padding_invariance(cls, cfg):
    X, _, _, _ = text_problem(12)
    encoder = cls.make_encoder(cfg, X)
    sequences = encoder.encode(X)
    assert len({len(s) for s in sequences}) > 1  # the batch really pads
    model = build_model(cfg, (), 3, seed=0).eval()
    with torch.no_grad():
        together = model(batch(sequences, encoder.pad_id))
        alone = torch.cat([model(batch([s], encoder.pad_id)) for s in sequences])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "transformer"])
def test_text_networks_learn_the_problem(name):
    X, y, input_shape, n_outputs = text_problem()
    cfg = SMALL[name]
    encoder = type(build_model(cfg, input_shape, n_outputs, seed=0)).make_encoder(cfg, X)
    assert encoder.vocab_size <= cfg.vocab_size and encoder.max_length == cfg.max_length
    x, target = batch(encoder.encode(X), encoder.pad_id), torch.from_numpy(y)
    model = build_model(cfg, input_shape, n_outputs, seed=0)
    before = eval_loss(model, x, target)
    torch.manual_seed(0)  # the dropout masks
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        model.train()
        loss = F.cross_entropy(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss(model, x, target)
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == target).float().mean().item()
    assert after < 0.5 * before and accuracy >= 0.9, (before, after, accuracy)


def eval_loss(model, x, target) -> float:
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(x), target).item()


@pytest.mark.parametrize("with_mask", [False, True])
def test_a_causal_backbone_does_not_look_ahead(with_mask):
    torch.manual_seed(0)
    backbone = TransformerBackbone(vocab=50, dim=32, depth=2, heads=4, max_length=16, dropout=0.0, causal=True).eval()
    ids = torch.randint(0, 50, (2, 10))
    later = ids.clone()
    later[:, 6:] = (ids[:, 6:] + 1) % 50  # change only the tokens after position 5
    mask = torch.ones_like(ids, dtype=torch.bool) if with_mask else None
    with torch.no_grad():
        before, after = backbone(ids, mask), backbone(later, mask)
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])
    backbone.causal = False  # without the triangle, earlier positions do see the change
    with torch.no_grad():
        assert not torch.allclose(backbone(ids, mask)[:, :6], backbone(later, mask)[:, :6])


def test_a_causal_backbone_with_padding_matches_the_unpadded_sequence():
    torch.manual_seed(0)
    backbone = TransformerBackbone(vocab=50, dim=32, depth=2, heads=4, max_length=16, dropout=0.0, causal=True).eval()
    ids = torch.randint(1, 50, (1, 7))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.arange(12)[None, :] < 7
    with torch.no_grad():
        torch.testing.assert_close(backbone(padded, mask)[:, :7], backbone(ids), rtol=1e-5, atol=1e-5)


def test_transformer_refuses_sequences_longer_than_its_positions():
    model = build_model(SMALL["transformer"], (), 2, seed=0)
    ids = torch.ones(1, 33, dtype=torch.long)
    with pytest.raises(ValueError, match=r"a sequence of 33 tokens is longer than max_length \(32\)"):
        model((ids, torch.ones_like(ids, dtype=torch.bool)))


def test_text_networks_refuse_non_text_inputs():
    for name in ("rnn", "transformer"):
        expected = rf"^model {name} needs text \(input shape \(\)\), got input shape \(1, 8, 8\)"
        with pytest.raises(InputError, match=expected):
            build_model(SMALL[name], (1, 8, 8), 3, seed=0)


def test_heads_must_divide_dim():
    with pytest.raises(InputError) as err:
        validate_run({"model": {"name": "transformer", "dim": 100, "heads": 3}})
    assert err.value.problems == ["model.heads: must divide dim (100), got 3"]


# ---------------------------------------------------------------- TF-IDF rungs

RUNGS = {"tfidf_logreg": TfidfLogRegRung, "tfidf_svm": TfidfSVMRung}


@pytest.mark.parametrize("name", sorted(RUNGS))
def test_tfidf_rungs_separate_held_out_texts(name):
    X, y, input_shape, n_outputs = text_problem(150, seed=0)
    X_test, y_test, _, _ = text_problem(90, seed=1)
    rung = build_model(RUNGS[name].Config(), input_shape, n_outputs, seed=0).fit(X, y)
    assert (rung.predict(X_test) == y_test).mean() > 0.9
    proba = rung.predict_proba(X_test)
    assert proba.shape == (90, 3) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(proba.argmax(axis=1), rung.predict(X_test))


@pytest.mark.parametrize("name", sorted(RUNGS))
def test_tfidf_rungs_save_then_load_identically(name, tmp_path):
    X, y, input_shape, n_outputs = text_problem()
    cfg = RUNGS[name].Config()
    rung = build_model(cfg, input_shape, n_outputs, seed=0).fit(X, y)
    rung.save(tmp_path / "model.skops")
    assert sio.get_untrusted_types(file=tmp_path / "model.skops") == []  # nothing beyond skops' safe defaults
    loaded = RUNGS[name].load(tmp_path / "model.skops", cfg, input_shape, n_outputs)
    assert np.array_equal(loaded.predict_proba(X), rung.predict_proba(X))
    assert loaded.n_params() == rung.n_params()


@pytest.mark.parametrize("name", sorted(RUNGS))
def test_tfidf_params_are_vocabulary_times_classes_plus_intercepts(name):
    X, y, input_shape, _ = text_problem()
    three = build_model(RUNGS[name].Config(), input_shape, 3, seed=0).fit(X, y)
    vocabulary = len(three.estimator_["tfidf"].vocabulary_)
    assert three.n_params() == vocabulary * 3 + 3
    two = build_model(RUNGS[name].Config(), input_shape, 2, seed=0).fit(X[y < 2], y[y < 2])
    assert two.n_params() == len(two.estimator_["tfidf"].vocabulary_) + 1  # one weight row for two classes


def test_svm_probabilities_are_the_sigmoid_of_the_margin_for_two_classes():
    X, y, input_shape, _ = text_problem()
    rung = build_model(TfidfSVMRung.Config(), input_shape, 3, seed=0).fit(X[y < 2], y[y < 2])
    proba = rung.predict_proba(X)
    assert np.allclose(proba[:, 1], expit(rung.estimator_.decision_function(X)))
    assert np.all(proba[:, 2] == 0)  # a class absent from training


@pytest.mark.parametrize(("name", "estimator"), [("tfidf_logreg", "Ridge"), ("tfidf_svm", "LinearSVR")])
def test_tfidf_regression_uses_the_matching_regressor(name, estimator, tmp_path):
    X, y, input_shape, _ = text_problem()
    target = y.astype(np.float32) * 2 - 1
    rung = build_model(RUNGS[name].Config(), input_shape, 1, seed=0, task="regression").fit(X, target)
    assert type(rung.estimator_[-1]).__name__ == estimator
    assert 1 - np.mean((rung.predict(X) - target) ** 2) / np.var(target) > 0.5
    rung.save(tmp_path / "r.skops")
    loaded = RUNGS[name].load(tmp_path / "r.skops", RUNGS[name].Config(), input_shape, 1, task="regression")
    assert np.array_equal(loaded.predict(X), rung.predict(X))


def test_loading_another_rungs_pipeline_names_both(tmp_path):
    X, y, input_shape, n_outputs = text_problem()
    build_model(TfidfSVMRung.Config(), input_shape, n_outputs, seed=0).fit(X, y).save(tmp_path / "svm.skops")
    with pytest.raises(InputError, match=rf"^model file {tmp_path / 'svm.skops'} holds a TfidfVectorizer \+ LinearSVC, "
                                         r"model tfidf_logreg for task 'classification' expects a "
                                         r"TfidfVectorizer \+ LogisticRegression$"):
        TfidfLogRegRung.load(tmp_path / "svm.skops", TfidfLogRegRung.Config(), input_shape, n_outputs)


def test_tfidf_rungs_need_a_1d_array_of_texts():
    rung = build_model(TfidfLogRegRung.Config(), (), 2, seed=0)
    with pytest.raises(ValueError, match=r"needs a 1-D array of texts, got an array shaped \(2, 1\)"):
        rung.fit(np.array([["a b"], ["c d"]], dtype=object), np.array([0, 1]))
