"""`ladder predict`: a trained run's predictions for rows, images or texts; and how predict and explain read inputs.

Every prediction keeps an `id` to match it back to its input: a table's ID column (when the run detected one,
preprocess.json "id_column"), else the row number from 1 (a table's or a CSV / JSONL text file's data rows, a
.txt file's line number); an image's, or a text folder's .txt file's, path within the folder given (or the
file as given). Texts also keep their `text`. With several inputs (files, folders, --text) a `file` column names the one each row came from
(for images: when one of them is a folder).
"""

from __future__ import annotations

from pathlib import Path

from modelladder.errors import InputError
from modelladder.runs import write_csv

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
TEXT_SUFFIXES = {".txt"}  # a text run's folder input: one text a file


def main(args) -> int:
    """`ladder predict RUN [INPUTS...] [--text TEXT ...] [--out CSV]`."""
    predictor, X, _, frame = read_input_rows(args.run, args.inputs, args.texts, "predict")
    scores = predictor.scores(X)
    frame["prediction"] = predictor.decode(scores)
    if predictor.classes:
        frame["confidence"] = scores.max(axis=1)
    if args.out:
        write_csv(args.out, frame, index=False)
        print(f"{len(frame)} predictions written to {args.out}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def read_inputs(run: Path, inputs: list[Path], texts: list[str], verb: str):
    """What `ladder explain` reads: the run's Predictor, the features of the input files and --text strings
    (preprocessed as the training data) and a name for each input (file, row or text)."""
    predictor, X, names, _ = read_input_rows(run, inputs, texts, verb)
    return predictor, X, names


def read_input_rows(run: Path, inputs: list[Path], texts: list[str], verb: str):
    """(predictor, features, names, rows): `rows` a DataFrame with each input's `id` (module docstring),
    `file` when there are several inputs, and `text` for texts."""
    import pandas as pd

    from modelladder.data.load import load_image_files
    from modelladder.serve.predictor import Predictor

    if not inputs and not texts:
        raise InputError(f"{verb} needs input files or --text")
    predictor = Predictor.load(run)
    kind = predictor.preprocess["kind"]
    kind = "text" if kind == "seq2seq" else kind  # sources are strings, read as texts
    if texts and kind != "text":
        raise InputError(f"--text needs a run trained on text; {run} was trained on {kind} data")
    found = _expand(inputs, TEXT_SUFFIXES if kind == "text" else IMAGE_SUFFIXES)
    several = len(inputs) + bool(texts) > 1
    if kind == "image":
        paths = [p for p, _, _ in found]
        rows = pd.DataFrame({"id": [i for _, i, _ in found], "file": [s for _, _, s in found]})
        X = load_image_files(paths, predictor.preprocess["transform"])
        folders = several and any(p.is_dir() for p in inputs)  # an image file given is its own id
        return predictor, X, [str(p) for p in paths], rows if folders else rows[["id"]]
    if kind == "text":
        return _text_rows(predictor, found, texts, several)
    return _table_rows(predictor, [p for p, _, _ in found], several)


def _text_rows(predictor, found: list[tuple[Path, str, str]], texts: list[str], several: bool):
    import pandas as pd

    from modelladder.data.text import decode_utf8
    from modelladder.serve.predictor import read_texts

    parts = []
    for path, name, source in found:
        if source != str(path):  # a folder's .txt file: one text, as in training's class folders
            text = decode_utf8(path.read_bytes(), str(path))
            parts.append(pd.DataFrame({"id": [name], "text": [text], "file": source, "where": str(path)}))
            continue
        frame = read_texts(path, predictor.cfg.data, predictor.id_column)
        if path.suffix.lower() == ".txt":
            where = [f"{path} line {i}" for i in frame["id"]]
        else:
            where = [f"{path} row {i}" for i in range(1, len(frame) + 1)]
        parts.append(frame.assign(file=source, where=where))
    if texts:
        parts.append(pd.DataFrame({"id": range(1, len(texts) + 1), "text": list(texts), "file": "--text",
                                   "where": [f"--text {i}" for i in range(1, len(texts) + 1)]}))
    rows = pd.concat(parts, ignore_index=True)
    X = predictor.features(rows["text"].tolist(), rows["where"].tolist())
    columns = ["id", "file", "text"] if several else ["id", "text"]
    return predictor, X, rows["text"].tolist(), rows[columns]


def _table_rows(predictor, paths: list[Path], several: bool):
    import numpy as np
    import pandas as pd

    from modelladder.serve.predictor import read_table, row_ids

    features, parts = [], []
    for p in paths:
        frame = read_table(p, predictor.cfg.data)
        try:  # each file on its own: a column missing from one file is named, not filled from another
            features.append(predictor.features(frame))
        except InputError as err:
            raise InputError(f"input file {p}: {err}") from None
        parts.append(pd.DataFrame({"id": row_ids(frame, predictor.id_column), "file": str(p)}))
    rows = pd.concat(parts, ignore_index=True)
    names = [f"{f} row {i + 1}" for f, i in zip(rows["file"], rows.groupby("file", sort=False).cumcount())]
    return predictor, np.concatenate(features), names, rows if several else rows[["id"]]


def _expand(inputs: list[Path], suffixes: set[str]) -> list[tuple[Path, str, str]]:
    """(path, id, input) for each file: a folder's files with one of `suffixes` (id: the path within the
    folder), or a file as given."""
    found = []
    for p in inputs:
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes and q.is_file())
            if not files:
                kind = "text" if suffixes == TEXT_SUFFIXES else "image"
                raise InputError(f"input folder {p} holds no {kind} files ({', '.join(sorted(suffixes))})")
            found += [(q, q.relative_to(p).as_posix(), str(p)) for q in files]
        elif not p.is_file():
            raise InputError(f"input file {p} does not exist")
        else:
            found.append((p, str(p), str(p)))
    return found

