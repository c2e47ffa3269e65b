"""Text data: cleaning, the text DataBundle, and user text files (CSV / TSV, JSONL, a folder per class).

Cleaning is stateless (nothing is fitted), so the bundle's preprocess state is just the cleaning
settings, and predict cleans raw texts the same way. Tokenisation belongs to each rung.
A CSV / TSV file's delimiter and encoding are sniffed as a table's are (data/sniff.py; data.sep and
data.encoding force them); JSONL files and class folders are read as strict UTF-8: a byte that is not
UTF-8 is an error naming the file and line.

Empty texts, one rule everywhere: a text that is empty after cleaning (nothing but whitespace, or
only HTML tags) carries nothing a model could read, so a prediction for it would be the model's
prior dressed up as an answer. Training drops such examples and says how many (preprocess.json
"empty_texts_dropped"); `ladder predict`, `ladder serve` and the Predictor refuse them with one
InputError naming each (`refuse_empty`). Blank lines of a .txt file given to `ladder predict` are
not texts (they separate them).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.data.pii import KINDS, redact
from modelladder.data.sniff import sniff_format
from modelladder.data.splits import holdout, train_val
from modelladder.errors import InputError, did_you_mean

if TYPE_CHECKING:
    from modelladder.config import DataConfig

# an opening or closing tag such as <br />, <i>, </i>; "a < b" and "</3" are left alone
TAG = re.compile(r"</?[A-Za-z][^<>]*>")
FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}


def clean_texts(texts, clean: dict, pii_counts: Counter | None = None) -> np.ndarray:
    """Cleaned copies of `texts` as a 1-D object array.

    `clean` holds the data.clean settings: `html` drops tags (a tag becomes a space) and then
    unescapes entities, `unicode` is a unicodedata normal form or None, `lower` lower-cases, `pii`
    replaces personal data by placeholders (data/pii.py), counted into `pii_counts` when given.
    Whitespace runs always collapse to one space, with none at either end.
    """
    if isinstance(texts, (str, bytes)):
        raise InputError("texts must be a list of strings, got a single string; wrap it in a list")
    texts = list(texts)
    out = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(
                f"text {i} (counting from 0) is {text!r} of type {type(text).__name__}; every text must be a string"
            )
        # runs saved before data.clean.pii existed have no "pii" key
        out[i] = _clean(text, clean["html"], clean["unicode"], clean["lower"], clean.get("pii", False), pii_counts)
    return out


def refuse_empty(cleaned, names=None) -> None:
    """InputError naming every text of `cleaned` that is empty; `names[i]` is how to call text i
    (default 'text i (counting from 0)')."""
    empty = [i for i, text in enumerate(cleaned) if not text]
    if not empty:
        return
    called = [names[i] if names is not None else f"text {i} (counting from 0)" for i in empty]
    shown = ", ".join(called[:10]) + (f" and {len(called) - 10} more" if len(called) > 10 else "")
    raise InputError(f"{shown} {'is' if len(called) == 1 else 'are'} empty after cleaning (only whitespace "
                     "or HTML tags): a model cannot read an empty text; leave it out or give it some text")


def _drop_empty(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The texts of X (cleaned) that are not empty, their labels, and how many were dropped."""
    keep = np.fromiter((bool(t) for t in X), dtype=bool, count=len(X))
    return X[keep], y[keep], int(len(X) - keep.sum())


def _clean(text: str, strip_html: bool, form: str | None, lower: bool, pii: bool = False,
           pii_counts: Counter | None = None) -> str:
    if strip_html:
        text = TAG.sub(" ", text)
        if "&" in text:
            text = html.unescape(text)
    if form and not unicodedata.is_normalized(form, text):
        text = unicodedata.normalize(form, text)
    if lower:
        text = text.lower()
    if pii:  # after lower-casing, so that the placeholders stay upper case
        text = redact(text, pii_counts)
    return " ".join(text.split())


def decode_utf8(raw: bytes, name: str) -> str:
    """`raw` decoded as UTF-8 (a leading byte-order mark dropped); InputError naming `name` and the line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"{name} line {line} is not valid UTF-8 (byte {raw[err.start]:#04x}); save the file as UTF-8"
        ) from None


def text_bundle(texts_train, y_train, texts_test, y_test, *,
                classes: list[str], cfg: DataConfig, seed: int, task: str, source: str) -> DataBundle:
    """Split validation off the training texts (data.limit, data.split.val or a CV fold), clean every split."""
    if task != "classification":
        raise InputError(f"text dataset '{cfg.dataset}' supports task.name 'classification', got '{task}'")
    texts_train, y_train = as_objects(texts_train), np.asarray(y_train, np.int64)
    train, val, scored = train_val(y_train, cfg, seed=seed, task=task)
    if scored is not None:  # a cross-validation fold: the scored fold is this run's test split
        texts_test, y_test = texts_train[scored], y_train[scored]
    clean = cfg.clean.model_dump(mode="json")
    pii = {split: Counter() for split in ("train", "val", "test")}
    splits = {"train": (texts_train[train], y_train[train]), "val": (texts_train[val], y_train[val]),
              "test": (texts_test, np.asarray(y_test, np.int64))}
    cleaned, dropped = {}, {}
    for split, (texts, y) in splits.items():  # one rule for empty texts (module docstring)
        X, y, dropped[split] = _drop_empty(clean_texts(texts, clean, pii[split]), y)
        cleaned[split] = X, y
    if not len(cleaned["train"][0]):
        raise InputError(f"{source}: every training text is empty after cleaning")
    bundle = DataBundle(
        X_train=cleaned["train"][0], y_train=cleaned["train"][1],
        X_val=cleaned["val"][0], y_val=cleaned["val"][1],
        X_test=cleaned["test"][0], y_test=cleaned["test"][1],
        kind="text",
        input_shape=(),
        classes=list(classes),
        preprocess={"kind": "text", "clean": clean},
        source=source,
    )
    if any(dropped.values()):
        bundle.preprocess["empty_texts_dropped"] = dropped
        total = sum(dropped.values())
        print(f"{source}: dropped {total} empty text{'s' if total > 1 else ''} (train {dropped['train']}, val "
              f"{dropped['val']}, test {dropped['test']}): nothing to learn from or predict", file=sys.stderr)
    if clean["pii"]:  # what the redaction replaced, per split and kind, for preprocess.json and the report
        bundle.preprocess["pii_counts"] = {split: {kind: counts[kind] for kind in KINDS}
                                           for split, counts in pii.items()}
    return bundle


def holdout_bundle(texts, y, *, classes: list[str], cfg: DataConfig, seed: int, task: str,
                   source: str) -> DataBundle:
    """For data without an official test split: hold out data.split.test first, then text_bundle."""
    texts, y = as_objects(texts), np.asarray(y, np.int64)
    stratify = task == "classification" and cfg.split.stratify
    train, test = holdout(y, cfg.split.test, seed=seed, stratify=stratify, name="data.split.test")
    return text_bundle(texts[train], y[train], texts[test], y[test],
                       classes=classes, cfg=cfg, seed=seed, task=task, source=source)


def as_objects(values) -> np.ndarray:
    """A 1-D object array (np.array would make a fixed-width unicode array, or 2-D from lists)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def encode_labels(labels: list[str], source: Path) -> tuple[np.ndarray, list[str]]:
    """(y, classes): class ids into the sorted label names; integer names sort as numbers."""
    names = sorted(set(labels))
    if all(re.fullmatch(r"-?\d+", n) for n in names):
        names.sort(key=int)
    if len(names) < 2:
        raise InputError(
            f"{source}: every example has the label {names[0]!r}; classification needs at least 2 classes"
        )
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[label] for label in labels], np.int64), names


# ---------------------------------------------------------------- user files: dataset "text"


def load_text(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """Texts and labels from data.path: a CSV / TSV file or a JSON Lines file with the columns
    (keys) data.text and data.label (default 'text' and 'label'), or a folder holding one
    sub-folder of .txt files per class, named after the class. data.split.test of the examples is
    held out as the test split."""
    path = _require_path(cfg)
    if path.is_dir():
        texts, labels = read_class_folders(path)
    elif FORMATS[path.suffix.lower()] is None:
        texts, labels = read_jsonl(path, text=cfg.text, label=cfg.label)
    else:
        texts, labels = read_table(path, text=cfg.text, label=cfg.label, sep=cfg.sep, encoding=cfg.encoding)
    y, classes = encode_labels(labels, path)
    return holdout_bundle(texts, y, classes=classes, cfg=cfg, seed=seed, task=task, source=f"text: {path}")


def _require_path(cfg: DataConfig) -> Path:
    allowed = "a .csv, .tsv or .jsonl file, or a folder with one sub-folder of .txt files per class"
    if cfg.path is None:
        raise InputError(f"data.path is required for dataset '{cfg.dataset}': {allowed}")
    path = Path(cfg.path)
    if not path.exists():
        raise InputError(f"data.path {path} does not exist")
    if path.is_file() and path.suffix.lower() not in FORMATS:
        raise InputError(f"data.path {path} must be {allowed}, got a '{path.suffix}' file")
    return path


def decode_file(path: Path, encoding: str = "utf-8", name: str = "data.path") -> str:
    """The text of the file at `path` (`name`: how messages call it); an InputError naming the byte that
    `encoding` cannot decode (strict UTF-8 reports the line)."""
    if encoding in ("utf-8", "utf-8-sig"):
        return decode_utf8(path.read_bytes(), str(path))
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise InputError(f"{name} {path} cannot be decoded as '{encoding}' at byte {err.start}; set "
                         "data.encoding to the file's encoding (e.g. utf-8, utf-16, cp1252, latin-1)") from None


def _read_nonempty(path: Path, encoding: str = "utf-8") -> str:
    content = decode_file(path, encoding)
    if not content.strip():
        raise InputError(f"data.path {path} is empty")
    return content


def _column(field: str, name: str | None, default: str, columns: list[str], path: Path, where: str = "") -> int:
    """Position of column `name` (data.<field>, `default` when unset) in `columns`."""
    if name is not None and name in columns:
        return columns.index(name)
    if name is None and default in columns:
        return columns.index(default)
    kind = "key" if where else "column"
    hint = did_you_mean(name or default, columns)
    if name is None:
        raise InputError(f"data.{field} is not set and {path}{where} has no {kind} '{default}' "
                         f"(the default); its {kind}s are {columns}: set data.{field}{hint}")
    raise InputError(f"data.{field} '{name}' is not a {kind} of {path}{where}; its {kind}s are {columns}{hint}")


def read_table(path: Path, *, text: str | None, label: str | None, sep: str | None = None,
               encoding: str | None = None) -> tuple[list, list]:
    """(texts, labels) from a CSV / TSV file with a header line; quoted fields may span lines. The delimiter
    and encoding are sniffed as a table's (data/sniff.py) unless `sep` / `encoding` (data.sep / data.encoding)
    force them."""
    fmt = sniff_format(path, sep=sep, encoding=encoding)
    reader = csv.reader(io.StringIO(_read_nonempty(path, fmt.encoding), newline=""), delimiter=fmt.sep)
    texts, labels = [], []
    try:
        header = next(reader)
        t = _column("text", text, "text", header, path)
        lab = _column("label", label, "label", header, path)
        for row in reader:
            if not row:  # a blank line
                continue
            if len(row) != len(header):
                raise InputError(f"{path} line {reader.line_num} has {len(row)} fields, "
                                 f"but the header has {len(header)}: {header}")
            if not row[lab].strip():
                raise InputError(f"{path} line {reader.line_num}: the label column '{header[lab]}' is empty; "
                                 "every row needs a label")
            texts.append(row[t])
            labels.append(row[lab].strip())
    except csv.Error as err:
        raise InputError(f"{path} line {reader.line_num} is not valid CSV: {err}") from None
    if not texts:
        raise InputError(f"data.path {path} has a header line but no data rows")
    return texts, labels


def jsonl_objects(content: str, path: Path):
    """(line number, object) for each non-blank line of a JSON Lines file's text; an InputError naming the file
    and line for a line that is not valid JSON or not an object."""
    for number, line in enumerate(content.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path} line {number} is not valid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise InputError(f"{path} line {number} must be a JSON object, got {type(record).__name__}")
        yield number, record


def read_jsonl(path: Path, *, text: str | None, label: str | None) -> tuple[list, list]:
    """(texts, labels) from a JSON Lines file: one object a line; the text a string, the label a
    string or an integer."""
    texts, labels = [], []
    for number, record in jsonl_objects(_read_nonempty(path), path):
        keys, where = list(record), f" line {number}"
        text_key = keys[_column("text", text, "text", keys, path, where)]
        label_key = keys[_column("label", label, "label", keys, path, where)]
        value, tag = record[text_key], record[label_key]
        if not isinstance(value, str):
            raise InputError(f"{path} line {number}: the text '{text_key}' must be a string, got {value!r}")
        if isinstance(tag, bool) or not isinstance(tag, (str, int)) or not str(tag).strip():
            raise InputError(f"{path} line {number}: the label '{label_key}' must be a non-empty string or "
                             f"an integer, got {tag!r}")
        texts.append(value)
        labels.append(str(tag).strip())
    return texts, labels


def read_class_folders(folder: Path) -> tuple[list, list]:
    """(texts, labels) from `folder`/<class>/*.txt: one example a file, labelled by its folder's name."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise InputError(f"data.path {folder} is a folder without sub-folders; put the .txt files of "
                         "each class into a sub-folder named after the class")
    texts, labels = [], []
    for class_dir in classes:
        files = sorted(class_dir.glob("*.txt"))
        if not files:
            raise InputError(f"class folder {class_dir} holds no .txt files")
        texts += [decode_utf8(f.read_bytes(), str(f)) for f in files]
        labels += [class_dir.name] * len(files)
    return texts, labels
