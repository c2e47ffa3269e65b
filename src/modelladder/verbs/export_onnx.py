"""`ladder export --format onnx`: a network through torch.onnx (the torch.export-based exporter, dynamic batch and
sequence axes), a scikit-learn rung through skl2onnx, each checked with onnxruntime (verbs/export.py).

What the graph takes and gives, by rung (export.json repeats it under "inputs" / "outputs"):
- image and table networks: `x` float32 (batch, *input_shape), the features after preprocess.json's transform;
  `logits` (batch, classes), or `value` (batch, 1) for a regression (standardised: value * std + mean with
  preprocess.json's target);
- text networks (rnn, transformer, hf): `input_ids` and `attention_mask` int64 (batch, sequence), from the
  tokenizer.json beside (its padding and truncation are set); `logits` as above;
- autoencoder / vae runs trained to reconstruct: the encoder, `x` -> `code` (the VAE's mean of q(z|x));
- scikit-learn rungs: `x` float32 (batch, features), the features flattened; `label` and `probabilities`
  (classes the rung saw in training), or `variable` for a regression.
- seq2seq networks: an encoder and a one-step decoder graph with seq2seq.json (verbs/export_seq2seq.py).
Refused (InputError): gan, simclr, clip, hf_causal_lm and `ladder pretrain` runs (no classifier or encoder
graph to export: hf_causal_lm exports with --format hf), the TF-IDF rungs, hist_gb and letter_to_sound (see
REFUSED).
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.errors import InputError
from modelladder.models.build import is_neural
from modelladder.registry import PRETRAIN_TASKS, TASKS, lookup
from modelladder.verbs.export_check import Comparison, copy_beside

OPSET = 18
BATCH = 256  # examples per onnxruntime call in the check
REFUSED = {
    "tfidf_logreg": "skl2onnx's TfidfVectorizer converter ignores sublinear_tf (1 + log tf), which the TF-IDF "
                    "rungs use: its features differ from scikit-learn's by up to 0.025 on repeated words",
    "tfidf_svm": "skl2onnx's TfidfVectorizer converter ignores sublinear_tf (1 + log tf), which the TF-IDF rungs "
                 "use, and skl2onnx 1.20 fails on LinearSVC inside a Pipeline",
    "hist_gb": "skl2onnx 1.20 writes a Python bool into an integer attribute of HistGradientBoosting's tree "
               "ensemble, which onnx 1.23 rejects",
    "gan": "a GAN run has no classifier or encoder to export",
    "simclr": "a SimCLR run's export is not supported yet: fine-tune a classifier from it and export that",
    "clip": "a CLIP run takes images and captions together: its export is not supported yet",
    "hf_causal_lm": "a causal language model is exported as a Hugging Face folder: use --format hf",
    "letter_to_sound": "its letter-window tree could go through skl2onnx, but the letter-to-phoneme alignment and "
                       "the decoding around it are this project's Python: a graph of the tree alone would not "
                       "convert a word (its run's model.skops, loaded with `ladder predict`, does)",
}


REFUSED_TASKS: dict[str, str] = {}  # task seq2seq: an encoder and a decoder-step graph (verbs/export_seq2seq.py)


def refusal(cfg) -> str | None:
    """Why a run with config `cfg` has no ONNX export; None when it has one."""
    if cfg.model.name in REFUSED:
        return f"model {cfg.model.name} cannot be exported to ONNX: {REFUSED[cfg.model.name]}"
    if cfg.task.name in REFUSED_TASKS:
        return f"task {cfg.task.name} cannot be exported to ONNX: {REFUSED_TASKS[cfg.task.name]}"
    if cfg.task.name in PRETRAIN_TASKS:
        return (f"a `ladder pretrain` run (task {cfg.task.name}) has no classifier to export to ONNX: export the "
                "classifier fine-tuned from it")
    return None


def write(predictor, folder: Path, X, *, adapters_only: bool = False) -> dict:
    """model.onnx (+ preprocess.json, tokenizer.json) in `folder`; the record for export.json, with the
    onnxruntime check under "comparison"."""
    refused = refusal(predictor.cfg)
    if refused:
        raise InputError(refused)
    record = (_write_network if is_neural(predictor.model) else _write_classic)(predictor, folder / "model.onnx", X)
    import onnxruntime

    record["runtime"] = {"runtime": f"onnxruntime {onnxruntime.__version__}"}
    record["beside"] = copy_beside(predictor, folder)
    return record


# ---------------------------------------------------------------- networks


class _Features(nn.Module):
    """x -> the network's outputs; with `encoder`, the code of an autoencoder / the mean of a VAE's q(z|x)."""

    def __init__(self, model: nn.Module, encoder: bool = False):
        super().__init__()
        self.model, self.encoder = model, encoder

    def forward(self, x):
        if not self.encoder:
            return self.model(x)
        code = self.model.encode(x)
        return code[0] if isinstance(code, tuple) else code


class _Tokens(nn.Module):
    """(input_ids, attention_mask int64) -> logits: the text networks take a boolean mask."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model((input_ids, attention_mask != 0))


def _graph_module(predictor) -> tuple[nn.Module, str]:
    """The module to trace and the name of its output."""
    model = predictor.model
    if predictor.encoder is not None:
        if predictor.cfg.model.name == "rnn":
            from modelladder.verbs.export_rnn import UnpackedRNN

            model = UnpackedRNN(model)
        return _Tokens(model).eval(), "logits" if predictor.classes else "value"
    if lookup(TASKS, "task.name", predictor.cfg.task.name).predicts:
        return _Features(model).eval(), "logits" if predictor.classes else "value"
    if not model.encodes:
        raise InputError(f"model {predictor.cfg.model.name} trained for task {predictor.cfg.task.name} makes no "
                         "predictions and has no encoder to export")
    return _Features(model, encoder=True).eval(), "code"


def _write_network(predictor, path: Path, X) -> dict:
    module, output = _graph_module(predictor)
    example, inputs, shapes = _example(predictor, X)
    with warnings.catch_warnings(), quiet_exporter(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter is not the user's concern
        try:
            program = torch.onnx.export(module, example, dynamic_shapes=shapes, input_names=[i["name"] for i in inputs],
                                        output_names=[output], opset_version=OPSET, dynamo=True, verbose=False)
        except Exception as err:  # noqa: BLE001 - torch.export's and onnxscript's errors share no base class
            raise InputError(f"model {predictor.cfg.model.name} could not be traced for ONNX: "
                             f"{str(err).strip().splitlines()[-1]}") from None
        program.save(str(path), external_data=False)
    _check_dynamic(predictor, path, inputs)
    comparison = _compare_network(predictor, module, output, path, X)
    return {"exporter": f"torch.onnx (dynamo, opset {OPSET}) torch {torch.__version__}",
            "inputs": inputs, "outputs": [{"name": output, "dtype": "float32",
                                            "shape": ["batch", comparison.ours.shape[1] if output == "code"
                                                      else len(predictor.classes) or 1]}],
            **({"target": predictor.target} if output == "value" and predictor.target else {}),
            "comparison": comparison}


def _check_dynamic(predictor, path: Path, inputs: list[dict]) -> None:
    """torch.onnx falls back to a draft export that fixes an axis the model's code made constant: refuse that
    graph rather than ship one that takes a single batch size."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for described, given in zip(inputs, graph.input):
        dims = [d.dim_param or d.dim_value for d in given.type.tensor_type.shape.dim]
        fixed = [axis for axis, dim in zip(described["shape"], dims) if isinstance(axis, str) and dim != axis]
        if fixed:
            raise InputError(f"model {predictor.cfg.model.name}: the ONNX exporter could not keep the {fixed} axes of "
                             f"input {described['name']} dynamic (the model's code makes them constant)")


@contextmanager
def quiet_exporter():
    """The exporter logs a warning per torchvision operator it cannot register (torchvision is not installed)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _example(predictor, X):
    """Example inputs for the tracer, the graph's input description, and the dynamic axes (batch; sequence,
    up to the tokenizer's max_length). Batch and sequence example sizes differ so that the tracer keeps them apart."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1 << 20)
    if predictor.encoder is None:
        x = torch.as_tensor(np.asarray(X[:3], np.float32))
        x = torch.cat([x, x, x])[:3] if len(x) < 3 else x
        shape = ["batch", *x.shape[1:]]
        return (x,), [{"name": "x", "dtype": "float32", "shape": shape}], ({0: batch},)
    from modelladder.data.batches import TokenSequences

    encoder = predictor.encoder
    length = min(7, encoder.max_length)
    rows = 3 if length != 3 else 4
    texts = list(X[:rows]) + ["a"] * max(0, rows - len(X))
    ids, mask = TokenSequences(encoder.encode(texts), encoder.pad_id).take(torch.arange(rows))
    ids = torch.nn.functional.pad(ids, (0, max(0, length - ids.shape[1])), value=encoder.pad_id)[:, :length]
    mask = torch.nn.functional.pad(mask, (0, max(0, length - mask.shape[1])), value=False)[:, :length]
    mask[0] = True  # one full row: the graph must not assume every row is padded
    sequence = Dim("sequence", min=1, max=encoder.max_length)
    described = [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in ("input_ids", "attention_mask")]
    return (ids, mask.long()), described, ({0: batch, 1: sequence}, {0: batch, 1: sequence})


def _compare_network(predictor, module: nn.Module, output: str, path: Path, X) -> Comparison:
    """Our Predictor's outputs against onnxruntime's on X."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = np.concatenate([session.run(None, feed)[0] for feed in _feeds(predictor, X)])
    if output == "code":
        with torch.inference_mode():
            ours = np.concatenate([module(torch.as_tensor(np.asarray(X[i:i + BATCH], np.float32))).numpy()
                                   for i in range(0, len(X), BATCH)])
        return Comparison("codes", ours, theirs)
    if not predictor.classes:
        target = predictor.target or {"mean": 0.0, "std": 1.0}
        return Comparison("values", predictor.uncalibrated_scores(X),
                          theirs[:, 0].astype(np.float64) * target["std"] + target["mean"])
    logits = predictor.logits(X)
    return Comparison("probabilities", _softmax(logits), _softmax(theirs),
                      {"logits_max_abs_diff": float(np.abs(logits - theirs).max()) if len(X) else 0.0})


def _feeds(predictor, X):
    """onnxruntime input dicts for X, BATCH examples each; texts padded to each batch's longest."""
    if predictor.encoder is None:
        for i in range(0, len(X), BATCH):
            yield {"x": np.asarray(X[i:i + BATCH], np.float32)}
        return
    from modelladder.data.batches import TokenSequences

    tokens = TokenSequences(predictor.encoder.encode(list(X)), predictor.encoder.pad_id)
    for i in range(0, len(X), BATCH):
        ids, mask = tokens.take(torch.arange(i, min(i + BATCH, len(X))))
        yield {"input_ids": ids.numpy(), "attention_mask": mask.long().numpy()}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- scikit-learn


def _write_classic(predictor, path: Path, X) -> dict:
    import skl2onnx
    from skl2onnx.common.data_types import FloatTensorType

    rung = predictor.model
    estimator = rung._fitted()
    width = int(np.prod(predictor.preprocess["input_shape"]))
    options = {id(estimator): {"zipmap": False}} if predictor.classes else {}
    try:
        graph = skl2onnx.to_onnx(estimator, initial_types=[("x", FloatTensorType([None, width]))], options=options,
                                 target_opset=OPSET)
    except Exception as err:  # noqa: BLE001 - skl2onnx raises unrelated types for what it cannot convert
        raise InputError(f"model {predictor.cfg.model.name} ({type(estimator).__name__}) cannot be converted by "
                         f"skl2onnx {skl2onnx.__version__}: {str(err).splitlines()[0][:300]}") from None
    path.write_bytes(graph.SerializeToString())
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    flat = np.asarray(X, np.float32).reshape(len(X), width)
    outputs = [o.name for o in session.get_outputs()]
    got = [session.run(None, {"x": flat[i:i + BATCH]}) for i in range(0, len(flat), BATCH)]
    if predictor.classes:
        seen = estimator.classes_.astype(int)
        theirs = np.concatenate([g[outputs.index("probabilities")] for g in got])
        comparison = Comparison("probabilities", rung.predict_proba(X)[:, seen], theirs)
        described = [{"name": "label", "dtype": "int64", "shape": ["batch"]},
                     {"name": "probabilities", "dtype": "float32", "shape": ["batch", len(seen)],
                      "classes": [predictor.classes[i] for i in seen]}]
    else:
        theirs = np.concatenate([g[0] for g in got]).reshape(-1)
        comparison = Comparison("values", rung.predict(X), theirs)
        described = [{"name": outputs[0], "dtype": "float32", "shape": ["batch"]}]
    return {"exporter": f"skl2onnx {skl2onnx.__version__} (opset {OPSET})",
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", width],
                        "note": "the features after preprocess.json's transform, flattened"}],
            "outputs": described, "comparison": comparison}
