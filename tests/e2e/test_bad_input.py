"""Bad input from the command line: one clear message, exit status 2, nothing on disk lost."""

from __future__ import annotations

import gzip
import shutil

import pytest
import yaml

from tests.conftest import require_data
from tests.e2e.helpers import ladder


def write(path, obj):
    path.write_text(yaml.safe_dump(obj))
    return path.name


def csv_config(tmp_path, csv_text: str, label: str = "label", name: str = "t.yaml") -> str:
    (tmp_path / "d.csv").write_text(csv_text)
    return write(tmp_path / name, {"data": {"dataset": "csv", "path": "d.csv", "label": label},
                                   "model": {"name": "logreg"}})


def assert_refused(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file(tmp_path):
    assert_refused(ladder("train", "nope.yaml", cwd=tmp_path), "config file nope.yaml does not exist")


def test_missing_data_file(tmp_path):
    name = write(tmp_path / "t.yaml", {"data": {"dataset": "csv", "path": "missing.csv", "label": "y"},
                                       "model": {"name": "logreg"}})
    assert_refused(ladder("train", name, cwd=tmp_path), "missing.csv")
    assert not (tmp_path / "runs" / "t").exists()  # no empty run folder left to block the next try


def test_wrong_label_column(tmp_path):
    name = csv_config(tmp_path, "a,b,lable\n1,2,x\n3,4,y\n", label="label")
    assert_refused(ladder("train", name, cwd=tmp_path), "label", "lable")


def test_garbage_in_numeric_column(tmp_path):
    rows = "\n".join(f"{i},{i % 2}" for i in range(30))
    name = csv_config(tmp_path, f"x,label\n{rows}\nabc,1\n" + rows + "\n")
    assert_refused(ladder("train", name, cwd=tmp_path), "d.csv", "'x'", "'abc'", "32")


def test_empty_dataset(tmp_path):
    name = csv_config(tmp_path, "x,label\n")
    assert_refused(ladder("train", name, cwd=tmp_path), "d.csv")


def test_single_example_class_under_stratification(tmp_path):
    rows = "\n".join(f"{i},{'a' if i % 2 else 'b'}" for i in range(40))
    name = csv_config(tmp_path, f"x,label\n{rows}\n99,lonely\n")
    assert_refused(ladder("train", name, cwd=tmp_path), "lonely", "stratif")


def test_unknown_model_and_dataset_and_negative_lr(tmp_path):
    name = write(tmp_path / "t.yaml", {"data": {"dataset": "minst"}, "model": {"name": "mlpp"},
                                       "train": {"optimizer": {"lr": -0.1}}})
    assert_refused(ladder("train", name, cwd=tmp_path), "did you mean 'mnist'?", "did you mean 'mlp'?",
                   "train.optimizer.lr must be > 0, got -0.1")


def test_set_override_error(tmp_path):
    assert_refused(ladder("run", "--set", "train.optimizer.lr=-1", cwd=tmp_path),
                   "train.optimizer.lr must be > 0, got -1")


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b", ".."])
def test_run_names_cannot_escape_the_runs_folder(tmp_path, name):
    config = write(tmp_path / "t.yaml", {"model": {"name": "logreg"}})
    assert_refused(ladder("train", config, "--name", name, cwd=tmp_path), "run name must be")


def test_corrupted_idx_file(tmp_path):
    source = require_data("mnist")
    data = tmp_path / "data" / "mnist"
    shutil.copytree(source, data)
    target = data / "train-labels-idx1-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    target.chmod(0o644)
    target.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # truncated labels
    name = write(tmp_path / "t.yaml", {"data": {"dataset": "mnist"}, "model": {"name": "logreg"}})
    result = ladder("train", name, cwd=tmp_path, env={"MODELLADDER_DATA": str(tmp_path / "data")})
    assert_refused(result, "train-labels-idx1-ubyte.gz")


def test_evaluate_and_predict_on_missing_run(tmp_path):
    assert_refused(ladder("evaluate", "runs/nothing", cwd=tmp_path), "runs/nothing does not exist")
    assert_refused(ladder("predict", "runs/nothing", "x.csv", cwd=tmp_path), "does not exist")


def test_overwrite_with_bad_data_keeps_the_existing_run(tmp_path):
    rows = "\n".join(f"{i % 7},{'a' if i % 2 else 'b'}" for i in range(40))  # (x = i would be an id column)
    name = csv_config(tmp_path, f"x,label\n{rows}\n")
    assert ladder("train", name, cwd=tmp_path).returncode == 0
    weights = (tmp_path / "runs" / "t" / "model.skops").read_bytes()
    (tmp_path / "d.csv").write_text("x,label\n")  # the data file is now empty
    assert_refused(ladder("train", name, "--overwrite", cwd=tmp_path), "d.csv")
    assert (tmp_path / "runs" / "t" / "model.skops").read_bytes() == weights
