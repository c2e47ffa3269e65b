"""`ladder serve --backend onnxruntime [--quantize int8]`: the run's checked ONNX export gives the torch backend's
argmax and probabilities within 1e-4 behind the same API; int8 measures and prints its accuracy change; a run that
cannot be exported, or a graph that fails its check, is refused before anything is served."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelladder.cli import main as ladder
from modelladder.runs import read_json
from modelladder.serve.app import create_app
from modelladder.serve.predictor import Predictor
from modelladder.verbs.export_check import check_inputs
from modelladder.verbs.serve_backend import CACHE, load_predictor
from tests.export.runs import image_run, text_run

TEXTS = ["the team scored a goal in the match", "a new law after the election", "the cpu runs code"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backend-runs")
    return {"mlp": image_run(folder, "mlp"), "transformer": text_run(folder, "transformer")}


@pytest.mark.parametrize("rung", ["mlp", "transformer"])
def test_onnxruntime_gives_the_torch_backends_probabilities(runs, rung, capsys):
    torch_backend = load_predictor(runs[rung], "torch")
    onnx_backend = load_predictor(runs[rung], "onnxruntime")
    assert "exporting" in capsys.readouterr().err and (runs[rung] / CACHE / "export.json").is_file()
    X, _, _ = check_inputs(torch_backend)
    ours, theirs = torch_backend.scores(X), onnx_backend.scores(X)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)
    assert (theirs.argmax(1) == ours.argmax(1)).all()
    load_predictor(runs[rung], "onnxruntime")
    assert "exporting" not in capsys.readouterr().err  # the checked graph is reused


def test_the_app_answers_the_same_through_either_backend(runs):
    run = runs["transformer"]
    answers = {}
    for backend in ("torch", "onnxruntime"):
        with TestClient(create_app(load_predictor(run, backend))) as c:
            answers[backend] = c.post("/predict", json={"texts": TEXTS}).json()
            assert c.get("/metadata").json()["backend"]["name"] == backend
    assert answers["onnxruntime"]["predictions"] == answers["torch"]["predictions"]
    for got, expected in zip(answers["onnxruntime"]["probabilities"], answers["torch"]["probabilities"]):
        assert got.keys() == expected.keys()
        np.testing.assert_allclose(list(got.values()), list(expected.values()), atol=1e-4)


def test_int8_measures_and_prints_its_accuracy_change(runs, capsys):
    int8 = load_predictor(runs["mlp"], "onnxruntime", "int8")
    printed = capsys.readouterr().err
    change = int8.backend()["quantization"]
    assert "int8: accuracy" in printed and f"{change['change']:+.4f}" in printed
    assert change["split"] == "test" and change["n"] == change["n_split"] > 0 and not change["sampled"]
    assert abs(change["change"]) <= 0.05 and change["agreement"] >= 0.9
    assert (runs["mlp"] / CACHE / "model.int8.onnx").is_file()
    with TestClient(create_app(int8)) as c:
        backend = c.get("/metadata").json()["backend"]
    assert backend["precision"].startswith("int8") and backend["quantization"]["metric"] == "accuracy"
    probabilities = int8.predict_proba(np.zeros((2, 8, 8), np.float32))
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)


def test_a_run_that_cannot_be_exported_is_exit_2_and_nothing_is_written(tmp_path, capsys):
    from modelladder.config import to_yaml, validate_run

    run = tmp_path / "gan"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(validate_run({"name": "gan", "task": {"name": "gan"},
                                                           "model": {"name": "gan"}})))
    assert ladder(["serve", str(run), "--backend", "onnxruntime"]) == 2
    assert "model gan cannot be exported to ONNX" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]


def test_quantize_needs_the_onnxruntime_backend(runs, capsys):
    assert ladder(["serve", str(runs["mlp"]), "--quantize", "int8"]) == 2
    assert "--quantize int8 needs --backend onnxruntime" in capsys.readouterr().err


def test_a_graph_that_fails_its_check_is_exit_1_and_not_cached(runs, tmp_path, monkeypatch, capsys):
    from modelladder.verbs import export_check

    run = tmp_path / "mlp"
    shutil.copytree(runs["mlp"], run, ignore=shutil.ignore_patterns(CACHE))
    monkeypatch.setattr(export_check, "PROBABILITY_TOLERANCE", -1.0)  # no difference can pass
    assert ladder(["serve", str(run), "--backend", "onnxruntime"]) == 1
    assert "does not agree with the torch model" in capsys.readouterr().err
    assert not (run / CACHE).exists() and not [p for p in run.iterdir() if p.name.startswith(f".{CACHE}")]


def test_the_torch_backend_says_so_in_metadata(runs):
    with TestClient(create_app(Predictor.load(runs["mlp"]))) as c:
        assert c.get("/metadata").json()["backend"]["name"] == "torch"


def test_explain_works_behind_the_onnxruntime_backend(runs):
    from modelladder.verbs.explain import page_explainer

    predictor = load_predictor(runs["transformer"], "onnxruntime")
    with TestClient(create_app(predictor, explain=page_explainer(predictor))) as c:
        answer = c.post("/explain", json={"texts": TEXTS[:1]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["predicted"] == predictor.predict(TEXTS[:1])[0]  # gradients from torch, scores from onnx


def test_a_calibrated_run_is_calibrated_on_onnxruntime_too(runs, tmp_path):
    run = tmp_path / "calibrated"
    shutil.copytree(runs["mlp"], run)  # its checked graph too: calibration rescales the graph's logits
    (run / "calibration.json").write_text('{"method": "temperature", "params": {"temperature": 3.0}}')
    torch_backend, onnx_backend = load_predictor(run, "torch"), load_predictor(run, "onnxruntime")
    X, _, _ = check_inputs(torch_backend)
    assert torch_backend.calibration is not None
    np.testing.assert_allclose(onnx_backend.scores(X), torch_backend.scores(X), rtol=0, atol=1e-4)
    assert not np.allclose(onnx_backend.scores(X), onnx_backend.uncalibrated_scores(X), atol=1e-3)


def test_a_regression_serves_its_values_and_int8_its_mean_absolute_error(tmp_path, capsys):
    from tests.export.runs import regression_run

    run = regression_run(tmp_path)
    torch_backend, int8 = load_predictor(run, "torch"), load_predictor(run, "onnxruntime", "int8")
    assert "int8: mae" in capsys.readouterr().err and int8.backend()["quantization"]["metric"] == "mae"
    fp32 = load_predictor(run, "onnxruntime")
    X, _, _ = check_inputs(torch_backend)
    values = torch_backend.scores(X)
    np.testing.assert_allclose(fp32.scores(X), values, rtol=0, atol=1e-4 * max(1.0, np.abs(values).max()))


def test_servers_started_together_on_a_fresh_run_export_once_and_agree(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    run = image_run(tmp_path, "mlp")
    with ThreadPoolExecutor(3) as pool:  # as three `ladder serve --backend onnxruntime` started at once
        predictors = list(pool.map(lambda q: load_predictor(run, "onnxruntime", q), [None, "int8", None]))
    X, _, _ = check_inputs(predictors[0])
    np.testing.assert_array_equal(predictors[0].scores(X), predictors[2].scores(X))
    files = {p.name for p in (run / CACHE).iterdir()}
    assert files == {*read_json(run / CACHE / "export.json")["files"], "model.int8.onnx"}
    assert not [p for p in run.iterdir() if p.name.startswith(f".{CACHE}")]  # no staging folder left over
