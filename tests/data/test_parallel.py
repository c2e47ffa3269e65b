"""Dataset `parallel`: pair files (CSV / TSV / JSONL, or two aligned text files) -> seq2seq bundles, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelladder.config import DataConfig, load_run_config
from modelladder.data.load import load_data
from modelladder.errors import InputError

PAIRS = [(f"w{i:02d}", f"W {i % 7} X") for i in range(40)]


def load(**data):
    return load_data(DataConfig(dataset="parallel", **data), seed=0, task="seq2seq")


def pairs(bundle) -> list[tuple[str, str]]:
    return sorted((x, y[0]) for split in ("train", "val", "test") for x, y in zip(*bundle.split(split)))


def write_tsv(path, rows, header="source\ttarget"):
    path.write_text(header + "\n" + "".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
    return path


def test_a_tsv_file_becomes_seeded_splits_of_one_tuples(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    bundle = load(path=path, split={"test": 0.2, "val": 0.25})
    assert bundle.kind == "seq2seq" and bundle.input_shape == () and bundle.classes == []
    assert pairs(bundle) == sorted(PAIRS)
    assert (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test)) == (24, 8, 8)
    assert all(isinstance(y, tuple) and len(y) == 1 for y in bundle.y_train)
    assert bundle.X_train.dtype == object and bundle.y_test.dtype == object
    assert bundle.preprocess["source_units"] == "chars" and bundle.preprocess["target_units"] == "symbols"
    again = load(path=path, split={"test": 0.2, "val": 0.25})
    assert again.X_test.tolist() == bundle.X_test.tolist()
    other = load_data(DataConfig(dataset="parallel", path=path), seed=1, task="seq2seq")
    assert other.X_test.tolist() != load(path=path).X_test.tolist()


def test_every_pair_of_one_source_lies_in_one_split(tmp_path):
    rows = [(s, t) for s, _ in PAIRS for t in ("A B", "A C")]
    bundle = load(path=write_tsv(tmp_path / "pairs.tsv", rows), split={"test": 0.3, "val": 0.3})
    seen = [set(bundle.split(name)[0]) for name in ("train", "val", "test")]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert len(bundle.X_train) == 2 * len(seen[0])


def test_csv_jsonl_and_aligned_files_with_custom_columns_and_word_units(tmp_path):
    rows = [("the cat", "le chat"), ("a  dog ", "un chien"), ("the cats", "les chats"), ("a bird", "un oiseau")]
    csv = tmp_path / "pairs.csv"
    csv.write_text("en,fr\n" + "".join(f'"{s}",{t}\n' for s, t in rows), encoding="utf-8")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"en": s, "fr": t}) + "\n" for s, t in rows), encoding="utf-8")
    (tmp_path / "src.txt").write_text("".join(s + "\n" for s, _ in rows), encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("".join(t + "\n" for _, t in rows), encoding="utf-8")
    expected = sorted((" ".join(s.split()), t) for s, t in rows)
    for data in ({"path": csv, "source_column": "en", "target_column": "fr"},
                 {"path": jsonl, "source_column": "en", "target_column": "fr"},
                 {"path": tmp_path / "src.txt", "target_path": tmp_path / "tgt.txt"}):
        bundle = load(**data, source_units="words", split={"test": 0.25, "val": 0.0})
        assert pairs(bundle) == expected, data
        assert bundle.preprocess["source_units"] == "words"


@pytest.mark.parametrize("case, message", [
    ("ragged", r"src.txt has 3 lines but data.target_path .*tgt.txt has 2: .*src.txt line 3 has no partner"),
    ("empty", r"empty.tsv is empty"),
    ("column", r"data.target_column 'targte' is not a column of .*; its columns are \['source', 'target'\] \(did"),
    ("default column", r"has no column 'source' \(the default of data.source_column\).*did you mean 'sources'"),
    ("empty cell", r"cells.tsv line 3: the target 'target' is empty"),
    ("empty line", r"tgt.txt line 2: the target is empty"),
    ("jsonl key", r"pairs.jsonl line 2 has no column 'target'"),
])
def test_bad_files_get_one_clear_error_naming_file_and_line(tmp_path, case, message):
    (tmp_path / "src.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "tgt.txt").write_text("A\n\nC\n" if case == "empty line" else "A\nB\n", encoding="utf-8")
    data = {
        "ragged": {"path": tmp_path / "src.txt", "target_path": tmp_path / "tgt.txt"},
        "empty line": {"path": tmp_path / "src.txt", "target_path": tmp_path / "tgt.txt"},
        "empty": {"path": write_tsv(tmp_path / "empty.tsv", [], header=" ")},
        "column": {"path": write_tsv(tmp_path / "pairs.tsv", PAIRS), "target_column": "targte"},
        "default column": {"path": write_tsv(tmp_path / "header.tsv", PAIRS, header="sources\ttarget")},
        "empty cell": {"path": write_tsv(tmp_path / "cells.tsv", [("a", "A"), ("b", " ")])},
        "jsonl key": {"path": tmp_path / "pairs.jsonl"},
    }[case]
    (tmp_path / "pairs.jsonl").write_text('{"source": "a", "target": "A"}\n{"source": "b", "tgt": "B"}\n')
    with pytest.raises(InputError, match=message):
        load(**data)


def test_paths_task_and_fields_are_checked(tmp_path):
    with pytest.raises(InputError, match="data.path is required for dataset 'parallel'"):
        load()
    with pytest.raises(InputError, match="data.path .*missing.tsv does not exist"):
        load(path=tmp_path / "missing.tsv")
    with pytest.raises(InputError, match="must be a .csv, .tsv, .jsonl, .ndjson file of pairs"):
        load(path=write_tsv(tmp_path / "pairs.txt", PAIRS))
    with pytest.raises(InputError, match="dataset 'parallel' supports task.name 'seq2seq', got 'classification'"):
        load_data(DataConfig(dataset="parallel", path=tmp_path / "pairs.txt"), seed=0)
    with pytest.raises(InputError, match="data.target_path applies to dataset 'parallel' only"):
        load_run_config(None, ["model.name=logreg", "data.target_path=x.txt"])


def test_limit_caps_the_training_sources(tmp_path):
    bundle = load(path=write_tsv(tmp_path / "pairs.tsv", PAIRS), limit=10, split={"test": 0.25, "val": 0.2})
    assert (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test)) == (8, 2, 10)
    assert np.all([len(y) == 1 for y in bundle.y_val])


def test_a_cross_validation_fold_is_the_test_split(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    folds = [load(path=path, split={"folds": 4, "fold": k, "val": 0.2}) for k in range(4)]
    tested = [set(b.X_test) for b in folds]
    assert all(len(t) == 10 for t in tested) and set().union(*tested) == {s for s, _ in PAIRS}
    assert not set(folds[0].X_train) & tested[0]


def test_predict_and_serve_clean_a_source_as_the_pair_files_were_read(tmp_path):
    """One normalisation (data/seq2seq.py normalize_whitespace) for the pair files and for a raw source at predict /
    serve time (data/load.py transform_raw): inner runs of spaces, tabs and newlines become one space."""
    from modelladder.data.load import transform_raw

    raw = ["  the \t cat\n sat  ", "a  dog"]
    rows = [(s, "X") for s in raw] + [(f"w{i}", "Y") for i in range(18)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in rows), encoding="utf-8")
    bundle = load(path=path, split={"test": 0.1, "val": 0.1})
    read = sorted(s for part in ("train", "val", "test") for s in bundle.split(part)[0] if " " in s)
    assert read == ["a dog", "the cat sat"]
    assert sorted(transform_raw(bundle.preprocess, raw).tolist()) == read
    with pytest.raises(InputError, match=r"texts\[0\] is empty"):
        transform_raw(bundle.preprocess, [" \t\n"], ["texts[0]"])
