"""CSV delimiter and encoding: sniffed (';', tab, UTF-8 / UTF-16 BOM, cp1252 / latin-1) unless data.sep /
data.encoding force them; the decision is saved in preprocess.json and `ladder predict` reads the same way."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from modelladder.config import DataConfig, load_run_config
from modelladder.data.load import load_data
from modelladder.data.sniff import read_csv, sniff_format
from modelladder.errors import InputError
from tests.e2e.helpers import ladder


def towns(n: int = 80, seed: int = 0) -> pd.DataFrame:
    """Accented category values (not in ASCII), a decimal column and a 2-class label that follows the town."""
    rng = np.random.default_rng(seed)
    town = rng.choice(["Málaga", "Zürich", "Besançon", "Ørsted"], n)
    size = rng.normal(10, 2, n).round(2)
    label = np.where(np.isin(town, ["Málaga", "Zürich"]), "sí", "no")
    return pd.DataFrame({"town": town, "size": size, "label": label})


def write(tmp_path, frame, name="t.csv", sep=",", encoding="utf-8") -> DataConfig:
    """`frame` in CSV file `name`, with decimal commas when not comma-separated (as a spreadsheet writes it)."""
    frame.to_csv(tmp_path / name, index=False, sep=sep, encoding=encoding, decimal="," if sep != "," else ".")
    return DataConfig(dataset="csv", path=tmp_path / name, label="label")


def features_of(data) -> list[str]:
    return data.feature_names


@pytest.mark.parametrize("name, sep, encoding, read", [
    ("semi.csv", ";", "utf-8", {"sep": ";", "encoding": "utf-8"}),
    ("tabs.tsv", "\t", "utf-8", {"sep": "\t", "encoding": "utf-8"}),
    ("tabs.csv", "\t", "utf-8", {"sep": "\t", "encoding": "utf-8"}),
    ("bom8.csv", ",", "utf-8-sig", {"sep": ",", "encoding": "utf-8-sig"}),
    ("bom16.csv", ";", "utf-16", {"sep": ";", "encoding": "utf-16"}),  # Python writes a BOM, little endian
    ("be16.csv", "|", "utf-16-be", None),  # written below with a big-endian BOM
    ("latin.csv", ";", "latin-1", {"sep": ";", "encoding": "cp1252"}),
    ("plain.csv", ",", "utf-8", {"sep": ",", "encoding": "utf-8"}),
])
def test_sniffed_files_read_the_same_table(tmp_path, name, sep, encoding, read, capsys):
    frame = towns()
    cfg = write(tmp_path, frame, name, sep, encoding)
    if name == "be16.csv":
        cfg.path.write_bytes(b"\xfe\xff" + cfg.path.read_bytes())
        read = {"sep": "|", "encoding": "utf-16"}
    data = load_data(cfg, seed=0)
    assert features_of(data) == ["size", "town=Besançon", "town=Málaga", "town=Zürich", "town=Ørsted"]
    assert data.classes == ["no", "sí"]
    assert {k: data.preprocess["read"][k] for k in ("sep", "encoding")} == read
    assert data.preprocess["read"]["sniffed"] == ["sep", "encoding"]
    assert data.preprocess["read"]["decimal_comma"] == (["size"] if sep != "," else [])
    json.dumps(data.preprocess, allow_nan=False)
    said = capsys.readouterr().err
    if sep == "," and encoding.startswith("utf-8"):
        assert "read as" not in said  # nothing to say about an ordinary file
    else:
        sep_word = "tab" if sep == "\t" else repr(read["sep"])
        assert f"data.path {cfg.path}: read as {sep_word}-separated, {read['encoding']}, decimal commas in " \
               "['size'] (set data.sep / data.encoding to force)" in said
        load_data(cfg, seed=1)
        assert "read as" not in capsys.readouterr().err  # said once


def test_latin1_bytes_cp1252_has_no_character_for_fall_back_to_latin1(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes("a;label\nx\x81;y\nz;w\n".encode("latin-1"))
    assert (sniff_format(path).sep, sniff_format(path).encoding) == (";", "latin-1")


def test_a_late_non_utf8_byte_is_not_missed(tmp_path):
    path = tmp_path / "late.csv"
    rows = "".join(f"{i},Oslo\n" for i in range(200_000)) + "9,Besançon\n"
    path.write_bytes(("n,town\n" + rows).encode("cp1252"))
    assert sniff_format(path).encoding == "cp1252"


def test_one_column_and_decimal_commas(tmp_path):
    one = tmp_path / "one.csv"
    one.write_text("label\nx\ny\n")
    assert sniff_format(one).sep == ","
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;label\n1,5;2,25;x\n3,5;4,75;y\n")
    assert sniff_format(semi).sep == ";"


def test_decimal_commas_only_in_columns_of_such_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("price;code;mixed;label\n1,5;A1;2,5;x\n-0,25;B2;about 2;y\n;C3;1;x\n3;D4;4;y\n")
    frame, fmt = read_csv(path)
    assert fmt.decimal_comma == ("price",)
    assert frame["price"].tolist()[:2] == [1.5, -0.25] and np.isnan(frame["price"][2]) and frame["price"][3] == 3
    assert frame["mixed"].tolist() == ["2,5", "about 2", "1", "4"]
    commas = tmp_path / "c.csv"
    commas.write_text('a,label\n"1,5",x\n"2,5",y\n')
    assert read_csv(commas)[0]["a"].tolist() == ["1,5", "2,5"]  # a comma-separated file keeps them as text


def test_forced_sep_and_encoding_are_used_and_recorded(tmp_path, capsys):
    frame = towns()
    cfg = write(tmp_path, frame, "forced.csv", ";", "cp1252")
    data = load_data(cfg.model_copy(update={"sep": ";", "encoding": "cp1252"}), seed=0)
    assert data.preprocess["read"] == {"sep": ";", "encoding": "cp1252", "sniffed": [], "decimal_comma": ["size"]}
    assert "read as" not in capsys.readouterr().err
    # a wrong forced delimiter reads one column: the label is then not a column
    with pytest.raises(InputError, match="data.label 'label' is not a column"):
        load_data(cfg.model_copy(update={"sep": ",", "encoding": "cp1252"}), seed=0)


def test_forced_encoding_that_does_not_decode_is_one_input_error(tmp_path):
    cfg = write(tmp_path, towns(), "latin.csv", ";", "latin-1")
    with pytest.raises(InputError) as err:
        load_data(cfg.model_copy(update={"encoding": "utf-8"}), seed=0)
    assert len(err.value.problems) == 1
    message = err.value.problems[0]
    assert f"data.path {cfg.path} cannot be decoded as data.encoding 'utf-8'" in message
    assert "set data.encoding" in message


@pytest.mark.parametrize("override, expected", [
    ("data.encoding=klingon", "data.encoding: must be a text encoding Python knows"),
    ("data.encoding=base64", "data.encoding: must be a text encoding, but 'base64' is a bytes-to-bytes codec"),
    ("data.sep=;;", "data.sep: must be one character such as"),
    ("data.sep=x", "data.sep: must be one character such as"),
])
def test_bad_sep_or_encoding_is_a_clear_config_error(override, expected):
    with pytest.raises(InputError) as err:
        load_run_config(None, ["data.dataset=csv", "model.name=logreg", override])
    assert [p for p in err.value.problems if expected in p], err.value.problems


def test_sep_spellings_and_csv_only():
    for spelling in ("\\t", "tab", "\t"):
        assert load_run_config(None, ["data.dataset=csv", "model.name=logreg", f"data.sep={spelling}"]).data.sep == "\t"
    cfg = load_run_config(None, ["data.dataset=csv", "model.name=logreg", "data.encoding=Latin-1"])
    assert cfg.data.encoding == "Latin-1"
    with pytest.raises(InputError, match="data.sep applies to datasets 'csv', 'text' and 'parallel' only"):
        load_run_config(None, ["model.name=logreg", "data.sep=;"])


def test_train_and_predict_a_semicolon_latin1_csv(tmp_path):
    towns(120).to_csv(tmp_path / "towns.csv", index=False, sep=";", encoding="latin-1", decimal=",")
    config = {"name": "towns", "data": {"dataset": "csv", "path": "towns.csv", "label": "label"},
              "model": {"name": "logreg"}}
    (tmp_path / "towns.yaml").write_text(yaml.safe_dump(config))
    result = ladder("train", "towns.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "towns.csv: read as ';'-separated, cp1252, decimal commas in ['size']" in result.stderr
    preprocess = json.loads((tmp_path / "runs" / "towns" / "preprocess.json").read_text())
    assert preprocess["transform"]["read"] == {"sep": ";", "encoding": "cp1252", "sniffed": ["sep", "encoding"],
                                               "decimal_comma": ["size"]}
    assert preprocess["transform"]["numeric"] == ["size"]
    new = towns(30, seed=1)
    new.drop(columns="label").to_csv(tmp_path / "new.csv", index=False, sep=";", encoding="cp1252", decimal=",")
    predicted = ladder("predict", "runs/towns", "new.csv", "--out", "preds.csv", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert "input file new.csv: read as ';'-separated, cp1252" in predicted.stderr
    preds = pd.read_csv(tmp_path / "preds.csv")
    assert len(preds) == 30 and (preds["prediction"].to_numpy() == new["label"].to_numpy()).mean() >= 0.9
