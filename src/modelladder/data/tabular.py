"""CSV and parquet tables: one label column and feature columns, each with a role (data/columns.py).

A CSV file's delimiter and encoding are sniffed unless data.sep / data.encoding force them (data/sniff.py).

Before anything is fitted, each feature column gets a role from its training rows (or from data.columns /
data.drop): id, constant and dropped columns make no feature; numeric columns get median imputation and
standardisation; categorical ones most-frequent imputation and one-hot encoding (a category unseen in
training encodes as all zeros); dates become year, month, day of week and ordinal day; high-cardinality
categoricals their training frequency; free text TF-IDF features. The decisions, with a label-leakage
warning where one column alone predicts the label, are kept in the state ("roles", "warnings",
"id_column"). The state is fitted by hand with pandas rather than with scikit-learn transformers
because it must be plain JSON for preprocess.json, and those only serialise by pickle.

data.sensitive columns (features or dropped) are kept per split, as strings, in the bundle's `sensitive`
tables for the fairness audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow

from modelladder.data.bundle import DataBundle
from modelladder.data.columns import (
    DATE_PARTS,
    DROPPED,
    ROLES,
    category_strings,
    date_parts,
    detect_role,
    fit_frequency,
    fit_text,
    frequency_values,
    is_numeric,
    leakage_warnings,
    text_values,
)
from modelladder.data.sniff import read_csv
from modelladder.data.splits import holdout, train_val
from modelladder.errors import InputError, did_you_mean

if TYPE_CHECKING:
    from modelladder.config import DataConfig


@dataclass
class TableBundle(DataBundle):
    """A table's DataBundle, plus its data.sensitive columns for each split ('train', 'val', 'test')."""

    sensitive: dict[str, pd.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class TableFile:
    """A table and how to name its rows in messages: CSV lines count the header, parquet rows start at 1."""

    path: Path
    row_word: str
    first_row: int

    def where(self, index: int) -> str:
        return f"{self.row_word} {index + self.first_row}"


def load_csv(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """A CSV / TSV table; its delimiter and encoding are data.sep / data.encoding, else sniffed (data/sniff.py)."""
    source = TableFile(_require_path(cfg), "line", 2)
    try:
        # blank lines stay as empty rows so that row numbers match the file's lines
        frame, fmt = read_csv(source.path, sep=cfg.sep, encoding=cfg.encoding, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise InputError(f"data.path {source.path} is empty") from None
    except pd.errors.ParserError as err:
        raise InputError(f"data.path {source.path} is not a readable CSV file: {err}") from None
    frame = frame.dropna(how="all")
    bundle = table_bundle(frame, source, cfg, seed=seed, task=task)
    bundle.preprocess["read"] = fmt.record()  # how the file was read, in preprocess.json
    return bundle


def load_parquet(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    source = TableFile(_require_path(cfg), "row", 1)
    try:
        frame = pd.read_parquet(source.path).reset_index(drop=True)
    except (pyarrow.ArrowException, OSError) as err:
        raise InputError(f"data.path {source.path} is not a readable parquet file: {err}") from None
    return table_bundle(frame, source, cfg, seed=seed, task=task)


def _require_path(cfg: DataConfig) -> Path:
    if cfg.path is None:
        raise InputError(f"data.path is required for dataset '{cfg.dataset}'")
    if not Path(cfg.path).is_file():
        raise InputError(f"data.path {cfg.path} does not exist")
    return Path(cfg.path)


def table_bundle(
    frame: pd.DataFrame, source: TableFile, cfg: DataConfig, *, seed: int, task: str,
    test: np.ndarray | None = None,
) -> TableBundle:
    """The bundle of a table; `test` holds the positions of an official test split (else data.split.test)."""
    if len(frame) == 0:
        raise InputError(f"data.path {source.path} has no data rows")
    label = _label_column(frame, source, cfg)
    _check_listed_columns(frame, source, cfg, label)
    features = [c for c in frame.columns if c != label]
    if not features:
        raise InputError(f"data.path {source.path} has no feature columns besides the label '{label}'")
    numeric = [c for c in features if _is_numeric(frame[c])]
    for column in features:
        if column not in numeric and column not in cfg.drop and column not in cfg.columns:
            _reject_mostly_numeric(frame[column], source, column)
        elif cfg.columns.get(column) == "numeric" and column not in numeric:
            bad = _first_non_number(frame[column])
            if bad is not None:
                raise InputError(f"{source.path}: data.columns makes '{column}' numeric but "
                                 f"{source.where(frame[column].index[bad[0]])} has {bad[1]!r}, which is not a number")
    y, classes = _labels(frame[label], source, label, task)
    stratify = task == "classification" and cfg.split.stratify
    strata = np.asarray(classes, dtype=object)[y] if classes else y
    if test is None:
        train_test, test = holdout(strata, cfg.split.test, seed=seed, stratify=stratify, name="data.split.test")
    else:
        train_test = np.setdiff1d(np.arange(len(frame)), test)
    kept, val, scored = train_val(strata[train_test], cfg, seed=seed, task=task)
    train, val = train_test[kept], train_test[val]
    if scored is not None:  # a cross-validation fold: the scored fold is this run's test split
        test = train_test[scored]
    decisions = decide_roles(frame.iloc[train], features, cfg)
    preprocess = fit_table(frame.iloc[train], label, decisions, normalize=cfg.normalize)
    if not preprocess["feature_names"]:
        raise InputError(f"{source.path}: no feature is left besides the label '{label}': "
                         + "; ".join(f"'{d['column']}' {d['role']} ({d['why']})" for d in decisions)
                         + "; set a column's role in data.columns")
    preprocess["warnings"] = leakage_warnings(
        frame.iloc[train], {d["column"]: d["role"] for d in decisions}, y[train], task, label, seed=seed)
    return TableBundle(
        X_train=transform_table(preprocess, frame.iloc[train]),
        y_train=y[train],
        X_val=transform_table(preprocess, frame.iloc[val]),
        y_val=y[val],
        X_test=transform_table(preprocess, frame.iloc[test]),
        y_test=y[test],
        kind="tabular",
        input_shape=(len(preprocess["feature_names"]),),
        classes=classes,
        feature_names=preprocess["feature_names"],
        preprocess=preprocess,
        source=f"{cfg.dataset}: {source.path}",
        sensitive={name: _groups(frame, cfg.sensitive, rows) for name, rows in
                   (("train", train), ("val", val), ("test", test))},
    )


def _check_listed_columns(frame: pd.DataFrame, source: TableFile, cfg: DataConfig, label: str) -> None:
    """Every data.drop, data.sensitive and data.columns name must be a column of the table other than the label."""
    columns = [c for c in frame.columns if c != label]
    problems = [
        f"data.{key} '{name}' is not a column of {source.path}; the columns are {columns}"
        + (" (it is the label column)" if name == label else did_you_mean(name, columns))
        for key in ("drop", "sensitive", "columns") for name in getattr(cfg, key) if name not in columns
    ]
    problems += [f"data.columns gives '{name}' the role '{cfg.columns[name]}' but data.drop drops it; keep one"
                 for name in cfg.drop if name in cfg.columns and cfg.columns[name] != "drop"]
    if len(set(frame.columns) - {label} - set(cfg.drop)) == 0:
        problems.append(f"data.drop {cfg.drop} leaves no feature column in {source.path}")
    if problems:
        raise InputError(problems)


def _groups(frame: pd.DataFrame, columns: list[str], rows: np.ndarray) -> pd.DataFrame:
    """The `columns` of `rows` as strings (a missing value becomes '(missing)'), indexed 0..n-1."""
    table = frame.iloc[rows][columns].astype(object)
    return table.where(table.notna(), "(missing)").astype(str).reset_index(drop=True)


def _label_column(frame: pd.DataFrame, source: TableFile, cfg: DataConfig) -> str:
    columns = list(frame.columns)
    if cfg.label is None:
        raise InputError(
            f"data.label is required for dataset '{cfg.dataset}': name the label column, one of {columns}"
        )
    if cfg.label not in columns:
        raise InputError(
            f"data.label '{cfg.label}' is not a column of {source.path}; the columns are {columns}"
            + did_you_mean(cfg.label, columns)
        )
    missing = np.flatnonzero(frame[cfg.label].isna().to_numpy())
    if len(missing):
        raise InputError(
            f"{source.path}: the label column '{cfg.label}' is empty on "
            f"{source.where(frame.index[missing[0]])} ({len(missing)} rows in all); every row needs a label"
        )
    return cfg.label


def _labels(column: pd.Series, source: TableFile, label: str, task: str) -> tuple[np.ndarray, list[str]]:
    """(y, classes): class ids and their sorted names for classification, floats for regression."""
    if task == "regression":
        bad = _first_non_number(column)
        if bad is not None:
            raise InputError(
                f"{source.path}: the label column '{label}' must be numeric for task.name 'regression', "
                f"but {source.where(column.index[bad[0]])} has {bad[1]!r}"
            )
        return pd.to_numeric(column).to_numpy(np.float32), []
    if task != "classification":
        raise InputError(f"tables support task.name 'classification' or 'regression', got '{task}'")
    values = column.to_numpy() if _is_numeric(column) else column.astype(str).to_numpy()
    names = np.unique(values)  # numeric labels sort as numbers, others as strings
    if len(names) < 2:
        raise InputError(
            f"{source.path}: the label column '{label}' has a single value {names[0]!r}; "
            "classification needs at least 2 classes"
        )
    return np.searchsorted(names, values).astype(np.int64), [str(n) for n in names]


_is_numeric = is_numeric


def _first_non_number(column: pd.Series) -> tuple[int, object] | None:
    """(position, value) of the first present value that is not a number, or None."""
    parsed = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero((parsed.isna() & column.notna()).to_numpy())
    return (int(bad[0]), column.iloc[bad[0]]) if len(bad) else None


def _reject_mostly_numeric(column: pd.Series, source: TableFile, name: str) -> None:
    """A text column whose values are mostly numbers is a numeric column with a typo in it."""
    present = column.dropna()
    n_numbers = int(pd.to_numeric(present, errors="coerce").notna().sum())
    if n_numbers * 2 <= len(present) or n_numbers == len(present):
        return
    position, value = _first_non_number(column)
    raise InputError(
        f"{source.path}: column '{name}' holds numbers but {source.where(column.index[position])} has "
        f"{value!r}, which is not a number; fix it, or leave the cell empty for a missing value"
    )


def decide_roles(train: pd.DataFrame, features: list[str], cfg: DataConfig) -> list[dict]:
    """[{column, role, why}] for each feature column: data.drop, else data.columns, else detected on `train`."""
    decisions = []
    for column in features:
        if column in cfg.drop:
            role, why = "drop", "data.drop"
        elif column in cfg.columns:
            role, why = cfg.columns[column], "set in data.columns"
        else:
            role, why = detect_role(train[column])
        decisions.append({"column": column, "role": role, "why": why})
    return decisions


def fit_table(frame: pd.DataFrame, label: str, decisions: list[dict], *, normalize: bool) -> dict:
    """JSON-ready state fitted on the training rows `frame`: for each kept column by its role (data/columns.py),
    imputation and scaling of numbers, one-hot categories, date parts, value frequencies, TF-IDF vocabularies."""
    role = {d["column"]: d["role"] for d in decisions}
    by_role = {r: [c for c, cr in role.items() if cr == r] for r in (*ROLES, "constant")}
    state = {
        "kind": "tabular", "label": label, "columns": [c for c, r in role.items() if r not in DROPPED],
        "numeric": by_role["numeric"], "categorical": by_role["categorical"],
        "dates": by_role["date"], "frequency": {}, "text": {},
        "normalize": normalize, "median": {}, "mean": {}, "std": {}, "most_frequent": {}, "categories": {},
        "roles": decisions, "dropped": [c for c, r in role.items() if r in DROPPED],
        "id_column": next(iter(by_role["id"]), None),
    }
    names, sources = [], []

    def number(name: str, source: str, values: pd.Series) -> None:
        values = values.astype(np.float64)
        median = values.median()
        median = 0.0 if np.isnan(median) else float(median)  # a column with no value in the train split
        filled = values.fillna(median)
        std = float(filled.std(ddof=0)) if normalize else 1.0
        state["median"][name] = median
        state["mean"][name] = float(filled.mean()) if normalize else 0.0
        state["std"][name] = std if std > 0 else 1.0
        names.append(name)
        sources.append(source)

    for column in state["numeric"]:
        number(column, column, pd.to_numeric(frame[column]))
    for column in state["categorical"]:
        counts = pd.Series(category_strings(frame[column]), dtype=object).dropna().value_counts()
        # ties in frequency go to the alphabetically first value, so the fit is deterministic
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        state["most_frequent"][column] = ranked[0][0] if ranked else None
        state["categories"][column] = sorted(counts.index)
        names += [f"{column}={v}" for v in state["categories"][column]]
        sources += [column] * len(state["categories"][column])
    for column in state["dates"]:
        parts = date_parts(frame[column])
        for part in DATE_PARTS:
            number(f"{column}.{part}", column, parts[part])
    for column in by_role["frequency"]:
        state["frequency"][column] = fit_frequency(frame[column])
        number(f"{column}.frequency", column, pd.Series(frequency_values(state["frequency"][column], frame[column])))
    for column in by_role["text"]:
        state["text"][column] = fit_text(frame[column])
        names += [f"{column}:{w}" for w in state["text"][column]["vocabulary"]]
        sources += [column] * len(state["text"][column]["vocabulary"])
    for d in decisions:
        made = sources.count(d["column"])
        d["features"] = made
    state["feature_names"], state["sources"] = names, sources
    return state


def transform_table(state: dict, frame: pd.DataFrame) -> np.ndarray:
    """Features (N, F) float32 for a table with the training feature columns; other columns (the label, dropped,
    id and constant columns, anything else) are ignored. Old preprocess states (numeric and one-hot only) work."""
    _check_columns(state, frame)
    blocks = [np.zeros((len(frame), 0))]

    def scaled(name: str, values: np.ndarray) -> None:
        values = np.where(np.isnan(values), state["median"][name], values)
        blocks.append(((values - state["mean"][name]) / state["std"][name])[:, None])

    for column in state["numeric"]:
        bad = _first_non_number(frame[column])
        if bad is not None:
            raise InputError(f"column '{column}' row {bad[0] + 1}: {bad[1]!r} is not a number")
        scaled(column, pd.to_numeric(frame[column]).astype(np.float64).to_numpy())
    for column in state["categorical"]:
        strings = category_strings(frame[column])
        strings[pd.isna(strings)] = state["most_frequent"][column]
        blocks.append(strings[:, None] == np.asarray(state["categories"][column], dtype=object)[None, :])
    for column in state.get("dates", []):
        parts = date_parts(frame[column])
        for part in DATE_PARTS:
            scaled(f"{column}.{part}", parts[part].to_numpy())
    for column, fitted in state.get("frequency", {}).items():
        scaled(f"{column}.frequency", frequency_values(fitted, frame[column]))
    for column, fitted in state.get("text", {}).items():
        blocks.append(text_values(fitted, frame[column]))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _check_columns(state: dict, frame: pd.DataFrame) -> None:
    missing = [c for c in state["columns"] if c not in frame.columns]
    if missing:
        raise InputError(
            f"the input table is missing the feature column{'s' if len(missing) > 1 else ''} {missing}; the "
            f"model needs {state['columns']} (other columns, such as the label '{state['label']}', are ignored)"
        )
