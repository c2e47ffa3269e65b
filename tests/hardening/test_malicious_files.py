"""A crafted pickle (its payload would create a folder) handed to every loader path is refused with
exit status 2, and the payload never runs: nothing in ModelLadder unpickles a file a user hands in."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from modelladder.cli import main
from tests.conftest import REPO


class Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def payloads(marker: Path) -> dict[str, bytes]:
    """The same payload as a plain pickle and as a torch.save (.pt) zip."""
    buffer = io.BytesIO()
    torch.save({"weight": Payload(marker)}, buffer)
    return {"pickle": pickle.dumps(Payload(marker)), "torch": buffer.getvalue()}


def test_the_payload_is_live(tmp_path):
    """What the other tests hand in really does run when unpickled."""
    for kind, data in payloads(tmp_path / "proof").items():
        pickle.loads(data) if kind == "pickle" else torch.load(io.BytesIO(data), weights_only=False)
        assert (tmp_path / "proof").is_dir()
        (tmp_path / "proof").rmdir()


def refused(capsys, marker: Path, *argv: str, message: str) -> None:
    assert main([*map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not marker.exists()


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "PWNED"


def copy(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / run_dir.name))


@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_a_pickled_model_file_is_refused_by_predict_evaluate_and_serve(trained_runs, tmp_path, capsys, marker, kind):
    run = copy(trained_runs["tabular"], tmp_path)
    (run / "model.safetensors").write_bytes(payloads(marker)[kind])
    (tmp_path / "rows.csv").write_text("age,income,city\n30,50,oslo\n")
    message = rf"weights file {re.escape(str(run / 'model.safetensors'))} is not a valid safetensors file"
    refused(capsys, marker, "predict", run, tmp_path / "rows.csv", message=message)
    refused(capsys, marker, "evaluate", run, message=message)
    refused(capsys, marker, "serve", run, "--port", "1", message=message)


@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors"])
def test_a_pickled_checkpoint_is_refused_by_resume_even_with_its_checksum_fixed(trained_runs, tmp_path, capsys,
                                                                               marker, name):
    run = copy(trained_runs["tabular"], tmp_path / "runs")
    step = max((run / "checkpoints").glob("step-*"))
    data = payloads(marker)["torch"]
    (step / name).write_bytes(data)
    state = json.loads((step / "state.json").read_text())  # an attacker can recompute a checksum
    state.pop("state_sha256")
    state["files"][name] = hashlib.sha256(data).hexdigest()
    state["state_sha256"] = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    (step / "state.json").write_text(json.dumps(state))
    config = tmp_path / "people.yaml"
    config.write_text((run / "config.yaml").read_text())
    refused(capsys, marker, "train", config, "--runs-dir", tmp_path / "runs", "--name", run.name, "--resume",
            message=rf"weights file {re.escape(str(step / name))} is not a valid safetensors file")


def test_a_pickle_in_place_of_a_skops_model_is_refused(trained_runs, tmp_path, capsys, marker):
    run = copy(trained_runs["classic"], tmp_path)
    (run / "model.skops").write_bytes(payloads(marker)["pickle"])
    (tmp_path / "rows.csv").write_text("age,income,city\n30,50,oslo\n")
    refused(capsys, marker, "predict", run, tmp_path / "rows.csv",
            message=rf"model file {re.escape(str(run / 'model.skops'))} is not a readable skops file")


def test_a_pickle_in_place_of_a_tokenizer_is_refused(trained_runs, tmp_path, capsys, marker):
    run = copy(trained_runs["text"], tmp_path)
    (run / "tokenizer.json").write_bytes(payloads(marker)["pickle"])
    refused(capsys, marker, "predict", run, "--text", "a goal",
            message=rf"tokenizer file {re.escape(str(run / 'tokenizer.json'))} is not a readable tokenizer.json")


@pytest.mark.parametrize(("dataset", "filename"), [
    ("csv", "data.pkl"), ("csv", "data.csv"), ("parquet", "data.parquet"), ("text", "data.jsonl"), ("text", "data.csv"),
])
def test_a_pickled_data_file_is_refused(tmp_path, capsys, marker, dataset, filename):
    (tmp_path / filename).write_bytes(payloads(marker)["pickle"])
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"dataset": dataset, "path": str(tmp_path / filename)},
                                      "model": {"name": "logreg"}}))
    refused(capsys, marker, "train", config, "--runs-dir", tmp_path / "runs", message=re.escape(filename))
    assert not (tmp_path / "runs").exists()


def test_a_config_with_a_python_object_tag_is_refused(tmp_path, capsys, marker):
    config = tmp_path / "run.yaml"
    config.write_text(f"name: !!python/object/apply:os.mkdir ['{marker}']\nmodel: {{name: logreg}}\n")
    refused(capsys, marker, "train", config, "--runs-dir", tmp_path / "runs", message=re.escape(str(config)))


@pytest.mark.parametrize(("kind", "filename"), [("tabular", "rows.pkl"), ("tabular", "rows.csv"),
                                                 ("image", "digit.png"), ("text", "texts.pkl")])
def test_a_pickled_predict_input_is_refused(trained_runs, tmp_path, capsys, marker, kind, filename):
    (tmp_path / filename).write_bytes(payloads(marker)["pickle"])
    refused(capsys, marker, "predict", trained_runs[kind], tmp_path / filename, message=re.escape(filename))


def test_no_source_file_unpickles():
    """The guard behind all of the above: no loader in the package can unpickle."""
    unsafe = re.compile(r"torch\.load\(|pickle\.loads?\(|joblib\.load\(|read_pickle\(|allow_pickle=True|"
                        r"yaml\.load\(|yaml\.unsafe_load|dill\.|cloudpickle\.")
    found = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "src").rglob("*.py")
             for n, line in enumerate(path.read_text().splitlines(), 1) if unsafe.search(line)]
    assert found == []


def hf_folder_with_a_pickle(folder: Path, marker: Path, name: str = "pytorch_model.bin") -> Path:
    """A Hugging Face folder as it looked before safetensors: config.json and pickled weights only."""
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                                    "num_attention_heads": 2, "intermediate_size": 8}))
    (folder / name).write_bytes(payloads(marker)["torch"])
    return folder


PICKLED_FOLDER = r"folder '{}' holds its weights only as a pickle \({}\), and ModelLadder never unpickles"


@pytest.mark.parametrize("model", ["hf", "hf_causal_lm"])
def test_a_hugging_face_folder_with_only_a_pickle_is_refused_by_train_and_pretrain(tmp_path, capsys, marker, model):
    folder = hf_folder_with_a_pickle(tmp_path / "old-model", marker)
    (tmp_path / "texts.csv").write_text("text,label\n" + "a good goal,sport\nan election,politics\n" * 10)
    (tmp_path / "corpus.txt").write_text("a good goal in the last minute\n" * 20)
    field, data, task, verb = {
        "hf": ("model.model", {"dataset": "text", "path": str(tmp_path / "texts.csv")}, "classification", "train"),
        "hf_causal_lm": ("model.path", {"dataset": "text", "path": str(tmp_path / "corpus.txt")}, "causal_lm",
                         "pretrain")}[model]
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": data, "task": {"name": task},
                                      "model": {"name": model, field.split(".")[1]: str(folder)}}))
    refused(capsys, marker, verb, config, "--runs-dir", tmp_path / "runs",
            message=rf"{field}: {PICKLED_FOLDER.format(re.escape(str(folder)), 'pytorch_model.bin')}.*safetensors")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt"])
def test_a_folder_with_only_a_pickle_is_refused_by_finetune_and_generate(tmp_path, capsys, marker, name):
    folder = hf_folder_with_a_pickle(tmp_path / "old-model", marker, name)
    pattern = PICKLED_FOLDER.format(re.escape(str(folder)), re.escape(name))
    refused(capsys, marker, "finetune", folder, "--runs-dir", tmp_path / "runs", message=f"finetune.from {pattern}")
    refused(capsys, marker, "generate", "--base", folder, message=f"--base {pattern}")
    refused(capsys, marker, "generate", folder, message=f"run {pattern}")
    assert not (tmp_path / "runs").exists()
