"""`ladder explain` as a user runs it: a summary, explain.json, pictures shown in report.html, and exit
status 2 with a message naming the problem for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from modelladder.cli import main
from tests.explain.runs import key_rows


def test_explain_a_table_writes_json_pictures_and_the_report(key_hist_gb, tmp_path, capsys):
    key_rows().to_csv(tmp_path / "rows.csv", index=False)
    assert main(["explain", str(key_hist_gb), "--input", str(tmp_path / "rows.csv")]) == 0
    out = capsys.readouterr().out
    assert "hist_gb" in out and "x2" in out and "global mean |SHAP|" in out
    record = json.loads((key_hist_gb / "explain.json").read_text())
    assert record["methods"] == ["shap"] and len(record["inputs"]) == 4
    assert record["inputs"][0]["input"] == f"{tmp_path / 'rows.csv'} row 1"
    pictures = sorted(p.name for p in (key_hist_gb / "pictures").glob("explain-*.png"))
    assert pictures == ["explain-00-shap.png", "explain-01-shap.png", "explain-02-shap.png", "explain-03-shap.png",
                        "explain-global-shap.png"]
    report = (key_hist_gb / "report.html").read_text()
    for name in pictures:
        assert f'alt="pictures/{name}"' in report
    # a second explain replaces the first one's pictures
    assert main(["explain", str(key_hist_gb), "--input", str(tmp_path / "rows.csv"), "--max-inputs", "1"]) == 0
    assert "explained the first 1 of 4 inputs" in capsys.readouterr().out
    assert sorted(p.name for p in (key_hist_gb / "pictures").glob("explain-*.png")) == [
        "explain-00-shap.png", "explain-global-shap.png"]


def test_explain_digit_images_and_a_target_class(digits_cnn, tmp_path, capsys):
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(2):
        Image.fromarray((digits.images[i] * 255 / 16).round().astype(np.uint8)).save(tmp_path / f"{i}.png")
    assert main(["explain", str(digits_cnn), "--input", str(tmp_path), "--target", "0", "--method", "ig"]) == 0
    assert "ig" in capsys.readouterr().out
    record = json.loads((digits_cnn / "explain.json").read_text())
    assert [item["target"] for item in record["inputs"]] == ["0", "0"]
    assert record["inputs"][0]["predicted"] == "0"  # digits.images[0] is a 0
    assert (digits_cnn / "pictures" / "explain-01-ig.png").is_file()


def test_explain_text_from_the_command_line(sentiment_tfidf, capsys):
    assert main(["explain", str(sentiment_tfidf), "--text", "the plot was great", "--lime-samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "lime" in out and "great" in out


@pytest.mark.parametrize("args, message", [
    (["--input", "{tmp}/rows.csv", "--method", "ig"],
     "--method 'ig' does not apply to run {run} (hist_gb, a classic rung on tabular data); choose from shap"),
    (["--input", "{tmp}/bad.csv"], "the input table is missing the feature column ['x2']"),
    (["--input", "{tmp}/rows.csv", "--target", "medium"], "--target 'medium' is not a class of run {run}"),
    (["--text", "hello"], "--text needs a run trained on text"),
    ([], "explain needs input files or --text"),
    (["--input", "{tmp}/missing.csv"], "input file {tmp}/missing.csv does not exist"),
])
def test_bad_input_exits_2_naming_the_problem(key_hist_gb, tmp_path, capsys, args, message):
    key_rows().to_csv(tmp_path / "rows.csv", index=False)
    key_rows().drop(columns="x2").to_csv(tmp_path / "bad.csv", index=False)
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["explain", str(key_hist_gb), *args]) == 2
    assert message.format(tmp=tmp_path, run=key_hist_gb) in capsys.readouterr().err


def test_a_file_that_is_not_an_image_and_a_missing_run_exit_2(digits_cnn, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["explain", str(digits_cnn), "--input", str(tmp_path / "notes.png")]) == 2
    assert f"image file {tmp_path / 'notes.png'} is not a readable PNG or JPEG image" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "nowhere"), "--text", "x"]) == 2
    assert f"run folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
