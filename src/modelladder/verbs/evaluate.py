"""`ladder evaluate`: a trained run's metrics, their 95% intervals and latency on one split, with its predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError
from modelladder.evaluate.calibration import evaluation_fields
from modelladder.evaluate.cost import inference_latency
from modelladder.evaluate.intervals import metric_intervals
from modelladder.runs import write_csv, write_json
from modelladder.serve.predictor import Predictor
from modelladder.verbs.build import load_run_data, make_task


def evaluate_run(run_dir: Path, *, split: str = "test", data: DataBundle | None = None,
                 predictor: Predictor | None = None) -> dict:
    """Metrics, their 95% intervals (evaluate/intervals.py, seeded by the run's seed) and latency on one split,
    saved as eval_<split>.json and predictions_<split>.csv. A task that scores the model itself (generative
    ones) gets its own metrics and no intervals."""
    predictor = predictor or Predictor.load(run_dir)
    cfg = predictor.cfg
    data = data if data is not None else load_run_data(cfg)
    X, y = data.split(split)
    if cfg.eval.limit is not None:  # the same sample for every rung of a ladder: they share seed and data
        from modelladder.data.splits import subsample

        keep = subsample(y, cfg.eval.limit, seed=cfg.seed, stratify=bool(data.classes), name="eval.limit")
        X, y = X[keep], y[keep]
    if len(y) == 0:
        raise InputError(f"split '{split}' of run {run_dir} is empty (data.split.val is 0?)")
    task = make_task(cfg, data)
    if task.evaluate_model is not None:  # generative tasks score the model itself and draw pictures/
        metrics, details = task.evaluate_model(predictor.model, X, y, run_dir)
        predictions = details.pop("predictions", None)  # a DataFrame, for a task that predicts (seq2seq)
        record = {"split": split, "n": len(y), "metrics": metrics, **details}
        write_json(run_dir / f"eval_{split}.json", record)
        if predictions is not None:
            write_csv(run_dir / f"predictions_{split}.csv", predictions, index_label="row")
        return record
    scores = predictor.scores(X)
    metrics = task.metrics(y, scores)
    intervals, methods = metric_intervals(y, scores, metrics, classification=bool(data.classes), seed=cfg.seed,
                                          metric_fn=task.metrics)
    record = {"split": split, "n": len(y), "metrics": metrics, "intervals": intervals,
              "interval_method": methods, "latency": inference_latency(predictor.scores, X, model=predictor.model)}
    if data.classes:
        from modelladder.evaluate.metrics import confusion

        record["confusion"] = confusion(y, task.decode(scores), len(data.classes))
        record |= evaluation_fields(predictor, data, split, X, y, scores)  # reliability, before/after, conformal
    write_json(run_dir / f"eval_{split}.json", record)
    _write_predictions(run_dir / f"predictions_{split}.csv", y, scores, data.classes)
    return record


def _write_predictions(path: Path, y: np.ndarray, scores: np.ndarray, classes: list[str]) -> None:
    import pandas as pd

    if classes:
        frame = pd.DataFrame(scores, columns=[f"proba_{c}" for c in classes])
        frame.insert(0, "predicted", np.asarray(classes, dtype=object)[scores.argmax(axis=1)])
        frame.insert(0, "true", np.asarray(classes, dtype=object)[y])
    else:
        frame = pd.DataFrame({"true": y, "predicted": scores})
    write_csv(path, frame, index_label="row")


def read_prediction_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(truths, scores) back from a predictions_<split>.csv: class indices and the probabilities (N, C) in
    the proba_<class> columns' order for a classifier, else true values and predictions."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"true": str, "predicted": str}, keep_default_na=False)  # a class named "NA"
    proba = [c for c in frame.columns if c.startswith("proba_")]
    if not proba:
        return frame["true"].astype(np.float64).to_numpy(), frame["predicted"].astype(np.float64).to_numpy()
    position = {c.removeprefix("proba_"): i for i, c in enumerate(proba)}
    return frame["true"].map(position).to_numpy(np.int64), frame[proba].to_numpy(np.float64)


def read_sequence_scores(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(each row's "source | references", its per-source scores: word_error, phoneme_errors, phoneme_count) from a
    seq2seq run's predictions_<split>.csv (tasks/seq2seq.py); None for any other predictions table."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={"source": str, "true": str, "predicted": str}, keep_default_na=False)
    if "word_error" not in frame.columns:
        return None
    keys = (frame["source"] + " -> " + frame["true"]).to_numpy()
    return keys, {c: frame[c].to_numpy(np.int64) for c in ("word_error", "phoneme_errors", "phoneme_count")}


def main(args) -> int:
    """`ladder evaluate RUN [--split test|val]`."""
    from modelladder.verbs.report import print_result

    print_result(args.run, evaluate_run(args.run, split=args.split))
    return 0
