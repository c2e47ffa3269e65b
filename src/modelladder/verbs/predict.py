"""`ladder predict`: a trained run's predictions for rows, images or texts; and how predict and explain read inputs."""

from __future__ import annotations

from pathlib import Path

from modelladder.errors import InputError
from modelladder.runs import write_csv

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def main(args) -> int:
    """`ladder predict RUN [INPUTS...] [--text TEXT ...] [--out CSV]`."""
    import pandas as pd

    predictor, X, names = read_inputs(args.run, args.inputs, args.texts, "predict")
    scores = predictor.scores(X)
    frame = pd.DataFrame({"prediction": predictor.decode(scores)})
    if predictor.classes:
        frame["confidence"] = scores.max(axis=1)
    if predictor.preprocess["kind"] == "image":
        frame.insert(0, "file", names)
    if args.out:
        write_csv(args.out, frame, index=False)
        print(f"{len(frame)} predictions written to {args.out}")
    else:
        print(frame.to_csv(index=False), end="")
    return 0


def read_inputs(run: Path, inputs: list[Path], texts: list[str], verb: str):
    """What `ladder predict` and `ladder explain` read: the run's Predictor, the features of the input files
    and --text strings (preprocessed as the training data) and a name for each input (file, row or text)."""
    import pandas as pd

    from modelladder.data.load import load_image_files
    from modelladder.serve.predictor import Predictor, read_table, read_texts

    if not inputs and not texts:
        raise InputError(f"{verb} needs input files or --text")
    predictor = Predictor.load(run)
    kind = predictor.preprocess["kind"]
    if texts and kind != "text":
        raise InputError(f"--text needs a run trained on text; {run} was trained on {kind} data")
    paths = expand_inputs(inputs)
    if kind == "image":
        return predictor, load_image_files(paths, predictor.preprocess["transform"]), [str(p) for p in paths]
    if kind == "text":
        every = [t for p in paths for t in read_texts(p, predictor.cfg.data.text or "text")] + list(texts)
        return predictor, predictor.features(every), every
    frames = [read_table(p, predictor.cfg.data) for p in paths]
    names = [f"{p} row {i + 1}" for p, frame in zip(paths, frames) for i in range(len(frame))]
    return predictor, predictor.features(pd.concat(frames, ignore_index=True)), names


def expand_inputs(inputs: list[Path]) -> list[Path]:
    paths = []
    for p in inputs:
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"input folder {p} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif not p.is_file():
            raise InputError(f"input file {p} does not exist")
        else:
            paths.append(p)
    return paths
