"""`ladder predict` keeps an id (and the text) per prediction and reads the inputs `ladder serve` reads."""

from __future__ import annotations

import argparse
import io

import pandas as pd
import pytest

from modelladder.errors import InputError
from modelladder.serve.predictor import Predictor, row_ids
from modelladder.verbs import predict
from tests.e2e.test_train_predict import make_table


def run_predict(capsys, run, *inputs, texts=()) -> pd.DataFrame:
    args = argparse.Namespace(run=run, inputs=list(inputs), texts=list(texts), out=None)
    assert predict.main(args) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False)


def test_table_predictions_keep_the_row_number_and_match_the_predictor(people_dir, tmp_path, capsys):
    new = make_table(12, seed=3)  # the label column is there too: ignored
    new.to_csv(tmp_path / "new.csv", index=False)
    out = run_predict(capsys, people_dir, tmp_path / "new.csv")
    assert list(out.columns) == ["id", "prediction", "confidence"] and list(out["id"]) == list(range(1, 13))
    assert list(out["prediction"]) == list(Predictor.load(people_dir).predict(new))
    new.head(3).to_csv(tmp_path / "more.csv", index=False)
    both = run_predict(capsys, people_dir, tmp_path / "new.csv", tmp_path / "more.csv")
    assert list(both.columns) == ["id", "file", "prediction", "confidence"]
    assert list(both["id"]) == [*range(1, 13), 1, 2, 3] and both["file"].iloc[-1] == str(tmp_path / "more.csv")


def test_a_missing_feature_column_is_named_with_its_file(people_dir, tmp_path):
    make_table(5).drop(columns=["income"]).to_csv(tmp_path / "gap.csv", index=False)
    args = argparse.Namespace(run=people_dir, inputs=[tmp_path / "gap.csv"], texts=[], out=None)
    with pytest.raises(InputError, match=rf"^input file {tmp_path / 'gap.csv'}: .*\['income'\]"):
        predict.main(args)


def test_ids_come_from_the_detected_id_column_when_the_input_has_it(people_dir):
    frame = pd.DataFrame({"customer": ["c7", "c9"], "age": [1, 2]})
    assert row_ids(frame, "customer") == ["c7", "c9"] and row_ids(frame, None) == [1, 2]
    assert row_ids(frame.drop(columns="customer"), "customer") == [1, 2]
    predictor = Predictor.load(people_dir)
    assert predictor.id_column is None
    predictor.preprocess["transform"]["id_column"] = "customer"  # what data/tabular.py saves when it detects one
    assert predictor.id_column == "customer"


def test_text_predictions_keep_the_line_or_row_and_the_text(topics_dir, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("the team scored a goal\n\n  \nthe cpu runs code\n")
    lines = run_predict(capsys, topics_dir, tmp_path / "a.txt")
    assert list(lines.columns) == ["id", "text", "prediction", "confidence"]
    assert list(lines["id"]) == [1, 4] and list(lines["text"]) == ["the team scored a goal", "the cpu runs code"]
    pd.DataFrame({"text": ["a new law", "NA"], "label": ["x", "y"]}).to_csv(tmp_path / "b.csv", index=False)
    mixed = run_predict(capsys, topics_dir, tmp_path / "b.csv", texts=["the match"])
    assert list(mixed.columns) == ["id", "file", "text", "prediction", "confidence"]
    assert list(mixed["text"]) == ["a new law", "NA", "the match"] and list(mixed["id"]) == [1, 2, 1]
    assert list(mixed["file"]) == [str(tmp_path / "b.csv")] * 2 + ["--text"]


def test_a_text_folder_is_one_text_a_file_with_its_path_as_id(topics_dir, tmp_path, capsys):
    (tmp_path / "in" / "b").mkdir(parents=True)
    (tmp_path / "in" / "a.txt").write_text("the team scored a goal\nin the match")
    (tmp_path / "in" / "b" / "c.txt").write_text("the cpu runs code")
    out = run_predict(capsys, topics_dir, tmp_path / "in")
    assert list(out["id"]) == ["a.txt", "b/c.txt"] and out["text"][0] == "the team scored a goal\nin the match"
    (tmp_path / "in" / "b" / "d.txt").write_text(" \n")
    args = argparse.Namespace(run=topics_dir, inputs=[tmp_path / "in"], texts=[], out=None)
    with pytest.raises(InputError, match=rf"^{tmp_path / 'in' / 'b' / 'd.txt'} is empty after cleaning"):
        predict.main(args)


def test_an_empty_text_is_refused_naming_its_row(topics_dir, tmp_path):
    (tmp_path / "c.csv").write_text('text\nfine words\n""\n"<br/> "\n')
    args = argparse.Namespace(run=topics_dir, inputs=[tmp_path / "c.csv"], texts=["  "], out=None)
    with pytest.raises(InputError, match=rf"^{tmp_path / 'c.csv'} row 2, {tmp_path / 'c.csv'} row 3, --text 1 "
                                         "are empty after cleaning"):
        predict.main(args)


def test_extra_columns_are_ignored_and_a_detected_id_column_gives_the_ids(tmp_path, capsys):
    from tests.serve.runs import TRAIN, train

    table = make_table(300)
    table.insert(0, "customer", [f"c{i:04d}" for i in range(300)])  # unique per row: detected as an ID column
    table.to_csv(tmp_path / "people.csv", index=False)
    run = train(tmp_path, "ids", {"data": {"dataset": "csv", "path": str(tmp_path / "people.csv"), "label": "label"},
                                  "model": {"name": "logreg"}, "train": TRAIN})
    assert Predictor.load(run).id_column == "customer"
    new = table.head(5).assign(note="anything")
    new.to_csv(tmp_path / "new.csv", index=False)
    out = run_predict(capsys, run, tmp_path / "new.csv")
    assert list(out["id"]) == [f"c{i:04d}" for i in range(5)]
    assert list(out["prediction"]) == list(Predictor.load(run).predict(new))
