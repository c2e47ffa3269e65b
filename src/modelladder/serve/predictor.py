"""Predictor.load(run_dir): any rung, neural or scikit-learn, behind one predict API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modelladder.config import RunConfig
from modelladder.errors import InputError
from modelladder.models.build import build_model, is_neural
from modelladder.registry import MODELS, TASKS, lookup
from modelladder.runs import read_json, read_run_config
from modelladder.serve.calibration import Calibration, load_calibration


class Predictor:
    """A trained model plus the preprocessing it was trained with.

    `predict` / `predict_proba` take raw input: a pandas DataFrame of the original columns for
    tabular runs, an array of images in the original pixel scale for image runs. `scores` takes
    features already preprocessed (what DataBundle holds). A calibrated run's probabilities are
    calibrated everywhere (its calibration.json, serve/calibration.py); `uncalibrated_scores` gives the
    model's own.
    """

    def __init__(self, cfg: RunConfig, model, preprocess: dict, run_dir: Path | None = None, encoder=None,
                 calibration: Calibration | None = None):
        self.cfg = cfg
        self.model = model
        self.preprocess = preprocess
        self.run_dir = run_dir
        self.encoder = encoder  # a text network's TextEncoder (the run's tokenizer.json)
        self.calibration = calibration  # applied to the logits by `scores`; None: the model's own probabilities
        self.classes: list[str] = preprocess.get("classes", [])
        # a regression network's target scale (tasks/regression.py): its outputs are standardised values; None for
        # scikit-learn rungs and runs saved before the target was scaled, whose outputs are the values themselves
        self.target: dict | None = preprocess.get("target")
        if is_neural(model):
            model.eval()

    @classmethod
    def load(cls, run_dir: str | Path) -> Predictor:
        run_dir = Path(run_dir)
        cfg = read_run_config(run_dir)
        preprocess = read_json(run_dir / "preprocess.json")
        shape = tuple(preprocess["input_shape"])
        n_outputs = len(preprocess["classes"]) or len(preprocess["transform"].get("target_vocab", ())) or 1
        model = build_model(cfg.model, shape, n_outputs, seed=cfg.seed, task=cfg.task.name)
        encoder = None
        if is_neural(model):
            from modelladder.train.checkpoint import load_weights

            load_weights(_existing(run_dir / "model.safetensors"), model)
            if preprocess["kind"] in ("text", "seq2seq"):
                from modelladder.data.tokenize import TextEncoder

                encoder = TextEncoder.load(_existing(run_dir / "tokenizer.json"))
        else:
            rung_cls = lookup(MODELS, "model.name", cfg.model.name)
            model = rung_cls.load(_existing(run_dir / "model.skops"), cfg.model, shape, n_outputs,
                                  task=cfg.task.name)
        return cls(cfg, model, preprocess, run_dir, encoder, load_calibration(run_dir))

    def backend(self) -> dict:
        """What runs the forward pass, for /metadata (serve/onnx_predictor.py: onnxruntime)."""
        return {"name": "torch", "version": torch.__version__}

    # ---------------------------------------------------------------- features in

    def scores(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Class probabilities (N, n_classes), calibrated when the run is, regression values (N,), or a seq2seq
        run's output strings (N,) for preprocessed features (cleaned texts for a text run)."""
        if self.calibration is None or not self.classes:
            return self.uncalibrated_scores(X, batch_size)
        return self.calibration.apply(self.logits(X, batch_size))

    def uncalibrated_scores(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """The model's own class probabilities (a softmax of a network's logits, a scikit-learn rung's
        predict_proba) or regression values, whether or not the run is calibrated."""
        self._check_predicts()
        if self.preprocess["kind"] == "seq2seq":
            return self.sequences(X)
        if not is_neural(self.model):
            if self.classes:
                return self.model.predict_proba(X)
            return self.model.predict(X).astype(np.float32)
        out = self._network_outputs(X, batch_size)
        if self.classes:
            return out.softmax(-1).numpy()
        values = out.squeeze(-1).numpy()
        if self.target is None:
            return values
        return (values.astype(np.float64) * self.target["std"] + self.target["mean"]).astype(np.float32)

    def sequences(self, X: np.ndarray) -> np.ndarray:
        """A seq2seq run's output strings (a 1-D object array) for cleaned sources: decoded by a network as its
        run's eval.beam and eval.length_penalty say (models/seq2seq_decode.py), or a classic rung's predict."""
        if not is_neural(self.model):
            return np.asarray(self.model.predict(list(X)), dtype=object)
        from modelladder.data.seq2seq import decoding_length
        from modelladder.models.seq2seq_decode import translate

        transform = self.preprocess["transform"]
        return translate(self.model, X, self.encoder, transform["target_vocab"],
                         max_length=decoding_length(transform), beam=self.cfg.eval.beam,
                         length_penalty=self.cfg.eval.length_penalty)

    def logits(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """(N, n_classes) scores that calibration rescales: a network's logits, a margin model's margins, another
        scikit-learn rung's log-probabilities (models/classic.py ClassicRung.logits)."""
        self._check_predicts()
        if not self.classes:
            raise InputError(f"run {self.run_dir} is a regression: it has no logits to calibrate")
        if not is_neural(self.model):
            return self.model.logits(X)
        return self._network_outputs(X, batch_size).numpy()

    def _check_predicts(self) -> None:
        if not lookup(TASKS, "task.name", self.cfg.task.name).predicts:  # autoencoders, VAEs, GANs
            raise InputError(f"run {self.run_dir} was trained for task.name '{self.cfg.task.name}', which makes "
                             "no predictions: predict with a classification or regression run")

    def _network_outputs(self, X: np.ndarray, batch_size: int) -> torch.Tensor:
        """The network's raw outputs (N, n_outputs) on the CPU, in the order of X."""
        if len(X) == 0:
            return torch.zeros((0, len(self.classes) or 1))
        from modelladder.data.batches import TokenSequences, make_source, unsort

        if self.encoder is not None:
            X = TokenSequences(self.encoder.encode(list(X)), self.encoder.pad_id)
        source = make_source(X, None, torch.float32, next(self.model.parameters()).device)
        batches, outs = source.in_order(batch_size), []
        with torch.inference_mode():
            for idx in batches:
                outs.append(self.model(source.take(idx)[0]).float())
        return unsort(batches, outs).cpu()

    # ---------------------------------------------------------------- raw input in

    def features(self, raw, names=None) -> np.ndarray:
        """Preprocessed features for raw input (data/load.py transform_raw): a table's extra, ID and dropped
        columns are ignored and missing feature columns named; a text empty after cleaning is refused,
        `names[i]` naming text i in the message."""
        from modelladder.data.load import transform_raw

        return transform_raw(self.preprocess["transform"], raw, names)

    @property
    def id_column(self) -> str | None:
        """The ID column the run detected in its training table (data/tabular.py), if any."""
        return self.preprocess.get("id_column") or self.preprocess.get("transform", {}).get("id_column")

    def predict_proba(self, raw) -> np.ndarray:
        if not self.classes:
            raise InputError("predict_proba needs a classification run; this run is a regression")
        return self.scores(self.features(raw))

    def predict(self, raw) -> np.ndarray:
        """Class names for classification, values for regression."""
        scores = self.scores(self.features(raw))
        return self.decode(scores)

    def decode(self, scores: np.ndarray) -> np.ndarray:
        if self.classes:
            return np.asarray(self.classes, dtype=object)[scores.argmax(axis=1)]
        return scores

    def predict_files(self, paths: list[Path]) -> np.ndarray:
        """Scores for image files (PNG / JPEG), the rows of CSV / parquet files, or texts: the lines of
        .txt files and the text column of CSV / JSONL files."""
        from modelladder.data.load import load_image_files

        if self.preprocess["kind"] == "image":
            return self.scores(load_image_files(paths, self.preprocess["transform"]))
        if self.preprocess["kind"] in ("text", "seq2seq"):
            frames = [read_texts(p, self.cfg.data) for p in paths]
            texts = [t for f in frames for t in f["text"]]
            names = [f"{p} {'line' if p.suffix.lower() == '.txt' else 'row'} {i}"
                     for p, f in zip(paths, frames) for i in f["id"]]
            return self.scores(self.features(texts, names))
        frames = [read_table(p, self.cfg.data) for p in paths]
        import pandas as pd

        return self.scores(self.features(pd.concat(frames, ignore_index=True)))


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"{path} is missing: the run folder has no trained model (did training finish?)")
    return path


def read_texts(path: Path, data=None, id_column: str | None = None):
    """A DataFrame of the texts in a file with their ids: `id` the line number of each non-blank line of a
    .txt file (one text a line; blank lines separate), or the row number from 1 of a CSV / TSV / JSONL file
    (its `id_column` value when it has that column), and `text` from the run's data.text column
    (default 'text'). A CSV's delimiter and encoding are sniffed as in training unless the run's `data`
    forced them; cells are read as written (no 'NA' -> missing), an empty cell is an empty text."""
    import pandas as pd

    from modelladder.data.sniff import read_csv

    column = (data.text if data is not None else None) or "text"
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    if suffix not in (".txt", ".csv", ".tsv", ".jsonl"):
        raise InputError(f"input file {path}: a text run reads .txt, .csv, .tsv or .jsonl files")
    try:
        if suffix == ".txt":
            lines = path.read_text(encoding="utf-8-sig").splitlines()
            return pd.DataFrame([(n, line) for n, line in enumerate(lines, 1) if line.strip()],
                                columns=["id", "text"])
        if suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            sep, encoding = (data.sep, data.encoding) if data is not None else (None, None)
            frame = read_csv(path, sep=sep, encoding=encoding, name="input file", dtype=str, keep_default_na=False)[0]
    except UnicodeDecodeError as err:
        raise InputError(f"input file {path} is not valid UTF-8 (byte {err.start})") from None
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(f"input file {path} could not be read: {err}") from None
    if column not in frame.columns:
        raise InputError(f"input file {path} has no text column '{column}' (it has {list(frame.columns)})")
    texts = [t if isinstance(t, str) else "" for t in frame[column]]  # null / missing: an empty text
    return pd.DataFrame({"id": row_ids(frame, id_column), "text": texts})


def row_ids(frame, id_column: str | None = None) -> list:
    """Each row's id: its `id_column` value when the frame has that column, else its row number from 1."""
    if id_column is not None and id_column in frame.columns:
        return frame[id_column].tolist()
    return list(range(1, len(frame) + 1))


def read_table(path: Path, data=None):
    """The rows of a parquet or CSV / TSV file; a CSV's delimiter and encoding are sniffed as in training,
    unless the run's config `data` (its DataConfig) forced data.sep / data.encoding."""
    import pandas as pd

    from modelladder.data.sniff import read_csv

    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        sep, encoding = (data.sep, data.encoding) if data is not None else (None, None)
        return read_csv(path, sep=sep, encoding=encoding, name="input file")[0]
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise InputError(f"input file {path} could not be read as a table: {err}") from None
