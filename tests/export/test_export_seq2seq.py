"""`ladder export` of seq2seq runs: the RNN (Luong attention) and the Transformer export to an encoder and a
decoder-step ONNX graph whose greedy decoding (verbs/onnx_seq2seq.py, onnxruntime + numpy) gives our outputs
exactly and our step logits within the tolerance (export.json); a tampered graph fails the check (exit 1, nothing
written); the torch format rebuilds them; letter_to_sound is refused with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelladder.cli import main as ladder
from tests.export.runs import train

DATA = {"dataset": "cmudict", "limit": 200}  # 10 test words
TRAIN = {"epochs": 1, "batch_size": 32, "threads": 1, "progress": False}
MODELS = {
    "seq2seq_rnn": {"name": "seq2seq_rnn", "cell": "lstm", "attention": "luong", "embed_dim": 8, "hidden": 16},
    "seq2seq_transformer": {"name": "seq2seq_transformer", "dim": 16, "depth": 1, "decoder_depth": 1, "heads": 2},
}


class Runs(dict):
    """Tiny runs on 200 CMUdict words, 1 epoch (~5 s each), trained once per module on first use."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, name: str) -> Path:
        beam = {"eval": {"beam": 3}} if name == "seq2seq_transformer" else {}  # the export also runs the run's beam
        self[name] = train(self.folder, name, {"data": DATA, "task": {"name": "seq2seq"}, "model": MODELS[name],
                                               "train": TRAIN, **beam})
        return self[name]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("seq2seq-export"))


def config_only(folder: Path, model: dict) -> Path:
    """A run folder holding only its config.yaml: what is refused must be refused before anything else is read."""
    from modelladder.config import to_yaml, validate_run

    folder.mkdir()
    (folder / "config.yaml").write_text(to_yaml(validate_run({"name": folder.name, "data": DATA,
                                                              "task": {"name": "seq2seq"}, "model": model})))
    return folder


def export(run: Path, fmt: str, out: Path) -> int:
    return ladder(["export", str(run), "--format", fmt, "--out", str(out)])


@pytest.mark.slow  # 10 to 18 s each on 2 busy cores: training, two or three graphs traced
@pytest.mark.parametrize("rung", sorted(MODELS))
def test_onnx_export_decodes_as_we_do(runs, rung, tmp_path):
    import onnxruntime

    from modelladder.serve.predictor import Predictor
    from modelladder.verbs.onnx_seq2seq import OnnxSeq2Seq

    out = tmp_path / "onnx"
    assert export(runs[rung], "onnx", out) == 0
    record = json.loads((out / "export.json").read_text())
    check = record["verification"]
    assert check["passed"] and check["sequence_agreement"] == 1.0 and check["sequences_differing"] == 0
    assert check["max_abs_diff"] <= check["tolerance"] and check["n"] == 10 and check["decoding"] == "greedy"
    assert sorted(record["files"]) == sorted(p.name for p in out.iterdir()) == [
        "decoder.onnx", "encoder.onnx", "export.json", "preprocess.json", "seq2seq.json", "tokenizer.json"]
    encoder = onnxruntime.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    assert {i.name: i.shape for i in encoder.get_inputs()} == {"input_ids": ["batch", "source"],
                                                               "attention_mask": ["batch", "source"]}
    if rung == "seq2seq_transformer":  # recorded, not required: near-ties of an untrained model may rank apart
        assert check["beam_search"]["beam"] == 3 and check["beam_search"]["sequence_agreement"] >= 0.9
    else:
        assert "beam_search" not in check
    spec = json.loads((out / "seq2seq.json").read_text())
    assert spec["decoder"]["feeds"] == ("prefix" if rung == "seq2seq_transformer" else "previous")
    # the consumer's loop on new words of other lengths, one at a time and batched, gives the Predictor's greedy output
    predictor = Predictor.load(runs[rung])
    words = np.asarray(["a", "export", "ladders", "onnxruntime"], dtype=object)
    runtime = OnnxSeq2Seq(out)
    predictor.cfg.eval.beam = 1
    ours = list(predictor.sequences(words))
    assert runtime.translate(list(words)) == runtime.translate(list(words), batch_size=1) == ours


@pytest.mark.slow  # ~10 s: training and tracing
def test_a_tampered_graph_fails_the_check_and_leaves_nothing(runs, tmp_path, monkeypatch, capsys):
    import onnx
    from onnx import numpy_helper

    from modelladder.verbs import export_seq2seq

    original = export_seq2seq.check

    def tampered(predictor, folder, X, max_length):
        graph = onnx.load(str(folder / "decoder.onnx"))
        biggest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
        weights = numpy_helper.to_array(biggest)
        biggest.CopyFrom(numpy_helper.from_array(weights + np.float32(0.5) * np.abs(weights).max(), biggest.name))
        onnx.save(graph, str(folder / "decoder.onnx"))
        return original(predictor, folder, X, max_length)

    monkeypatch.setattr(export_seq2seq, "check", tampered)
    out = tmp_path / "exports" / "rnn"
    assert export(runs["seq2seq_rnn"], "onnx", out) == 1
    err = capsys.readouterr().err
    assert "failed its check, nothing was written" in err and "output sequences (greedy) agree on" in err
    assert list((tmp_path / "exports").iterdir()) == []


@pytest.mark.slow  # training (~5 s)
def test_torch_export_rebuilds_and_decodes_the_same(runs, tmp_path):
    out = tmp_path / "torch"
    assert export(runs["seq2seq_rnn"], "torch", out) == 0
    check = json.loads((out / "export.json").read_text())["verification"]
    assert check["passed"] and check["max_abs_diff"] == 0 and check["sequence_agreement"] == 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["n_outputs"] == len(config["target_vocab"]) and config["decoding"]["beam"] == 1


def test_letter_to_sound_is_refused_with_its_reason(tmp_path, capsys):
    run = config_only(tmp_path / "l2s", {"name": "letter_to_sound"})
    assert export(run, "onnx", tmp_path / "out") == 2
    assert "model letter_to_sound cannot be exported to ONNX: its letter-window tree" in capsys.readouterr().err
    assert export(run, "torch", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "model letter_to_sound is a scikit-learn rung: it has no state dict" in err and "--format onnx" not in err
    assert not (tmp_path / "out").exists()


def test_serving_a_seq2seq_run_on_onnxruntime_is_refused(tmp_path):
    from modelladder.errors import InputError
    from modelladder.verbs.serve_backend import load_predictor

    with pytest.raises(InputError, match="serve it with --backend torch"):
        load_predictor(config_only(tmp_path / "rnn", MODELS["seq2seq_rnn"]), "onnxruntime")
