"""CSV and parquet tables: one label column, numeric and categorical feature columns.

A CSV file's delimiter and encoding are sniffed unless data.sep / data.encoding force them (data/sniff.py).

Numeric columns (numeric dtype) get median imputation and standardisation; every other column is
categorical: most-frequent imputation and one-hot encoding (a category unseen in training encodes
as all zeros). The state is fitted by hand with pandas rather than with scikit-learn transformers
because it must be plain JSON for preprocess.json, and those only serialise by pickle.

data.drop leaves columns out of the features; data.sensitive columns (features or dropped) are
kept per split, as strings, in the bundle's `sensitive` tables for the fairness audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow

from modelladder.data.bundle import DataBundle
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
    features = [c for c in frame.columns if c != label and c not in cfg.drop]
    if not features:
        raise InputError(f"data.path {source.path} has no feature columns besides the label '{label}'")
    numeric = [c for c in features if _is_numeric(frame[c])]
    for column in features:
        if column not in numeric:
            _reject_mostly_numeric(frame[column], source, column)
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
    preprocess = fit_table(frame.iloc[train], label, features, numeric, normalize=cfg.normalize)
    preprocess["dropped"] = list(cfg.drop)  # accepted, and ignored, in tables given to predict
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
    """Every data.drop and data.sensitive name must be a column of the table other than the label."""
    columns = [c for c in frame.columns if c != label]
    problems = [
        f"data.{key} '{name}' is not a column of {source.path}; the columns are {columns}"
        + did_you_mean(name, columns)
        for key in ("drop", "sensitive") for name in getattr(cfg, key) if name not in columns
    ]
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


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


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


def fit_table(frame: pd.DataFrame, label: str, features: list, numeric: list, *, normalize: bool) -> dict:
    """JSON-ready imputation, scaling and one-hot state fitted on the training rows `frame`."""
    state = {
        "kind": "tabular", "label": label, "columns": list(features),
        "numeric": list(numeric), "categorical": [c for c in features if c not in numeric],
        "normalize": normalize, "median": {}, "mean": {}, "std": {}, "most_frequent": {}, "categories": {},
    }
    for column in state["numeric"]:
        values = frame[column].astype(np.float64)
        median = values.median()
        median = 0.0 if np.isnan(median) else float(median)  # a column with no value in the train split
        filled = values.fillna(median)
        std = float(filled.std(ddof=0)) if normalize else 1.0
        state["median"][column] = median
        state["mean"][column] = float(filled.mean()) if normalize else 0.0
        state["std"][column] = std if std > 0 else 1.0
    for column in state["categorical"]:
        counts = frame[column].dropna().astype(str).value_counts()
        # ties in frequency go to the alphabetically first value, so the fit is deterministic
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        state["most_frequent"][column] = ranked[0][0] if ranked else None
        state["categories"][column] = sorted(counts.index)
    state["feature_names"] = state["numeric"] + [
        f"{c}={v}" for c in state["categorical"] for v in state["categories"][c]
    ]
    return state


def transform_table(state: dict, frame: pd.DataFrame) -> np.ndarray:
    """Features (N, F) float32 for a table with the training feature columns (the label may be absent)."""
    _check_columns(state, frame)
    blocks = []
    for column in state["numeric"]:
        bad = _first_non_number(frame[column])
        if bad is not None:
            raise InputError(f"column '{column}' row {bad[0] + 1}: {bad[1]!r} is not a number")
        values = pd.to_numeric(frame[column]).astype(np.float64).fillna(state["median"][column]).to_numpy()
        blocks.append(((values - state["mean"][column]) / state["std"][column])[:, None])
    for column in state["categorical"]:
        values = frame[column].astype(object)
        missing = values.isna().to_numpy()
        strings = values.astype(str).to_numpy()
        strings[missing] = state["most_frequent"][column]
        blocks.append(strings[:, None] == np.asarray(state["categories"][column], dtype=object)[None, :])
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _check_columns(state: dict, frame: pd.DataFrame) -> None:
    given = [c for c in frame.columns if c != state["label"] and c not in state.get("dropped", ())]
    missing = [c for c in state["columns"] if c not in given]
    extra = [c for c in given if c not in state["columns"]]
    if missing or extra:
        problems = [f"missing columns {missing}"] if missing else []
        problems += [f"unexpected columns {extra}"] if extra else []
        raise InputError(
            f"the input table has {' and '.join(problems)}; expected the feature columns "
            f"{state['columns']} (the label column '{state['label']}' may be left out)"
        )
