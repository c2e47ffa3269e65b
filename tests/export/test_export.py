"""`ladder export`: every exportable registered model exports to ONNX and passes onnxruntime's check on its test
split (export.json), with dynamic batch (and sequence) axes; the hf rung exports as a Hugging Face folder that
transformers / peft load; networks export as a torch state dict; refused models and formats are exit 2 with
a message that says why; a failed check is exit 1 and leaves no folder behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelladder.cli import main as ladder
from modelladder.registry import MODELS
from modelladder.verbs.export_onnx import REFUSED
from tests.export.runs import TEXT_MODELS, causal_lm_run, encoder_run, image_run, regression_run, text_run
from tests.export.tiny_bert import save_tiny_bert

ONNX = {"mlp": "image", "cnn": "image", "linear": "image", "logreg": "image", "random_forest": "image",
        "rnn": "text", "transformer": "text", "hf": "text", "autoencoder": "encoder", "vae": "encoder"}


class Runs:
    """Tiny runs trained once per module, on first use."""

    def __init__(self, folder: Path):
        self.folder, self.made = folder, {}

    def __call__(self, rung: str) -> Path:
        if rung not in self.made:
            self.made[rung] = self._train(rung)
        return self.made[rung]

    def _train(self, rung: str) -> Path:
        if rung == "hf":
            bert = save_tiny_bert(self.folder / "tiny-bert")
            return text_run(self.folder, "hf", {"name": "hf", "model": str(bert), "mode": "lora", "max_length": 16,
                                                "lora": {"r": 2}})
        if rung in ("rnn", "transformer", "tfidf_logreg"):
            return text_run(self.folder, rung)
        if rung == "causal_transformer":  # rotary positions, a causal mask, the last real token pooled
            return text_run(self.folder, rung, {**TEXT_MODELS["transformer"], "positions": "rope", "causal": True,
                                                "pooling": "last"})
        if rung in ("autoencoder", "vae"):
            return encoder_run(self.folder, rung)
        if rung == "hf_causal_lm":
            return causal_lm_run(self.folder)
        if rung == "mlp_regression":
            return regression_run(self.folder, "mlp")
        if rung == "logreg":
            return image_run(self.folder, "linear", name="logreg")
        return image_run(self.folder, rung)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    return Runs(tmp_path_factory.mktemp("export-runs"))


def export(run: Path, fmt: str, out: Path, *extra: str) -> int:
    return ladder(["export", str(run), "--format", fmt, "--out", str(out), *extra])


def checked(out: Path) -> dict:
    """export.json of a successful export, its check passed."""
    record = json.loads((out / "export.json").read_text())
    check = record["verification"]
    assert check["passed"] and check["max_abs_diff"] <= check["tolerance"], check
    assert check.get("argmax_agreement", 1.0) == 1.0 and check["n"] > 0
    assert sorted(p.name for p in out.iterdir()) == sorted(record["files"])
    return record


def test_every_registered_model_is_exported_or_refused_with_a_reason():
    from modelladder.registry import lookup
    from modelladder.verbs.export_onnx import REFUSED_TASKS

    assert not set(ONNX) & set(REFUSED)
    # a model that trains only refused tasks is refused through its task
    seq2seq = {"seq2seq_rnn", "seq2seq_transformer"}  # tests/export/test_export_seq2seq.py
    others = {m for m in set(MODELS) - set(ONNX) - set(REFUSED) - seq2seq
              if not set(lookup(MODELS, "model.name", m).tasks) <= set(REFUSED_TASKS)}
    assert not others, f"decide whether these export to ONNX (tests) or are refused (REFUSED): {sorted(others)}"


@pytest.mark.parametrize("rung", [pytest.param(r, marks=pytest.mark.slow) if ONNX[r] == "text" else r
                                  for r in sorted(ONNX)])  # text networks: 7 to 12 s each (tracing and the tokenizer)
def test_onnx_export_agrees_with_onnxruntime(runs, rung, tmp_path):
    import onnxruntime

    out = tmp_path / "onnx"
    assert export(runs(rung), "onnx", out) == 0
    record = checked(out)
    assert record["verification"]["runtime"].startswith("onnxruntime")
    assert (out / "preprocess.json").is_file() and (out / "tokenizer.json").is_file() == (ONNX[rung] == "text")
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in session.get_inputs()}
    if ONNX[rung] == "text":
        assert shapes == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    else:
        assert [s[0] for s in shapes.values()] in (["batch"], [None]), shapes  # skl2onnx names no axis
    if ONNX[rung] == "encoder":
        assert record["outputs"][0]["name"] == "code" and record["verification"]["compared"] == "codes"


@pytest.mark.slow
def test_a_causal_transformer_pooling_its_last_token_keeps_dynamic_axes(runs, tmp_path):
    out = tmp_path / "onnx"
    assert export(runs("causal_transformer"), "onnx", out) == 0
    assert checked(out)["inputs"][0]["shape"] == ["batch", "sequence"]


def test_a_graph_whose_batch_axis_the_code_fixes_is_refused(runs, tmp_path, monkeypatch, capsys):
    from modelladder.verbs import export_onnx

    # len() is a Python int: the tracer makes the batch size a constant (and torch.onnx falls back to that graph)
    monkeypatch.setattr(export_onnx._Features, "forward", lambda self, x: self.model(x) + 0 * len(x))
    assert export(runs("mlp"), "onnx", tmp_path / "onnx") == 2
    assert "could not keep the ['batch'] axes of input x dynamic" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_regression_network_exports_its_standardised_value_and_the_scale_beside(runs, tmp_path):
    out = tmp_path / "onnx"
    assert export(runs("mlp_regression"), "onnx", out) == 0
    record = checked(out)
    assert record["verification"]["compared"] == "values" and set(record["target"]) >= {"mean", "std"}


@pytest.mark.parametrize("rung", ["hist_gb", "tfidf_logreg"])
def test_refused_scikit_learn_rungs_are_exit_2_with_the_reason(runs, rung, tmp_path, capsys):
    out = tmp_path / "onnx"
    assert export(runs(rung), "onnx", out) == 2
    assert f"error: model {rung} cannot be exported to ONNX: skl2onnx" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_run_of_a_refused_family_is_refused_before_its_data_is_read(tmp_path, capsys):
    from modelladder.config import to_yaml, validate_run

    run = tmp_path / "gan"
    run.mkdir()
    (run / "config.yaml").write_text(to_yaml(validate_run({"name": "gan", "task": {"name": "gan"},
                                                           "model": {"name": "gan"}})))
    assert export(run, "onnx", tmp_path / "out") == 2
    assert "model gan cannot be exported to ONNX: a GAN run has no classifier or encoder" in capsys.readouterr().err


def test_a_failed_check_is_exit_1_and_leaves_no_folder(runs, tmp_path, monkeypatch, capsys):
    from modelladder.verbs import export_check

    monkeypatch.setattr(export_check, "PROBABILITY_TOLERANCE", -1.0)  # no difference can pass
    out = tmp_path / "exports" / "mlp"
    assert export(runs("mlp"), "onnx", out) == 1
    assert "failed its check, nothing was written" in capsys.readouterr().err
    assert list((tmp_path / "exports").iterdir()) == []  # neither the folder nor its temporary


def test_an_existing_out_folder_is_refused_unless_overwrite(runs, tmp_path, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert export(runs("mlp"), "onnx", out) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and (out / "keep.txt").is_file()
    assert export(runs("mlp"), "onnx", out, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and checked(out)


def test_hf_export_merged_loads_with_transformers(runs, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "hf"
    assert export(runs("hf"), "hf", out) == 0
    record = checked(out)
    assert record["verification"]["runtime"].startswith("transformers") and "adapter_config.json" not in record["files"]
    model, tokenizer = AutoModel.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == 16 and not any("lora" in k for k in model.state_dict())


def test_hf_export_adapters_only_is_peft_format(runs, tmp_path):
    out = tmp_path / "adapters"
    assert export(runs("hf"), "hf", out, "--adapters-only") == 0
    record = checked(out)
    assert {"adapter_config.json", "adapter_model.safetensors", "head.safetensors"} <= set(record["files"])
    assert "model.safetensors" not in record["files"] and "peft" in record["verification"]["runtime"]


@pytest.mark.parametrize(("rung", "fmt", "message"), [
    ("mlp", "hf", "model mlp has no transformers architecture"),
    ("linear", "torch", "model linear is a scikit-learn rung: it has no state dict"),
])
def test_refused_formats_are_exit_2(runs, rung, fmt, message, tmp_path, capsys):
    assert export(runs(rung), fmt, tmp_path / "out") == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("rung", ["mlp", "rnn", "autoencoder"])
def test_torch_export_rebuilds_from_the_state_dict_and_config(runs, rung, tmp_path):
    from safetensors.torch import load_file

    from modelladder.models.build import build_model
    from modelladder.registry import lookup

    out = tmp_path / "torch"
    assert export(runs(rung), "torch", out) == 0
    checked(out)
    config = json.loads((out / "config.json").read_text())
    model_cfg = lookup(MODELS, "model.name", config["model"]["name"]).Config.model_validate(config["model"])
    model = build_model(model_cfg, config["input_shape"], config["n_outputs"], seed=1, task=config["task"])
    model.load_state_dict(load_file(out / "model.safetensors"), strict=True)
    assert all(np.isfinite(v.numpy()).all() for v in model.state_dict().values())


@pytest.mark.parametrize("adapters", [False, True])
def test_a_causal_lm_run_exports_as_a_hugging_face_folder(runs, adapters, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("MODELLADDER_CACHE", str(runs.folder / "cache"))  # the corpus' token files, made once
    out = tmp_path / "hf"
    assert export(runs("hf_causal_lm"), "hf", out, *(["--adapters-only"] if adapters else [])) == 0
    record = checked(out)
    assert record["verification"]["split"] == "val" and record["verification"]["compared"] == "probabilities"
    if adapters:
        assert {"adapter_config.json", "adapter_model.safetensors"} <= set(record["files"])
    else:
        model = AutoModelForCausalLM.from_pretrained(out)
        assert not any("lora" in k for k in model.state_dict())
