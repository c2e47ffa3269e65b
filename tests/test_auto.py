"""`ladder run PATH --label COLUMN` (verbs/auto.py): what is detected in a user's data and which ladder it gets.
Nothing trains here; tests/e2e/test_auto_run.py runs the ladders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from modelladder.errors import InputError
from modelladder.verbs.auto import (
    LINEAR_MODEL,
    REGRESSION_MIN_VALUES,
    auto_ladder,
    detect_task,
    hf_available,
    is_free_text,
    ladder_for,
    ladder_name,
    plan_text,
)
from tests.tiny_data import churn_frame, house_frame, reviews_frame, write_shapes, write_text_folder

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("values, task", [
    (["yes", "no"] * 100, "classification"),  # string labels
    (list(range(5)) * 40, "classification"),  # a few integer classes
    (RNG.normal(size=200), "regression"),  # a continuous target
    (list(range(25)) * 8, "regression"),  # 25 distinct values in 200 rows: > 20 and > 5% of the rows
    (list(range(25)) * 40, "classification"),  # 25 distinct values in 1,000 rows: not > 5%
    (list(range(REGRESSION_MIN_VALUES)) * 2, "classification"),  # exactly the limit: not more
    ([True, False] * 50, "classification"),
    ([f"class {i}" for i in range(100)] * 2, "classification"),  # many string classes stay classes
])
def test_the_task_follows_the_label(values, task):
    found, why = detect_task(pd.Series(values), "y")
    assert found == task
    assert "'y'" in why and "distinct values" in why


@pytest.mark.parametrize("values, text", [
    ([f"a lovely film, the {i}th I saw" for i in range(9)] + ["ok then", None], True),
    (["red", "blue", "green"] * 10, False),  # a category
    ([f"A{i:04d}" for i in range(30)], False),  # an id: distinct, one word
    (["the same long sentence here"] * 30, False),  # few distinct values
    ([1.5, 2.5, 3.5], False),
    ([None, None], False),
])
def test_free_text_is_words_that_rarely_repeat(values, text):
    assert is_free_text(pd.Series(values, dtype=object)) is text


def rungs(ladder) -> list[tuple[str, str]]:
    return [(r.name, r.model["name"]) for r in ladder.rungs]


def test_a_table_with_string_labels_gets_the_classification_ladder(tmp_path):
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    ladder, notes = auto_ladder(tmp_path / "churn.csv", label="churned", runs_dir=tmp_path / "runs")
    assert ladder.name == "churn"
    assert ladder.data == {"dataset": "csv", "path": str(tmp_path / "churn.csv"), "label": "churned"}
    assert ladder.task == {"name": "classification"}
    assert rungs(ladder) == [("linear", LINEAR_MODEL), ("random_forest", "random_forest"), ("hist_gb", "hist_gb"),
                             ("mlp", "mlp")]
    assert "change with --task regression" in notes[0]
    assert not (tmp_path / "runs").exists()  # a CSV is read where it is


def test_a_numeric_target_gets_the_regression_ladder_and_task_forces(tmp_path):
    house_frame().to_parquet(tmp_path / "house.parquet")
    ladder, notes = auto_ladder(tmp_path / "house.parquet", label="price")
    assert ladder.data["dataset"] == "parquet" and ladder.task == {"name": "regression"}
    assert rungs(ladder)[0] == ("ridge", LINEAR_MODEL)
    assert "change with --task classification" in notes[0]
    forced, notes = auto_ladder(tmp_path / "house.parquet", label="rooms", task="regression")
    assert forced.task == {"name": "regression"} and "forced by --task" in notes[0]


def test_a_jsonl_table_is_copied_for_the_parquet_loader(tmp_path):
    churn_frame().to_json(tmp_path / "churn.jsonl", orient="records", lines=True)
    runs = tmp_path / "runs"
    ladder, notes = auto_ladder(tmp_path / "churn.jsonl", label="churned", runs_dir=runs)
    copy = ladder.data["path"]
    assert ladder.data["dataset"] == "parquet" and copy.startswith(str(runs / ".data" / "churn-"))
    assert pd.read_parquet(copy).equals(pd.read_json(tmp_path / "churn.jsonl", lines=True))
    assert any("copied" in n for n in notes)
    again, _ = auto_ladder(tmp_path / "churn.jsonl", label="churned", runs_dir=runs)
    assert again.data["path"] == copy and len(list((runs / ".data").iterdir())) == 1  # named by its content


def test_a_free_text_column_makes_a_text_ladder(tmp_path):
    reviews_frame().to_csv(tmp_path / "reviews.csv", index=False)
    ladder, notes = auto_ladder(tmp_path / "reviews.csv", label="sentiment")
    assert ladder.data == {"dataset": "text", "path": str(tmp_path / "reviews.csv"), "label": "sentiment",
                           "text": "review"}
    expected = [("tfidf_logreg", "tfidf_logreg"), ("bilstm", "rnn"), ("transformer", "transformer")]
    assert rungs(ladder) == expected + ([("minilm", "hf")] if hf_available() else [])
    assert ladder.rungs[1].model["max_length"] == 32  # short reviews: the shortest length the networks read
    assert any("text ladder" in n for n in notes)


def test_text_the_loader_cannot_read_is_copied_as_jsonl_and_text_names_the_column(tmp_path):
    frame = reviews_frame().assign(stars=lambda f: np.where(f["sentiment"] == "pos", 5, 1))
    frame.to_csv(tmp_path / "reviews.csv", sep=";", index=False, encoding="latin-1")
    ladder, _ = auto_ladder(tmp_path / "reviews.csv", label="sentiment", text="review", runs_dir=tmp_path / "runs")
    assert ladder.data["dataset"] == "text" and ladder.data["path"].endswith(".jsonl")
    first = json.loads(Path(ladder.data["path"]).read_text(encoding="utf-8").splitlines()[0])
    assert first["review"] == frame["review"][0] and first["sentiment"] == "pos"
    table, _ = auto_ladder(tmp_path / "reviews.csv", label="sentiment")  # two feature columns: a table
    assert table.data["dataset"] == "csv"


def test_folders_of_images_and_of_texts(tmp_path):
    ladder, notes = auto_ladder(write_shapes(tmp_path / "shapes"), label=None)
    assert ladder.data == {"dataset": "imagefolder", "path": str(tmp_path / "shapes")}
    assert rungs(ladder) == [("linear", LINEAR_MODEL), ("random_forest", "random_forest"), ("mlp", "mlp"),
                             ("cnn", "cnn")]
    assert "2 classes" in notes[0]
    texts, _ = auto_ladder(write_text_folder(tmp_path / "texts"), label=None)
    assert texts.data == {"dataset": "text", "path": str(tmp_path / "texts")} and texts.rungs[0].name == "tfidf_logreg"


def test_large_images_are_resized(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "photos" / cls).mkdir(parents=True)
        Image.new("RGB", (300, 200)).save(tmp_path / "photos" / cls / "1.jpg")
    ladder, notes = auto_ladder(tmp_path / "photos", label=None)
    assert ladder.data["image_size"] == 64 and any("data.image_size" in n for n in notes)


def test_set_overrides_apply_and_the_plan_says_what_runs(tmp_path):
    churn_frame().to_csv(tmp_path / "churn.csv", index=False)
    ladder, notes = auto_ladder(tmp_path / "churn.csv", label="churned",
                                overrides=["train.epochs=2", "data.split.test=0.3", "seed=7"])
    assert ladder.train["epochs"] == 2 and ladder.data["split"] == {"test": 0.3} and ladder.seed == 7
    plan = plan_text(ladder, "runs", notes)
    for said in ["ladder 'churn'", "task: classification", "linear -> random_forest", "hist_gb -> mlp", "test 30% (stratified)", "up to 2 epochs",
                 "seed 7", "runs/churn/"]:
        assert said in plan, (said, plan)


@pytest.mark.parametrize("stem, name", [("churn", "churn"), ("my data (v2)", "my_data_v2_"), (".hidden", "hidden"),
                                        ("a..b", "a_b"), ("ünï", "n_"), ("ü", "ladder")])
def test_the_ladder_is_named_after_the_file(tmp_path, stem, name):
    path = tmp_path / f"{stem}.csv"
    path.write_text("x,y\n1,2\n")
    assert ladder_name(path) == name


@pytest.mark.parametrize("make, kwargs, message", [
    (None, {"label": "y"}, "does not exist; ladder run takes a ladder config (.yaml)"),
    ("churn.csv", {"label": None}, "--label is required for a table: name the column to predict, one of ['tenure'"),
    ("churn.csv", {"label": "churn"}, "--label 'churn' is not a column of"),
    ("churn.csv", {"label": "churned", "text": "txt"}, "--text 'txt' is not a column of"),
    ("churn.xlsx", {"label": "y"}, "got a '.xlsx' file"),
    ("shapes", {"label": "y"}, "leave --label out"),
    ("shapes", {"label": None, "task": "regression"}, "--task must be classification"),
    ("reviews.csv", {"label": "sentiment", "task": "regression"},
     ("text ladders classify, but the task is regression (forced by --task) for the text column 'review': use --task "
      "classification")),
])
def test_bad_input_is_one_clear_error(tmp_path, make, kwargs, message):
    path = tmp_path / (make or "missing.csv")
    if make == "churn.csv":
        churn_frame().to_csv(path, index=False)
    elif make == "churn.xlsx":
        path.write_bytes(b"PK")
    elif make == "shapes":
        write_shapes(path, per_class=2)
    elif make == "reviews.csv":
        reviews_frame().to_csv(path, index=False)
    with pytest.raises(InputError) as err:
        auto_ladder(path, **kwargs)
    assert message in str(err.value), str(err.value)


def test_a_yaml_config_keeps_working_and_refuses_the_data_flags(tmp_path):
    (tmp_path / "l.yaml").write_text("name: mine\nrungs: [logreg]\n")
    args = argparse.Namespace(config=str(tmp_path / "l.yaml"), overrides=[], label=None, task=None, text=None,
                              runs_dir="runs")
    assert ladder_for(args, tmp_path / "unused.yaml", console=None).name == "mine"
    with pytest.raises(InputError, match="--label, --task apply to a data PATH"):
        ladder_for(argparse.Namespace(**{**vars(args), "label": "y", "task": "regression"}), None, console=None)
