"""`ladder train` -> `ladder evaluate` -> `ladder predict` on tabular rows and on image files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from modelladder.serve.predictor import Predictor
from tests.e2e.helpers import ladder


def make_table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    income = rng.normal(50, 15, n)
    city = rng.choice(["paris", "lima", "oslo"], n)
    score = income / 10 + (city == "oslo") * 3 + rng.normal(0, 0.5, n)
    label = np.where(score > 6.5, "yes", "no")
    age[rng.random(n) < 0.05] = np.nan  # missing values are imputed
    return pd.DataFrame({"age": age, "income": income, "city": city, "label": label})


@pytest.fixture
def table_run(tmp_path):
    make_table(600).to_csv(tmp_path / "people.csv", index=False)
    config = {"name": "people", "data": {"dataset": "csv", "path": "people.csv", "label": "label"},
              "model": {"name": "mlp", "hidden": [32]},
              "train": {"epochs": 15, "batch_size": 32, "optimizer": {"lr": 0.01}}}
    (tmp_path / "people.yaml").write_text(yaml.safe_dump(config))
    result = ladder("train", "people.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path, result


def test_train_csv_reaches_good_accuracy(table_run):
    _, result = table_run
    acc = float(result.stdout.split("accuracy=")[1].split()[0])
    assert acc >= 0.9, result.stdout


def test_predict_csv_matches_python_api(table_run):
    cwd, _ = table_run
    new = make_table(50, seed=1)
    new.drop(columns="label").to_csv(cwd / "new.csv", index=False)
    result = ladder("predict", "runs/people", "new.csv", "--out", "preds.csv", cwd=cwd)
    assert result.returncode == 0, result.stderr
    preds = pd.read_csv(cwd / "preds.csv")
    assert len(preds) == 50 and set(preds["prediction"]) <= {"yes", "no"}
    assert list(preds.columns) == ["id", "prediction", "confidence"] and list(preds["id"]) == list(range(1, 51))
    api = Predictor.load(cwd / "runs" / "people").predict(new.drop(columns="label"))
    assert list(api) == list(preds["prediction"])
    assert (api == new["label"].to_numpy()).mean() >= 0.85


def test_train_again_needs_overwrite_and_resume_continues(table_run):
    cwd, _ = table_run
    weights = (cwd / "runs" / "people" / "model.safetensors").read_bytes()
    again = ladder("train", "people.yaml", cwd=cwd)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    assert (cwd / "runs" / "people" / "model.safetensors").read_bytes() == weights
    resumed = ladder("train", "people.yaml", "--resume", cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert (cwd / "runs" / "people" / "model.safetensors").read_bytes() == weights


def test_predict_image_files(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    config = {"name": "digits-cnn", "data": {"dataset": "digits"}, "model": {"name": "cnn"},
              "train": {"epochs": 10}}
    (tmp_path / "cnn.yaml").write_text(yaml.safe_dump(config))
    assert ladder("train", "cnn.yaml", cwd=tmp_path).returncode == 0
    digits = load_digits()
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(40):  # 8x8 images at levels 0..16, saved as ordinary 8-bit PNGs
        pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}_label{digits.target[i]}.png")
    result = ladder("predict", "runs/digits-cnn", "images", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    from io import StringIO

    preds = pd.read_csv(StringIO(result.stdout))
    assert list(preds.columns) == ["id", "prediction", "confidence"] and preds["id"][0] == "00_label0.png"
    truth = [int(f.split("label")[1][0]) for f in preds["id"]]
    assert (preds["prediction"].to_numpy() == np.array(truth)).mean() >= 0.9
