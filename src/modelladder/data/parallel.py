"""Dataset `parallel`: any user file of (source, target) pairs, for task seq2seq (a translation or G2P corpus).

Two layouts:
- one table: data.path a .csv / .tsv file with a header line (delimiter and encoding sniffed as for dataset
  'text', data.sep / data.encoding force them) or a .jsonl file of objects, with the columns (keys)
  data.source_column and data.target_column (default 'source' and 'target');
- two aligned text files: data.path holds one source a line and data.target_path the target on the same line.

Whitespace runs become one space, with none at either end (data/seq2seq.py normalize_whitespace, which `ladder
predict` and `ladder serve` apply to a source too); an empty source or target is an error naming the
file and line, never dropped silently. Sources are strings read as characters or as words (data.source_units,
recorded for the rungs' tokenizers); targets are symbols separated by spaces (target_units "symbols").

Splits are seeded and by source: every pair of one source lies in one split (a source given twice, with two
targets, is never both learnt and scored). data.split.test of the sources is held out for test, then
data.split.val of the rest for validation (data.limit caps the training and validation sources; with
data.split.folds, fold data.split.fold is the test split). Every y is a 1-tuple: the pair's target (CONTRACT18).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.data.seq2seq import CORPUS_METRICS, normalize_whitespace
from modelladder.data.sniff import sniff_format
from modelladder.data.splits import holdout, train_val
from modelladder.data.text import as_objects, decode_file, jsonl_objects
from modelladder.errors import InputError, did_you_mean

if TYPE_CHECKING:
    from modelladder.config import DataConfig

TABLES = (".csv", ".tsv", ".jsonl", ".ndjson")


def load_parallel(cfg: DataConfig, *, seed: int, task: str) -> DataBundle:
    """The pairs of data.path (and data.target_path), split by source (module docstring)."""
    if task != "seq2seq":
        raise InputError(f"dataset 'parallel' supports task.name 'seq2seq', got '{task}'")
    path = _existing("path", cfg.path)
    if cfg.target_path is not None:
        sources, targets = read_aligned(path, _existing("target_path", cfg.target_path))
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        sources, targets = read_jsonl(path, source=cfg.source_column, target=cfg.target_column)
    elif path.suffix.lower() in TABLES:
        sources, targets = read_table(path, source=cfg.source_column, target=cfg.target_column, sep=cfg.sep,
                                      encoding=cfg.encoding)
    else:
        raise InputError(f"data.path {path} must be a {', '.join(TABLES)} file of pairs, or a text file of sources "
                         f"with data.target_path the file of its targets, line by line; got a '{path.suffix}' file")
    return pair_bundle(sources, targets, cfg=cfg, seed=seed, source=f"parallel: {path}")


def pair_bundle(sources: list[str], targets: list[str], *, cfg: DataConfig, seed: int, source: str) -> DataBundle:
    """The DataBundle of these (cleaned) pairs: seeded splits by source, y as 1-tuples."""
    X, y = as_objects(sources), as_objects([(t,) for t in targets])
    names, group = np.unique(X.astype(str), return_inverse=True)
    ids = np.arange(len(names))
    if cfg.split.folds is not None:  # the scored fold is this run's test split
        train, val, test = train_val(ids, cfg, seed=seed, task="seq2seq")
    else:
        rest, test = holdout(ids, cfg.split.test, seed=seed, stratify=False, name="data.split.test")
        train, val, _ = train_val(rest, cfg, seed=seed, task="seq2seq")
        train, val = rest[train], rest[val]
    rows = {name: np.flatnonzero(np.isin(group, part)) for name, part in (("train", train), ("val", val),
                                                                          ("test", test))}
    return DataBundle(
        X_train=X[rows["train"]], y_train=y[rows["train"]],
        X_val=X[rows["val"]], y_val=y[rows["val"]],
        X_test=X[rows["test"]], y_test=y[rows["test"]],
        kind="seq2seq",
        input_shape=(),
        preprocess={"kind": "seq2seq", "source_units": cfg.source_units, "target_units": "symbols",
                    "corpus_metrics": list(CORPUS_METRICS),  # task seq2seq scores the test split with BLEU and chrF
                    "split": {"test": cfg.split.test, "val": cfg.split.val, "by": "source"}, "seed": seed,
                    "pairs": {name: len(r) for name, r in rows.items()}},
        source=source,
    )


def _existing(field: str, path: Path | None) -> Path:
    if path is None:
        raise InputError(f"data.{field} is required for dataset 'parallel': a {', '.join(TABLES)} file of pairs, "
                         "or a text file of sources with data.target_path the file of their targets")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data.{field} {path} {'is a folder' if path.is_dir() else 'does not exist'}: "
                         "dataset 'parallel' reads a file")
    return path


def _text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; InputError when it cannot be decoded or holds nothing but whitespace."""
    content = decode_file(path, encoding, name="file")
    if not content.strip():
        raise InputError(f"{path} is empty: dataset 'parallel' needs at least one (source, target) pair")
    return content


def _cell(value, what: str, where: str) -> str:
    """`value` normalised (data/seq2seq.py normalize_whitespace, as predict and serve clean a source); InputError
    naming `where` when it is empty or not a string."""
    if not isinstance(value, str):
        raise InputError(f"{where}: the {what} must be a string, got {value!r}")
    value = normalize_whitespace(value)
    if not value:
        raise InputError(f"{where}: the {what} is empty; every pair needs a source and a target (remove the line)")
    return value


def _column(field: str, name: str | None, default: str, columns: list, where: str) -> int:
    """Position of column `name` (data.<field>, `default` when unset) among `columns`; InputError with did-you-mean."""
    wanted = default if name is None else name
    if wanted in columns:
        return columns.index(wanted)
    hint = did_you_mean(wanted, columns)
    if name is None:
        raise InputError(f"{where} has no column '{default}' (the default of data.{field}); its columns are "
                         f"{columns}: set data.{field}{hint}")
    raise InputError(f"data.{field} '{name}' is not a column of {where}; its columns are {columns}{hint}")


def read_table(path: Path, *, source: str | None, target: str | None, sep: str | None = None,
               encoding: str | None = None) -> tuple[list[str], list[str]]:
    """(sources, targets) from a CSV / TSV file with a header line."""
    fmt = sniff_format(path, sep=sep, encoding=encoding)
    reader = csv.reader(io.StringIO(_text(path, fmt.encoding), newline=""), delimiter=fmt.sep)
    sources, targets = [], []
    try:
        header = next(reader)
        s = _column("source_column", source, "source", header, str(path))
        t = _column("target_column", target, "target", header, str(path))
        for row in reader:
            if not row:  # a blank line
                continue
            where = f"{path} line {reader.line_num}"
            if len(row) != len(header):
                raise InputError(f"{where} has {len(row)} fields, but the header has {len(header)}: {header}")
            sources.append(_cell(row[s], f"source '{header[s]}'", where))
            targets.append(_cell(row[t], f"target '{header[t]}'", where))
    except csv.Error as err:
        raise InputError(f"{path} line {reader.line_num} is not valid CSV: {err}") from None
    if not sources:
        raise InputError(f"{path} has a header line but no pairs")
    return sources, targets


def read_jsonl(path: Path, *, source: str | None, target: str | None) -> tuple[list[str], list[str]]:
    """(sources, targets) from a JSON Lines file: one object a line, the source and target strings."""
    sources, targets = [], []
    for number, record in jsonl_objects(_text(path), path):
        where = f"{path} line {number}"
        keys = list(record)
        s = keys[_column("source_column", source, "source", keys, where)]
        t = keys[_column("target_column", target, "target", keys, where)]
        sources.append(_cell(record[s], f"source '{s}'", where))
        targets.append(_cell(record[t], f"target '{t}'", where))
    return sources, targets


def read_aligned(source_path: Path, target_path: Path) -> tuple[list[str], list[str]]:
    """(sources, targets) from two UTF-8 text files, line i of one the pair of line i of the other."""
    sources, targets = _text(source_path).splitlines(), _text(target_path).splitlines()
    if len(sources) != len(targets):
        longer, shorter = (source_path, target_path) if len(sources) > len(targets) else (target_path, source_path)
        raise InputError(f"data.path {source_path} has {len(sources)} lines but data.target_path {target_path} has "
                         f"{len(targets)}: aligned files need one line each per pair; {longer} line "
                         f"{min(len(sources), len(targets)) + 1} has no partner in {shorter}")
    pairs = [(_cell(s, "source", f"{source_path} line {n}"), _cell(t, "target", f"{target_path} line {n}"))
             for n, (s, t) in enumerate(zip(sources, targets), 1)]
    return [s for s, _ in pairs], [t for _, t in pairs]
