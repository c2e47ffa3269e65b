"""CSV and parquet tables: imputation, scaling and one-hot fitted on train, identical at predict time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelladder.config import DataConfig
from modelladder.data.load import load_data, transform_raw
from modelladder.errors import InputError


def people(n: int = 120) -> pd.DataFrame:
    """An id to trace rows, numeric and categorical columns with gaps, and a 3-class label."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "id": np.arange(n),
        "age": rng.integers(18, 80, n).astype(float),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n).astype(object),
        "smoker": rng.choice([True, False], n),
        "label": rng.choice(["high", "low", "mid"], n),
    })
    frame.loc[[3, 10, 50], "age"] = np.nan
    frame.loc[[4, 11], "city"] = None
    return frame


def csv_config(tmp_path, frame: pd.DataFrame, **kw) -> DataConfig:
    """The table as a CSV; its id column kept as a numeric feature (data.columns), to trace the rows."""
    frame.to_csv(tmp_path / "people.csv", index=False)
    kw.setdefault("columns", {"id": "numeric"} if "id" in frame.columns else {})
    return DataConfig(dataset="csv", path=tmp_path / "people.csv", label="label", **kw)


def row_ids(data, X: np.ndarray) -> np.ndarray:
    i = data.feature_names.index("id")
    return np.round(X[:, i] * data.preprocess["std"]["id"] + data.preprocess["mean"]["id"]).astype(int)


def test_features_round_trip_through_transform_raw(tmp_path):
    frame = people()
    data = load_data(csv_config(tmp_path, frame), seed=0)
    assert data.kind == "tabular" and data.classes == ["high", "low", "mid"]
    assert data.feature_names == ["id", "age", "city=Lima", "city=Oslo", "city=Pune",
                                  "smoker=False", "smoker=True"]
    assert data.input_shape == (7,) and data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert [len(data.y_train), len(data.y_val), len(data.y_test)] == [86, 10, 24]
    reread = pd.read_csv(tmp_path / "people.csv")
    saved = json.loads(json.dumps(data.preprocess, allow_nan=False))  # as preprocess.json holds it
    for name in ("train", "val", "test"):
        X, y = data.split(name)
        ids = row_ids(data, X)
        assert np.array_equal(transform_raw(saved, reread.iloc[ids]), X)
        assert np.array_equal(transform_raw(saved, reread.iloc[ids].drop(columns="label")), X)
        assert [data.classes[k] for k in y] == reread["label"].iloc[ids].tolist()


def test_the_state_is_fitted_on_the_training_rows_only(tmp_path):
    frame = people()
    data = load_data(csv_config(tmp_path, frame), seed=0)
    train = frame.iloc[row_ids(data, data.X_train)]
    state = data.preprocess
    assert state["median"]["age"] == train["age"].median()
    filled = train["age"].fillna(train["age"].median())
    assert state["mean"]["age"] != pytest.approx(frame["age"].mean())
    assert state["mean"]["age"] == pytest.approx(filled.mean())
    assert state["std"]["age"] == pytest.approx(filled.std(ddof=0))
    assert state["most_frequent"]["city"] == train["city"].value_counts().idxmax()
    assert data.X_train[:, :2].mean(axis=0) == pytest.approx([0, 0], abs=1e-6)


def test_missing_and_unknown_values_at_predict_time(tmp_path):
    data = load_data(csv_config(tmp_path, people()), seed=0)
    state = data.preprocess
    new = pd.DataFrame({"id": [1, 2], "age": [None, 40], "city": [None, "Paris"], "smoker": [True, None]})
    X = transform_raw(state, new)
    assert X[0, 1] == pytest.approx((state["median"]["age"] - state["mean"]["age"]) / state["std"]["age"])
    assert X[0, 2:5].tolist() == [float(state["most_frequent"]["city"] == c) for c in ("Lima", "Oslo", "Pune")]
    assert X[1, 2:5].tolist() == [0, 0, 0]  # an unseen city
    assert X[1, 5:].sum() == 1  # a missing smoker flag takes the most frequent value


def test_wrong_columns_at_predict_time_are_named(tmp_path):
    data = load_data(csv_config(tmp_path, people()), seed=0)
    new = pd.DataFrame({"id": [1], "agee": [3], "city": ["Oslo"], "smoker": [True]})
    with pytest.raises(InputError) as err:
        transform_raw(data.preprocess, new)
    assert str(err.value) == (
        "the input table is missing the feature column ['age']; the model needs ['id', 'age', 'city', 'smoker'] "
        "(other columns, such as the label 'label', are ignored)"
    )
    with pytest.raises(InputError, match=r"missing the feature columns \['age', 'smoker'\]"):
        transform_raw(data.preprocess, new.drop(columns="smoker"))
    with pytest.raises(InputError, match=r"column 'age' row 2: 'old' is not a number"):
        fixed = new.rename(columns={"agee": "age"})
        transform_raw(data.preprocess, pd.concat([fixed, fixed.assign(age="old")]))


def test_garbage_in_a_numeric_column_names_the_line(tmp_path):
    path = tmp_path / "d.csv"
    rows = [f"{i},{i % 2}" for i in range(30)]
    path.write_text("x,label\n" + "\n".join(rows[:10]) + "\n\n" + "\n".join(rows[10:]) + "\n12abc,1\n")
    with pytest.raises(InputError) as err:
        load_data(DataConfig(dataset="csv", path=path, label="label"), seed=0)
    # the header is line 1, the blank line 12 counts too, so the 31st row is on line 33
    assert str(err.value) == (
        f"{path}: column 'x' holds numbers but line 33 has '12abc', which is not a number; "
        "fix it, or leave the cell empty for a missing value"
    )


def test_label_column_errors(tmp_path):
    cfg = csv_config(tmp_path, people())
    with pytest.raises(InputError) as err:
        load_data(cfg.model_copy(update={"label": "lable"}), seed=0)
    assert str(err.value) == (
        f"data.label 'lable' is not a column of {cfg.path}; the columns are "
        "['id', 'age', 'city', 'smoker', 'label'] (did you mean 'label'?)"
    )
    with pytest.raises(InputError, match=r"data.label is required for dataset 'csv': name the label column, one of"):
        load_data(cfg.model_copy(update={"label": None}), seed=0)
    with pytest.raises(InputError, match=r"the label column 'city' is empty on line 6 \(2 rows in all\)"):
        load_data(cfg.model_copy(update={"label": "city"}), seed=0)


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match=r"^data.path is required for dataset 'csv'$"):
        load_data(DataConfig(dataset="csv", label="y"), seed=0)
    with pytest.raises(InputError, match=r"data.path .*nope.csv does not exist"):
        load_data(DataConfig(dataset="csv", path=tmp_path / "nope.csv", label="y"), seed=0)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match=r"data.path .*empty.csv is empty"):
        load_data(DataConfig(dataset="csv", path=tmp_path / "empty.csv", label="y"), seed=0)
    (tmp_path / "header.csv").write_text("x,y\n")
    with pytest.raises(InputError, match=r"data.path .*header.csv has no data rows"):
        load_data(DataConfig(dataset="csv", path=tmp_path / "header.csv", label="y"), seed=0)
    (tmp_path / "bad.parquet").write_text("x,y\n1,2\n")
    with pytest.raises(InputError, match=r"data.path .*bad.parquet is not a readable parquet file"):
        load_data(DataConfig(dataset="parquet", path=tmp_path / "bad.parquet", label="y"), seed=0)


def test_single_example_class_under_stratification(tmp_path):
    frame = pd.concat([people(), people().iloc[:1].assign(label="lonely")], ignore_index=True)
    with pytest.raises(InputError) as err:
        load_data(csv_config(tmp_path, frame), seed=0)
    assert str(err.value) == (
        "class 'lonely' has 1 example: stratified splitting needs at least 2 examples per class; "
        "set data.split.stratify: false, or add examples of that class"
    )
    data = load_data(csv_config(tmp_path, frame, split={"stratify": False}), seed=0)
    assert "lonely" in data.classes


def test_regression_and_numeric_labels(tmp_path):
    frame = people().assign(label=lambda f: f["id"] * 0.5)
    data = load_data(csv_config(tmp_path, frame), seed=0, task="regression")
    assert data.classes == [] and data.y_train.dtype == np.float32
    assert np.array_equal(data.y_test, (row_ids(data, data.X_test) * 0.5).astype(np.float32))
    numbered = load_data(csv_config(tmp_path, people().assign(label=lambda f: f["id"] % 3 * 5)), seed=0)
    assert numbered.classes == ["0", "5", "10"]  # numeric labels keep their numeric order
    with pytest.raises(InputError, match=r"column 'label' must be numeric for task.name 'regression', but line 2 has 'low'"):
        load_data(csv_config(tmp_path, people()), seed=0, task="regression")


def test_parquet_gives_the_same_bundle_as_csv(tmp_path):
    frame = people()
    frame.to_parquet(tmp_path / "people.parquet")
    cfg = DataConfig(dataset="parquet", path=tmp_path / "people.parquet", label="label", columns={"id": "numeric"})
    from_parquet = load_data(cfg, seed=4)
    from_csv = load_data(csv_config(tmp_path, frame), seed=4)
    read = from_csv.preprocess.pop("read")  # how the CSV was read: only CSV files have a delimiter and encoding
    assert read == {"sep": ",", "encoding": "utf-8", "sniffed": ["sep", "encoding"], "decimal_comma": []}
    assert from_parquet.preprocess == from_csv.preprocess
    for name in ("train", "val", "test"):
        assert np.array_equal(from_parquet.split(name)[0], from_csv.split(name)[0])
