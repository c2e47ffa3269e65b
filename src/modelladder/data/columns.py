"""What each feature column of a table is (its role), and the encoders for the roles beyond numeric / one-hot.

Roles, decided on the TRAINING rows before anything trains (data.columns overrides any of them):

- `id`: a value unique to each row (strings, or integers that count up): dropped, and remembered as the
  table's id column so that predictions can carry it.
- `constant`: a single value (or none): dropped.
- `drop`: left out because data.drop or data.columns says so.
- `date`: dates: expanded into year, month, day of week and ordinal day (numbers).
- `text`: free text (long strings, mostly different, with spaces): TF-IDF features over a capped vocabulary.
- `frequency`: a categorical column with too many levels to one-hot: one number, how often the value occurs
  in the training rows.
- `categorical`: one-hot (tabular.py).
- `numeric`: standardised numbers (tabular.py).

Every encoder's state is plain JSON (preprocess.json), never a pickle. The leakage check
(`leakage_warnings`) asks whether one column alone predicts the label almost perfectly.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

ROLES = ("numeric", "categorical", "id", "drop", "date", "text", "frequency")  # what data.columns may set
DROPPED = ("id", "constant", "drop")  # roles that make no feature

# A table needs enough rows before "unique on every row" says "id" rather than "few rows": with 20 rows a
# unique column of ages or prices is still plausible.
ID_MIN_ROWS = 20
# an integer column is an id when it is unique per row and its values nearly fill their range (they count up);
# the training rows are a random ~60-80% of the table, so the span may be up to 1 / that fraction of the rows
ID_MAX_SPAN_PER_ROW = 3.0
ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index)$|^unnamed: ?0$", re.IGNORECASE)
# one-hot stays readable and small up to ~50 levels; beyond that, or when levels are over 5% of the rows
# (most levels then have a handful of examples and their one-hot weights are noise), one frequency number
MAX_ONEHOT_LEVELS = 50
MAX_LEVEL_SHARE = 0.05
MIN_LEVELS_FOR_SHARE = 10  # ... but a 10-level column in a 100-row table stays one-hot
# free text: a median of at least 3 words per value, and at least half the values different
TEXT_MIN_WORDS = 3
TEXT_MIN_UNIQUE_SHARE = 0.5
# TF-IDF vocabulary cap per text column: enough for the frequent words, small next to the other features
TEXT_MAX_FEATURES = 300
# dates: most present values look like a date (2024-03-01, 01/03/2024, with or without a time) ...
DATE_PATTERN = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}.*)?\s*$")
DATE_MIN_SHARE = 0.9
# ... and at least half of them parse, else the column is dropped (said so) rather than one-hot encoded
DATE_MIN_PARSED = 0.5
DATE_PARTS = ("year", "month", "dayofweek", "ordinal")
SAMPLE = 2000  # values looked at when deciding a role (the whole column when shorter)
# leakage: one column alone, cross-validated on the training rows, reaching this accuracy (or R^2) ...
LEAK_SCORE = 0.99
LEAK_MAX_MAJORITY = 0.95  # ... when guessing the most common class is not already that good
LEAK_ROWS = 5000  # training rows the check uses at most (a sample keeps it fast)
LEAK_MIN_ROWS = 30  # with fewer training rows, a perfect column is too often luck


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


# ---------------------------------------------------------------- deciding roles


def detect_role(column: pd.Series) -> tuple[str, str]:
    """(role, why) for one feature column, from its training rows."""
    present = column.dropna()
    n, levels = len(column), present.nunique()
    if levels <= 1:
        return "constant", "one value" if levels else "no value"
    unique_per_row = levels == n and n >= ID_MIN_ROWS
    if pd.api.types.is_datetime64_any_dtype(column):
        return "date", "a date column"
    if is_numeric(column):
        if unique_per_row and _counts_up(present):
            return "id", "unique whole numbers, counting up"
        if levels == n and n >= ID_MIN_ROWS and ID_NAME.search(str(column.name)) and _whole(present):
            return "id", "unique whole numbers, named like an id"
        return "numeric", "numbers"
    strings = _sample(present).astype(str)
    looks_dated = strings.str.match(DATE_PATTERN).mean()
    if looks_dated >= DATE_MIN_SHARE:
        parsed = parse_dates(strings).notna().mean()
        if parsed >= DATE_MIN_PARSED:
            return "date", f"{looks_dated:.0%} look like dates"
        return "drop", f"like dates, but {parsed:.0%} parse"
    words = strings.str.split().str.len().median()
    if words >= TEXT_MIN_WORDS and levels >= TEXT_MIN_UNIQUE_SHARE * len(present):
        return "text", f"free text: ~{words:.0f} words, {levels / len(present):.0%} distinct"
    if unique_per_row:
        return "id", "unique on every row"
    if levels > MAX_ONEHOT_LEVELS or (levels >= MIN_LEVELS_FOR_SHARE and levels > MAX_LEVEL_SHARE * n):
        return "frequency", f"{levels} levels, too many to one-hot"
    return "categorical", f"{levels} levels"


def _sample(values: pd.Series) -> pd.Series:
    return values if len(values) <= SAMPLE else values.sample(SAMPLE, random_state=0)


def _whole(values: pd.Series) -> bool:
    numbers = values.to_numpy(np.float64)
    return bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))


def _counts_up(values: pd.Series) -> bool:
    """Whole numbers that nearly fill their range: 1, 2, 3, ... (shuffled, with a few gaps)."""
    if not _whole(values):
        return False
    span = float(values.max()) - float(values.min()) + 1
    return span <= ID_MAX_SPAN_PER_ROW * len(values)


# ---------------------------------------------------------------- category strings


def category_strings(values: pd.Series) -> np.ndarray:
    """Values as the strings categories are matched on: 3, 3.0 and '3' are all '3'; missing stays None."""
    out = values.astype(object).to_numpy().copy()
    missing = pd.isna(values).to_numpy()
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):  # the common case, without a loop
        out[missing] = None
        return out
    for i, v in enumerate(out):
        if missing[i]:
            out[i] = None
        elif isinstance(v, str):
            continue
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
                and float(v).is_integer():
            out[i] = str(int(v))
        else:
            out[i] = str(v)
    return out


# ---------------------------------------------------------------- dates


def parse_dates(values: pd.Series) -> pd.Series:
    """Naive datetimes for date strings (in UTC when they carry an offset) or datetime values (their local
    time); NaT where a value does not parse."""
    if pd.api.types.is_datetime64_any_dtype(values):  # a time zone's dates keep their local day
        return values.dt.tz_localize(None) if getattr(values.dt, "tz", None) is not None else values
    else:
        strings = values.astype(object).where(values.notna(), None)
        parsed = pd.to_datetime(strings, errors="coerce", format="ISO8601", utc=True)  # fast, vectorised
        rest = parsed.isna() & strings.notna()
        if rest.any():  # other layouts, one value at a time (dateutil)
            parsed[rest] = pd.to_datetime(strings[rest], errors="coerce", format="mixed", utc=True)
    return parsed.dt.tz_localize(None)


def date_parts(values: pd.Series) -> pd.DataFrame:
    """year, month, day of week (Monday 0) and ordinal day (days since 0001-01-01) of each date; NaN if none."""
    parsed = parse_dates(values)
    ordinal = (parsed - pd.Timestamp("1970-01-01")).dt.days + 719163  # = date.toordinal()
    parts = {"year": parsed.dt.year, "month": parsed.dt.month, "dayofweek": parsed.dt.day_of_week,
             "ordinal": ordinal}
    return pd.DataFrame({k: v.astype(np.float64).to_numpy() for k, v in parts.items()})


# ---------------------------------------------------------------- frequency encoding
# Frequency rather than target encoding: it never sees the label, so it cannot leak it into the features
# (target encoding needs out-of-fold fitting to be safe, and one column per class for multiclass); and unlike
# hashing, each value keeps a meaning that can be shown. Values seen once and values never seen both count 1,
# so preprocess.json keeps only the values seen at least twice.


def fit_frequency(values: pd.Series) -> dict:
    strings = pd.Series(category_strings(values), dtype=object)
    counts = strings.dropna().value_counts()
    return {"n": len(values), "missing": int(strings.isna().sum()),
            "counts": {str(k): int(c) for k, c in sorted(counts.items()) if c >= 2}}


def frequency_values(state: dict, values: pd.Series) -> np.ndarray:
    """The share of training rows with each value (a missing value: the share of missing ones)."""
    counts, strings = state["counts"], category_strings(values)
    out = np.array([state["missing"] if s is None else counts.get(s, 1) for s in strings], dtype=np.float64)
    return out / max(state["n"], 1)


# ---------------------------------------------------------------- free text


def _vectorizer(**kw):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(lowercase=True, stop_words="english", sublinear_tf=True, dtype=np.float32, **kw)


def _texts(values: pd.Series) -> list[str]:
    return ["" if v is None else str(v) for v in values.astype(object).where(values.notna(), None)]


def fit_text(values: pd.Series) -> dict:
    """A TF-IDF vocabulary (at most TEXT_MAX_FEATURES words) and its idf weights, as JSON."""
    vectorizer = _vectorizer(max_features=TEXT_MAX_FEATURES)
    try:
        vectorizer.fit(_texts(values))
    except ValueError:  # no word at all (only stop words or symbols)
        return {"vocabulary": [], "idf": []}
    order = sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
    return {"vocabulary": [w for w, _ in order], "idf": [float(x) for x in vectorizer.idf_]}


def text_values(state: dict, values: pd.Series) -> np.ndarray:
    if not state["vocabulary"]:
        return np.zeros((len(values), 0), np.float32)
    vectorizer = _vectorizer(vocabulary=state["vocabulary"])
    vectorizer.idf_ = np.asarray(state["idf"], np.float64)
    return vectorizer.transform(_texts(values)).toarray()


# ---------------------------------------------------------------- leakage


def leakage_warnings(frame: pd.DataFrame, roles: dict[str, str], y: np.ndarray, task: str, label: str,
                     *, seed: int = 0) -> list[str]:
    """A warning for each kept column that alone predicts the label (cross-validated on the training rows)
    with accuracy (classification) or R^2 (regression) >= LEAK_SCORE, when the label is not trivial."""
    y = np.asarray(y)
    if len(y) < LEAK_MIN_ROWS:
        return []
    rows = np.random.default_rng(seed).permutation(len(y))[:LEAK_ROWS]
    frame, y = frame.iloc[rows], y[rows]
    if task == "classification":
        majority = np.unique(y, return_counts=True)[1].max() / len(y)
        if majority > LEAK_MAX_MAJORITY:
            return []
    elif np.std(y) == 0:
        return []
    warnings = []
    for column, role in roles.items():
        if role in DROPPED or role == "text":
            continue
        score = _alone_score(frame[column], role, y, task, seed)
        if score >= LEAK_SCORE:
            what = "accuracy" if task == "classification" else "R^2"
            baseline = f" (the most common class alone: {majority:.3f})" if task == "classification" else ""
            warnings.append(
                f"possible label leakage: column '{column}' alone predicts the label '{label}' with "
                f"cross-validated {what} {score:.3f} on the training rows{baseline}; check that it is not "
                f"computed from the label or known only afterwards (data.drop: [{column}] leaves it out)"
            )
    return warnings


def _alone_score(values: pd.Series, role: str, y: np.ndarray, task: str, seed: int) -> float:
    """Mean 3-fold score of one column: per-value majority / mean for categories, a shallow tree for numbers."""
    from sklearn.model_selection import KFold

    folds = KFold(3, shuffle=True, random_state=seed).split(y)
    if role in ("categorical", "frequency"):
        keys = pd.Series(category_strings(values), dtype=object).fillna("\0missing").to_numpy()
        return float(np.mean([_score_groups(keys[a], y[a], keys[b], y[b], task) for a, b in folds]))
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x = date_parts(values)["ordinal"].to_numpy() if role == "date" else \
        pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    x = np.where(np.isnan(x), np.nanmedian(x) if np.isfinite(x).any() else 0.0, x)[:, None]
    if task == "classification":
        models = [DecisionTreeClassifier(max_depth=4)]
    else:  # a shallow tree, and a straight line (a tree only approximates one)
        from sklearn.linear_model import LinearRegression

        models = [DecisionTreeRegressor(max_depth=6), LinearRegression()]
    folds = list(folds)
    return max(float(np.mean([m.fit(x[a], y[a]).score(x[b], y[b]) for a, b in folds])) for m in models)


def _score_groups(keys_fit, y_fit, keys_test, y_test, task: str) -> float:
    fit = pd.DataFrame({"k": keys_fit, "y": y_fit})
    if task == "classification":
        counts = fit.groupby(["k", "y"]).size().rename("n").reset_index().sort_values(["n", "y"], ascending=[False, True])
        guess = counts.drop_duplicates("k").set_index("k")["y"]  # each value's most common label
        fallback = pd.Series(y_fit).value_counts().index[0]
        pred = pd.Series(keys_test).map(guess).fillna(fallback).to_numpy()
        return float(np.mean(pred == y_test))
    guess = fit.groupby("k")["y"].mean()
    pred = pd.Series(keys_test).map(guess).fillna(float(np.mean(y_fit))).to_numpy(np.float64)
    total = np.sum((y_test - y_test.mean()) ** 2)
    return float(1 - np.sum((y_test - pred) ** 2) / total) if total > 0 else 0.0
