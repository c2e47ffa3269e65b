"""Attribution methods on models with a known answer: IG's completeness, the deciding column and the deciding
word ranked first by every method, deletion curves that beat random orders, agreement between methods."""

from __future__ import annotations

import pytest

from modelladder.explain import neural
from modelladder.serve.predictor import Predictor
from modelladder.verbs.build import load_run_data
from modelladder.verbs.explain import RunExplainer, explain_run
from tests.explain.runs import DECIDERS, key_rows


def test_integrated_gradients_are_complete_on_digits(digits_mlp, digits_cnn):
    for run in (digits_mlp, digits_cnn):
        predictor = Predictor.load(run)
        X = load_run_data(predictor.cfg).X_test[:3]
        explainer = RunExplainer(predictor)
        for x in X:
            subject = explainer.subject(x)
            target = int(predictor.scores(x[None]).argmax())
            attributions, details = neural.tensor_attribution(predictor.model, "ig", x, subject.baseline, target)
            gain = predictor.scores(x[None])[0, target] - predictor.scores(subject.baseline[None])[0, target]
            assert attributions.shape == x.shape
            assert abs(attributions.sum() - gain) < 0.01, (attributions.sum(), gain, details)
            assert details["completeness_gap"] < 0.01


def test_deletion_curve_of_ig_beats_random_orders_on_digits(digits_cnn):
    predictor = Predictor.load(digits_cnn)
    X = load_run_data(predictor.cfg).X_test[:6]
    record = explain_run(predictor, X, [f"test {i}" for i in range(6)], methods=["ig"])
    summary = record["summary"]["ig"]
    assert summary["deletion_auc"] < summary["random_deletion_auc"] - 0.15, summary
    assert summary["insertion_auc"] > summary["random_insertion_auc"] + 0.15, summary
    curve = record["inputs"][0]["methods"]["ig"]["faithfulness"]
    assert curve["fractions"][0] == 0 and curve["fractions"][-1] == 1
    assert curve["deletion"][0] == pytest.approx(record["inputs"][0]["target_probability"], abs=1e-3)


@pytest.mark.parametrize("fixture", ["key_hist_gb", "key_logreg"])
def test_shap_ranks_the_only_column_that_matters_first(fixture, request):
    predictor = Predictor.load(request.getfixturevalue(fixture))
    record = explain_run(predictor, predictor.features(key_rows()), [f"row {i}" for i in range(4)])
    assert record["methods"] == ["shap"]
    for item in record["inputs"]:
        assert item["methods"]["shap"]["top"][0]["unit"] == "x2", item["methods"]["shap"]["top"]
    assert record["global"]["importance"][0]["unit"] == "x2"
    assert {u["unit"] for u in record["global"]["importance"]} == {"x0", "x1", "x2", "x3", "colour"}
    assert record["inputs"][0]["methods"]["shap"]["explainer"] == ("tree" if fixture == "key_hist_gb" else "kernel")


def test_ig_saliency_and_shap_agree_on_the_table_mlp(key_mlp):
    predictor = Predictor.load(key_mlp)
    record = explain_run(predictor, predictor.features(key_rows()), [f"row {i}" for i in range(4)])
    assert record["methods"] == ["ig", "saliency", "shap"]
    for item in record["inputs"]:
        for method in ("ig", "shap"):
            assert item["methods"][method]["top"][0]["unit"] == "x2"
    # one-hot columns are summed back into their source column
    assert len(record["inputs"][0]["methods"]["ig"]["top"]) == 5
    assert record["summary"]["ig vs shap"] > 0.5, record["summary"]


def _decided(record) -> list[tuple[str, dict]]:
    return [(word, item) for item in record["inputs"] for word in DECIDERS.values() if word in item["input"].split()]


def test_the_deciding_word_gets_the_top_attribution_from_ig_and_lime(sentiment_transformer):
    predictor = Predictor.load(sentiment_transformer)
    texts = ["the movie was great and it was so", "a plot of awful actors with the film",
             "actors with great film of the plot", "so awful the movie it was"]
    record = explain_run(predictor, predictor.features(texts), texts, lime_samples=300)
    assert record["methods"] == ["ig", "lime"]
    for word, item in _decided(record):
        assert item["predicted"] == {v: k for k, v in DECIDERS.items()}[word], item
        for method in ("ig", "lime"):
            assert item["methods"][method]["top"][0]["unit"] == word, (method, item["methods"][method]["top"])
        assert item["methods"]["ig"]["completeness_gap"] < 0.05
        assert f">{word}</span>" in item["methods"]["lime"]["html"]
        assert any(token == word for token, _ in item["methods"]["ig"]["tokens"])
    assert record["summary"]["ig vs lime"] > 0.3, record["summary"]


def test_lime_explains_a_tfidf_rung(sentiment_tfidf):
    predictor = Predictor.load(sentiment_tfidf)
    texts = ["the movie was great and it was so", "a plot of awful actors with the film"]
    record = explain_run(predictor, predictor.features(texts), texts, lime_samples=300)
    assert record["methods"] == ["lime"] and record["inputs"][0]["agreement"] == {}
    for word, item in _decided(record):
        assert item["methods"]["lime"]["top"][0]["unit"] == word
        faith = item["methods"]["lime"]["faithfulness"]
        assert faith["deletion_auc"] < faith["random_deletion_auc"]
