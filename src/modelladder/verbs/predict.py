"""`ladder predict`: a trained run's predictions for rows, images or texts; and how predict and explain read inputs.

Every prediction keeps an `id` to match it back to its input: a table's ID column (when the run detected one,
preprocess.json "id_column"), else the row number from 1 (a table's or a CSV / JSONL text file's data rows, a
.txt file's line number); an image's path within the folder given (or the file as given). Texts also keep
their `text`. With several inputs (files, folders, --text) a `file` column names the one each row came from
(for images: when one of them is a folder).
"""

from __future__ import annotations

from pathlib import Path

from modelladder.errors import InputError
from modelladder.runs import write_csv

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


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
    if texts and kind != "text":
        raise InputError(f"--text needs a run trained on text; {run} was trained on {kind} data")
    found = _expand(inputs)
    several = len(inputs) + bool(texts) > 1
    if kind == "image":
        paths = [p for p, _, _ in found]
        rows = pd.DataFrame({"id": [i for _, i, _ in found], "file": [s for _, _, s in found]})
        X = load_image_files(paths, predictor.preprocess["transform"])
        folders = several and any(p.is_dir() for p in inputs)  # an image file given is its own id
        return predictor, X, [str(p) for p in paths], rows if folders else rows[["id"]]
    if kind == "text":
        return _text_rows(predictor, [p for p, _, _ in found], texts, several)
    return _table_rows(predictor, [p for p, _, _ in found], several)


def _text_rows(predictor, paths: list[Path], texts: list[str], several: bool):
    import pandas as pd

    from modelladder.serve.predictor import read_texts

    parts = [read_texts(p, predictor.cfg.data, predictor.id_column).assign(file=str(p)) for p in paths]
    if texts:
        parts.append(pd.DataFrame({"id": range(1, len(texts) + 1), "text": list(texts), "file": "--text"}))
    rows = pd.concat(parts, ignore_index=True)
    where = [f"--text {i}" if f == "--text" else f"{f} {'line' if f.lower().endswith('.txt') else 'row'} {i}"
             for f, i in zip(rows["file"], rows["id"])]
    X = predictor.features(rows["text"].tolist(), where)
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


def _expand(inputs: list[Path]) -> list[tuple[Path, str, str]]:
    """(path, id, input) for each file: a folder's image files (id: the path within the folder), or a file."""
    found = []
    for p in inputs:
        if p.is_dir():
            images = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                raise InputError(f"input folder {p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += [(q, q.relative_to(p).as_posix(), str(p)) for q in images]
        elif not p.is_file():
            raise InputError(f"input file {p} does not exist")
        else:
            found.append((p, str(p), str(p)))
    return found

