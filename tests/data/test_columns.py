"""Column roles for tables (data/columns.py): detected on the training rows, overridable, saved, reproduced."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from modelladder.config import DataConfig, validate_run
from modelladder.data.load import load_data, transform_raw
from modelladder.errors import InputError
from modelladder.report.columns import columns_table

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "red", "blue", "green",
         "house", "car", "tree", "river"]


def messy(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """An id, a uuid, a date, free text, a 1000-level category, a constant, a leaking column, and plain ones."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["no", "yes"], n)
    return pd.DataFrame({
        "row": np.arange(1, n + 1),
        "uuid": [f"u{rng.integers(10**12)}-{i}" for i in range(n)],
        "signup": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "review": [" ".join(rng.choice(WORDS, 8)) for _ in range(n)],
        "city": [f"city{k}" for k in rng.integers(0, 1000, n)],
        "source": "web",
        "churn_flag": np.where(y == "yes", "Y", "N"),
        "age": rng.normal(40, 10, n).round(),
        "plan": rng.choice(["basic", "pro", "team"], n),
        "label": y,
    })


def config(tmp_path, frame: pd.DataFrame, **kw) -> DataConfig:
    frame.to_csv(tmp_path / "t.csv", index=False)
    return DataConfig(dataset="csv", path=tmp_path / "t.csv", label="label", **kw)


def roles(data) -> dict[str, str]:
    return {d["column"]: d["role"] for d in data.preprocess["roles"]}


def test_roles_are_detected_and_the_features_stay_few(tmp_path):
    data = load_data(config(tmp_path, messy()), seed=0)
    assert roles(data) == {"row": "id", "uuid": "id", "signup": "date", "review": "text", "city": "frequency",
                           "source": "constant", "churn_flag": "categorical", "age": "numeric",
                           "plan": "categorical"}
    state = data.preprocess
    assert state["id_column"] == "row" and state["dropped"] == ["row", "uuid", "source"]
    assert state["columns"] == ["signup", "review", "city", "churn_flag", "age", "plan"]
    # one-hot of everything would be ~2,000 features; here: 1 + 2 + 3 + 4 date parts + 1 frequency + the words
    n_words = len(state["text"]["review"]["vocabulary"])
    assert 0 < n_words <= 300 and data.input_shape == (11 + n_words,)
    assert [n for n in data.feature_names if n.startswith("signup")] == [
        "signup.year", "signup.month", "signup.dayofweek", "signup.ordinal"]
    assert "city.frequency" in data.feature_names
    assert [d["features"] for d in state["roles"]] == [0, 0, 4, n_words, 1, 0, 2, 1, 3]
    (warning,) = state["warnings"]
    assert "'churn_flag' alone predicts the label 'label'" in warning and "accuracy 1.000" in warning


def test_a_raw_table_gives_the_same_features(tmp_path):
    frame = messy()
    data = load_data(config(tmp_path, frame), seed=0)
    saved = json.loads(json.dumps(data.preprocess, allow_nan=False))  # as preprocess.json holds it
    raw = pd.read_csv(tmp_path / "t.csv")
    # the label, the dropped columns and an unknown one may be there or not
    every = transform_raw(saved, raw.assign(note="extra"))
    some = transform_raw(saved, raw.drop(columns=["label", "uuid", "source", "row"]))
    assert np.array_equal(every, some) and every.shape == (len(frame), data.input_shape[0])
    assert {tuple(r) for r in data.X_test.round(5)} <= {tuple(r) for r in every.round(5)}
    with pytest.raises(InputError, match=r"missing the feature columns \['signup', 'city'\]"):
        transform_raw(saved, raw.drop(columns=["signup", "city"]))
    # unseen values: a new city counts as rare, an unparsable date and an empty text take defaults
    new = raw.head(1).assign(city="atlantis", signup="not a date", review=None)
    assert np.isfinite(transform_raw(saved, new)).all()


def test_data_columns_overrides_and_its_errors(tmp_path):
    cfg = config(tmp_path, messy(200), columns={"city": "categorical", "review": "drop", "row": "numeric"})
    data = load_data(cfg, seed=0)
    assert roles(data)["city"] == "categorical" and roles(data)["review"] == "drop" and roles(data)["row"] == "numeric"
    assert next(d["why"] for d in data.preprocess["roles"] if d["column"] == "city") == "set in data.columns"
    with pytest.raises(InputError, match=r"data.columns 'cty' is not a column .* \(did you mean 'city'\?\)"):
        load_data(config(tmp_path, messy(50), columns={"cty": "text"}), seed=0)
    with pytest.raises(InputError, match=r"data.columns makes 'plan' numeric but line 2 has 'basic'|'pro'|'team'"):
        load_data(config(tmp_path, messy(50), columns={"plan": "numeric"}), seed=0)
    with pytest.raises(InputError, match=r"'numeric', 'categorical', 'id', 'drop', 'date', 'text' or 'frequency'"):
        validate_run({"data": {"dataset": "csv", "columns": {"city": "hashing"}}})
    with pytest.raises(InputError, match=r"data.columns applies to the table datasets csv, parquet, adult"):
        validate_run({"data": {"dataset": "digits", "columns": {"city": "text"}}, "model": {"name": "logreg"}})


def test_data_drop_keeps_working_and_ids_fill_the_gap(tmp_path):
    data = load_data(config(tmp_path, messy(200), drop=["review", "churn_flag"]), seed=0)
    assert roles(data)["review"] == "drop" and roles(data)["churn_flag"] == "drop"
    assert data.preprocess["warnings"] == []
    only_ids = pd.DataFrame({"row": np.arange(40), "label": ["a", "b"] * 20})
    with pytest.raises(InputError, match=r"no feature is left .* 'row' id .*data.columns"):
        load_data(config(tmp_path, only_ids), seed=0)


def test_dates_that_do_not_parse_are_dropped_and_a_regression_leak_is_named(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"when": ["2021-13-45"] * 150 + ["2021-02-30"] * 150, "x": x, "noise": rng.normal(size=300),
                          "label": 3 * x + 1})
    data = load_data(config(tmp_path, frame), seed=0, task="regression")
    assert roles(data) == {"when": "drop", "x": "numeric", "noise": "numeric"}
    (warning,) = data.preprocess["warnings"]
    assert "'x' alone predicts" in warning and "R^2" in warning


def test_old_states_without_roles_still_transform():
    """A preprocess state written before column roles (numeric and one-hot only) transforms as before."""
    state = {"kind": "tabular", "label": "y", "columns": ["a", "c"], "numeric": ["a"], "categorical": ["c"],
             "normalize": True, "median": {"a": 1.0}, "mean": {"a": 1.0}, "std": {"a": 2.0},
             "most_frequent": {"c": "p"}, "categories": {"c": ["p", "q"]}, "dropped": [],
             "feature_names": ["a", "c=p", "c=q"]}
    X = transform_raw(state, pd.DataFrame({"a": [3.0, None], "c": ["q", None], "y": [1, 0], "more": [0, 0]}))
    assert X.tolist() == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    assert columns_table({"kind": "tabular", "transform": state}) is None


def test_the_printed_table(tmp_path):
    data = load_data(config(tmp_path, messy(200)), seed=0)
    console = Console(width=160, record=True)
    console.print(columns_table(data.preprocess))
    out = console.export_text()
    assert "columns: 9 in" in out and "free text" in out and "possible label leakage" in out
    assert "data.columns" in out
    assert columns_table({"kind": "text", "transform": {}}) is None
    wide = {"kind": "tabular", "roles": [{"column": f"x{i}", "role": "numeric", "why": "numbers", "features": 1}
                                         for i in range(40)]}
    assert columns_table(wide).row_count == 1  # 40 plain numeric columns, one row


@pytest.mark.slow  # imports torch and trains (logistic regression): ~8 s on a busy machine
def test_a_trained_run_keeps_its_decisions_and_predicts_raw_rows(tmp_path):
    from modelladder.runs import prepare, read_json
    from modelladder.serve.predictor import Predictor
    from modelladder.verbs.build import load_run_data
    from modelladder.verbs.train import train_run

    frame = messy(300)
    frame.to_csv(tmp_path / "t.csv", index=False)
    cfg = validate_run({"name": "messy", "data": {"dataset": "csv", "path": str(tmp_path / "t.csv"), "label": "label",
                                                  "columns": {"churn_flag": "drop"}},
                        "model": {"name": "logreg"}})
    run_dir = prepare(tmp_path / "runs" / "messy")
    train_run(cfg, run_dir, data=load_run_data(cfg))
    saved = read_json(run_dir / "preprocess.json")
    assert saved["id_column"] == "row" and saved["warnings"] == []
    assert [(d["column"], d["role"]) for d in saved["columns"]][:5] == [
        ("row", "id"), ("uuid", "id"), ("signup", "date"), ("review", "text"), ("city", "frequency")]
    assert columns_table(saved).row_count == 9
    raw = frame.drop(columns=["label", "row", "source"]).assign(unknown=1.5)
    assert set(Predictor.load(run_dir).predict(raw)) <= {"no", "yes"}


def test_date_parts_of_strings_and_datetimes():
    from modelladder.data.columns import date_parts, detect_role

    parts = date_parts(pd.Series(["2024-03-01", "2024-03-01T23:30:00-02:00", "not a date", None]))
    assert parts.iloc[0].tolist() == [2024, 3, 4, 738946]  # a Friday; date(2024, 3, 1).toordinal()
    assert parts.iloc[1].tolist() == [2024, 3, 5, 738947]  # with an offset: in UTC, the next day
    assert parts.iloc[2:].isna().all().all()
    local = pd.Series(pd.date_range("2020-01-01", periods=30, freq="D", tz="Europe/Oslo"))
    assert detect_role(local)[0] == "date" and date_parts(local)["ordinal"].iloc[0] == 737425  # its local day
