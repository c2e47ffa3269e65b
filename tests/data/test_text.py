"""Text data: cleaning, the real IMDB / SST-2 / rt-polarity splits, user text files, IMDB's archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time

import numpy as np
import pytest

from modelladder.config import DataConfig
from modelladder.data import text_sources
from modelladder.data.load import load_data, transform_raw
from modelladder.data.text import clean_texts
from modelladder.data.text_sources import IMDB_ARCHIVE, IMDB_URL, convert_imdb_archive
from modelladder.errors import InputError
from tests.conftest import require_data
from tests.data.test_download import FakeOpener

DEFAULT = {"html": True, "unicode": "NFKC", "lower": False, "pii": False}


def load(dataset: str, **data) -> object:
    return load_data(DataConfig(dataset=dataset, **data), seed=0)


# ---------------------------------------------------------------- cleaning


def test_cleaning_drops_tags_unescapes_entities_and_collapses_whitespace():
    raw = ["Great film.<br /><br />The cast &amp; crew <i>shine</i>.", "  a\t b \n\n c  ", "1 < 2 </3 &lt;b&gt;"]
    assert clean_texts(raw, DEFAULT).tolist() == [
        "Great film. The cast & crew shine .", "a b c", "1 < 2 </3 <b>",
    ]
    kept = clean_texts(raw[:1], {"html": False, "unicode": None, "lower": True})
    assert kept.tolist() == ["great film.<br /><br />the cast &amp; crew <i>shine</i>."]


def test_unicode_normalisation_forms():
    raw = ["ﬁne Ｆｕｌｌ①", "cafe\u0301"]
    assert clean_texts(raw, DEFAULT).tolist() == ["fine Full1", "café"]
    assert clean_texts(raw, DEFAULT | {"unicode": "NFC"}).tolist() == ["ﬁne Ｆｕｌｌ①", "café"]
    assert clean_texts(raw, DEFAULT | {"unicode": None}).tolist() == ["ﬁne Ｆｕｌｌ①", "cafe\u0301"]
    out = clean_texts(raw, DEFAULT | {"lower": True})
    assert out.dtype == object and out.shape == (2,) and out[0] == "fine full1"


def test_non_strings_are_named_by_row():
    with pytest.raises(InputError) as err:
        clean_texts(["ok", None], DEFAULT)
    assert str(err.value) == "text 1 (counting from 0) is None of type NoneType; every text must be a string"
    with pytest.raises(InputError, match=r"^text 0 \(counting from 0\) is nan of type float"):
        clean_texts(np.array([float("nan")], dtype=object), DEFAULT)
    with pytest.raises(InputError, match="got a single string; wrap it in a list"):
        clean_texts("one review", DEFAULT)


def test_transform_raw_cleans_with_the_saved_settings():
    saved = {"kind": "text", "clean": {"html": True, "unicode": "NFKC", "lower": True}}
    assert transform_raw(saved, ["Loved <br />IT"]).tolist() == ["loved it"]


# ---------------------------------------------------------------- the real datasets


@pytest.fixture(scope="module")
def imdb():
    """One load for the module, timed: 50,000 reviews read and cleaned."""
    start = time.perf_counter()
    bundle = load("imdb", root=require_data("imdb").parent)
    return bundle, time.perf_counter() - start


def test_imdb_official_splits_are_kept_and_cleaned(imdb):
    bundle, seconds = imdb
    assert seconds < 6.0  # about 1.6 s on one core: reading 25,000 reviews stays well under 3 s
    assert (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test)) == (22_500, 2_500, 25_000)
    assert (np.bincount(bundle.y_train) + np.bincount(bundle.y_val)).tolist() == [12_500, 12_500]
    assert np.bincount(bundle.y_test).tolist() == [12_500, 12_500] and bundle.y_test.dtype == np.int64
    assert bundle.kind == "text" and bundle.input_shape == () and bundle.classes == ["neg", "pos"]
    assert bundle.preprocess == {"kind": "text", "clean": DEFAULT}
    assert bundle.X_train.dtype == object and bundle.feature_names == []
    assert not any("<br" in t for split in (bundle.X_train, bundle.X_val, bundle.X_test) for t in split)
    assert bundle.source == f"imdb: {require_data('imdb')}"


def test_shared_files_are_read_in_place_without_caching(imdb, tmp_path):
    assert not (tmp_path / "cache").exists()  # conftest's MODELLADDER_CACHE stays untouched


def test_sst2_train_file_and_labelled_test_file():
    bundle = load("sst2", root=require_data("sst").parent)
    assert len(bundle.X_train) + len(bundle.X_val) == 67_349 and len(bundle.X_val) == 6_735
    assert (np.bincount(bundle.y_train) + np.bincount(bundle.y_val)).tolist() == [29_780, 37_569]
    assert len(bundle.X_test) == 1_821 and np.bincount(bundle.y_test).tolist() == [912, 909]
    assert not any("-lrb-" in t or "-rrb-" in t for t in bundle.X_test)
    assert sum("(" in t for t in bundle.X_test) == 68  # the 68 lines that held -lrb- / -rrb-
    assert bundle.X_train[0] == "hide new secretions from the parental units"  # CRLF lines, no \r left


def test_rt_polarity_holds_out_a_stratified_test_split():
    bundle = load("rt_polarity", root=require_data("rt_polarity").parent)
    sizes = (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test))
    assert sum(sizes) == 10_662 and sizes == (7_676, 853, 2_133)
    assert np.bincount(bundle.y_test).tolist() == [1_067, 1_066]
    assert bundle.X_train.dtype == object and all(isinstance(t, str) and t for t in bundle.X_train)


def test_limit_keeps_a_stratified_subsample_of_training_only():
    bundle = load("rt_polarity", root=require_data("rt_polarity").parent, limit=500)
    assert (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test)) == (450, 50, 2_133)
    assert (np.bincount(bundle.y_train) + np.bincount(bundle.y_val)).tolist() == [250, 250]


# ---------------------------------------------------------------- user files


def write_csv(path, rows, header="text,label"):
    path.write_text(header + "\n" + "".join(f"{t},{y}\n" for t, y in rows), encoding="utf-8")
    return path


def reviews(n: int = 40):
    return [(f"review number {i} is {'good' if i % 2 else 'bad'}", "pos" if i % 2 else "neg") for i in range(n)]


def test_csv_texts_and_labels_mapped_to_sorted_classes(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('body,stars\n"multi\nline <br />review",10\nplain,2\n', encoding="utf-8")
    path.write_text(path.read_text() + "".join(f"text {i},{(2, 10, 9)[i % 3]}\n" for i in range(30)))
    bundle = load("text", path=path, text="body", label="stars", split={"test": 0.2, "val": 0.2})
    assert bundle.classes == ["2", "9", "10"]  # integer labels sort as numbers
    texts = np.concatenate([bundle.X_train, bundle.X_val, bundle.X_test])
    ys = np.concatenate([bundle.y_train, bundle.y_val, bundle.y_test])
    assert len(texts) == 32 and dict(zip(texts, ys))["multi line review"] == 2
    assert bundle.source == f"text: {path}" and bundle.kind == "text"


def test_tsv_jsonl_and_class_folders(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_text("label\ttext\n" + "".join(f"{y}\t{t}, with a comma\n" for t, y in reviews()))
    assert load("text", path=tsv).X_test[0].endswith(", with a comma")
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y, "extra": 1}) + "\n\n" for t, y in reviews()))
    bundle = load("text", path=path)
    assert bundle.classes == ["neg", "pos"] and len(bundle.X_test) == 8 and len(bundle.X_val) == 4
    folder = tmp_path / "folders"
    for i, (text, label) in enumerate(reviews()):
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{i}.txt").write_text(text + "\n", encoding="utf-8")
    (folder / "neg" / "notes.md").write_text("not an example")
    from_folders = load("text", path=folder)
    assert from_folders.classes == ["neg", "pos"]
    assert sorted(np.concatenate([from_folders.X_train, from_folders.X_val, from_folders.X_test])) == \
        sorted(t for t, _ in reviews())


def test_missing_column_names_the_field_the_file_and_its_columns(tmp_path):
    path = write_csv(tmp_path / "r.csv", reviews(), header="review,sentiment")
    with pytest.raises(InputError) as err:
        load("text", path=path, text="reveiw", label="sentiment")
    assert str(err.value) == (f"data.text 'reveiw' is not a column of {path}; its columns are "
                              "['review', 'sentiment'] (did you mean 'review'?)")
    with pytest.raises(InputError) as err:
        load("text", path=path, text="review")
    assert str(err.value) == (f"data.label is not set and {path} has no column 'label' (the default); "
                              "its columns are ['review', 'sentiment']: set data.label")
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n')
    with pytest.raises(InputError) as err:
        load("text", path=jsonl)
    assert str(err.value) == (f"data.text is not set and {jsonl} line 2 has no key 'text' (the default); "
                              "its keys are ['txt', 'label']: set data.text (did you mean 'txt'?)")


def test_invalid_utf8_names_the_file_and_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"text,label\ngood,1\ncaf\xe9 latin-1,0\n")
    with pytest.raises(InputError) as err:  # forced UTF-8 (sniffing reads it as cp1252: the next test)
        load("text", path=path, encoding="utf-8")
    assert str(err.value) == f"{path} line 3 is not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    folder = tmp_path / "folders"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        (folder / label / "1.txt").write_text("fine")
    (folder / "b" / "2.txt").write_bytes(b"line one\nline \xff two")
    with pytest.raises(InputError, match=f"^{folder / 'b' / '2.txt'} line 2 is not valid UTF-8"):
        load("text", path=folder)


@pytest.mark.parametrize("content, message", [
    ("", "data.path {path} is empty"),
    ("text,label\n", "data.path {path} has a header line but no data rows"),
    ("text,label\na,1\nb\n", "{path} line 3 has 1 fields, but the header has 2: ['text', 'label']"),
    ("text,label\na,1\nb, \n", "{path} line 3: the label column 'label' is empty; every row needs a label"),
    ("text,label\na,1\nb,1\n", "{path}: every example has the label '1'; classification needs at least 2 classes"),
])
def test_bad_csv_files_get_one_clear_message(tmp_path, content, message):
    path = tmp_path / "r.csv"
    path.write_text(content)
    with pytest.raises(InputError) as err:
        load("text", path=path)
    assert str(err.value) == message.format(path=path)


def test_bad_paths_and_jsonl_lines(tmp_path):
    with pytest.raises(InputError, match="^data.path is required for dataset 'text': a .csv, .tsv or .jsonl"):
        load("text")
    (tmp_path / "r.parquet").write_text("x")
    with pytest.raises(InputError, match=r"r.parquet must be a .csv, .tsv or .jsonl file, .* got a '.parquet' file$"):
        load("text", path=tmp_path / "r.parquet")
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 0,}\n')
    with pytest.raises(InputError, match=f"^{path} line 2 is not valid JSON: "):
        load("text", path=path)
    path.write_text('{"text": "a", "label": 1}\n{"text": null, "label": 0}\n')
    with pytest.raises(InputError, match=f"^{path} line 2: the text 'text' must be a string, got None$"):
        load("text", path=path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is a folder without sub-folders"):
        load("text", path=tmp_path / "empty")


def test_cv_folds_are_scored_as_the_test_split_and_cover_the_training_data(tmp_path):
    path = write_csv(tmp_path / "r.csv", reviews(50))
    bundles = [load("text", path=path, split={"folds": 4, "fold": k}) for k in range(4)]
    scored = [set(b.X_test) for b in bundles]  # each fold run is scored on its fold
    pool = set(bundles[0].X_train) | set(bundles[0].X_val) | scored[0]
    assert len(pool) == 40  # the 50 reviews less the 20% test split, which no fold run uses
    assert all(not (a & b) for i, a in enumerate(scored) for b in scored[i + 1:])
    assert set().union(*scored) == pool
    for b, test in zip(bundles, scored):  # validation is carved from the other folds, never from the scored one
        train, val = set(b.X_train), set(b.X_val)
        assert val and not (train & val) and not ((train | val) & test) and train | val | test == pool


# ---------------------------------------------------------------- IMDB's canonical archive


def imdb_archive(reviews_by_member: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in reviews_by_member.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def small_release(n_train: int = 10, n_test: int = 4) -> dict[str, bytes]:
    """An aclImdb-shaped tree, its members out of order, with files that are not reviews."""
    members = {"aclImdb/README": b"readme", "aclImdb/train/urls_pos.txt": b"http://x"}
    for split, n in (("train", n_train), ("test", n_test)):
        for i in reversed(range(n)):
            folder, rating = ("pos", 7 + i % 4) if i % 2 else ("neg", 1 + i % 4)
            members[f"aclImdb/{split}/{folder}/{i}_{rating}.txt"] = f"{split} review {i}<br />é".encode()
    members["aclImdb/train/unsup/3_0.txt"] = b"unlabelled"
    return members


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_archive_converts_to_the_shared_layout(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(imdb_archive(small_release()))
    convert_imdb_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.jsonl.gz", "train.jsonl.gz",
                                                                    "unsup.jsonl.gz"]
    train = read_jsonl_gz(tmp_path / "out" / "train.jsonl.gz")
    assert [r["id"] for r in train] == ["0_1", "2_3", "4_1", "6_3", "8_1", "1_8", "3_10", "5_8", "7_10", "9_8"]
    assert train[0] == {"id": "0_1", "rating": 1, "label": 0, "text": "train review 0<br />é"}
    assert list(train[0]) == list(read_jsonl_gz(require_data("imdb") / "test.jsonl.gz")[0])  # same keys, order
    assert [r["label"] for r in read_jsonl_gz(tmp_path / "out" / "test.jsonl.gz")] == [0, 0, 1, 1]
    assert read_jsonl_gz(tmp_path / "out" / "unsup.jsonl.gz") == [
        {"id": "3_0", "rating": 0, "label": None, "text": "unlabelled"}]


def test_archive_errors_name_the_member_or_the_file(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(imdb_archive({"aclImdb/train/pos/0_9.txt": b"ok\nbad \xff"}))
    with pytest.raises(InputError) as err:
        convert_imdb_archive(archive, tmp_path / "out")
    assert str(err.value) == (f"{archive}: aclImdb/train/pos/0_9.txt line 2 is not valid UTF-8 (byte 0xff); "
                              "save the file as UTF-8")
    archive.write_bytes(imdb_archive(small_release())[:300])
    with pytest.raises(InputError, match=f"^IMDB archive {archive} is not a readable .tar.gz file"):
        convert_imdb_archive(archive, tmp_path / "out")


def test_missing_imdb_is_downloaded_checked_and_converted_into_the_cache(tmp_path, monkeypatch):
    content = imdb_archive(small_release())
    opener = FakeOpener({IMDB_URL: content})
    monkeypatch.setattr("modelladder.data.download.urlopen", opener)
    monkeypatch.setattr(text_sources, "IMDB_SHA256", hashlib.sha256(content).hexdigest())
    monkeypatch.setattr(text_sources, "IMDB_COUNTS", {"train": 10, "test": 4})
    data = tmp_path / "data"
    bundle = load("imdb", root=data, split={"val": 0.2})
    assert opener.asked == [IMDB_URL]
    assert sorted(p.name for p in (data / "imdb").iterdir()) == [IMDB_ARCHIVE]  # nothing derived here
    assert bundle.source == f"imdb: {tmp_path / 'cache' / 'imdb'}"
    assert (len(bundle.X_train), len(bundle.X_val), len(bundle.X_test)) == (8, 2, 4)
    assert "train review 0 é" in bundle.X_train.tolist() + bundle.X_val.tolist()
    load("imdb", root=data, split={"val": 0.2})
    assert len(opener.asked) == 1  # converted once, then read from the cache
    monkeypatch.setattr(text_sources, "IMDB_COUNTS", {"train": 11, "test": 4})
    with pytest.raises(InputError, match=r"train.jsonl.gz holds 10 reviews labelled \['0', '1'\], expected 11"):
        load("imdb", root=data)


def test_a_text_csv_is_sniffed_as_a_table_is_semicolons_and_latin1(tmp_path):
    path = tmp_path / "r.csv"
    rows = [f"caf\xe9 {'good' if i % 2 else 'bad'} {i};{'pos' if i % 2 else 'neg'}" for i in range(20)]
    path.write_bytes(("text;label\n" + "\n".join(rows) + "\n").encode("cp1252"))
    bundle = load("text", path=path)
    texts = [*bundle.X_train, *bundle.X_val, *bundle.X_test]
    assert len(texts) == 20 and all(t.startswith("café ") for t in texts) and bundle.classes == ["neg", "pos"]


def test_empty_texts_are_dropped_from_training_and_counted(tmp_path, capsys):
    path = tmp_path / "r.csv"
    rows = [f"{'good' if i % 2 else 'bad'} {i},{i % 2}" for i in range(20)] + ['"   ",0', '"<br/>",1']
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    bundle = load("text", path=path)
    dropped = bundle.preprocess["empty_texts_dropped"]
    assert sum(dropped.values()) == 2 and len(bundle.X_train) + len(bundle.X_val) + len(bundle.X_test) == 20
    assert all(t for t in [*bundle.X_train, *bundle.X_val, *bundle.X_test])
    assert "dropped 2 empty texts" in capsys.readouterr().err
    with pytest.raises(InputError, match=r"^text 1 \(counting from 0\) is empty after cleaning"):
        transform_raw(bundle.preprocess, ["fine", " \t "])
