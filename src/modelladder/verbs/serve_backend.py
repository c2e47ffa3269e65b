"""`ladder serve RUN --backend torch|onnxruntime [--quantize int8]`: the Predictor the app serves.

onnxruntime serves the graph `ladder export --format onnx` writes, made once into RUN/serve-onnx/ (through
verbs/export.py, so it is checked against the torch Predictor on the test split before it is used, and its
export.json says how closely it agreed) and reused while it is newer than the run's model. `--quantize int8`
quantizes that graph's MatMul and Gemm weights to int8 with onnxruntime's dynamic quantization (activations
quantized per batch at run time; convolutions stay fp32: QUANTIZED_OPS) into RUN/serve-onnx/model.int8.onnx, and
measures at start-up what it costs: the accuracy (a regression: the mean absolute error) of the fp32 graph and of
the int8 one on the run's test split, at most SAMPLE examples of it (a seeded sample), printed and shown in
/metadata under "backend".
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from modelladder.errors import InputError
from modelladder.runs import read_json, read_run_config

BACKENDS = ("torch", "onnxruntime")
QUANTIZATIONS = ("int8",)
CACHE = "serve-onnx"  # inside the run folder
SAMPLE = 2000  # test examples the int8 accuracy change is measured on, at most
# convolutions stay fp32: onnxruntime's dynamically quantized ConvInteger took 6.6 s for 2,000 MNIST images against
# 0.74 s in fp32 (the CNN [32, 64] of benchmarks/serve.py, 2 cores); its docs advise dynamic quantization for
# Transformers and RNNs, static for CNNs
QUANTIZED_OPS = ("MatMul", "Gemm")


def load_predictor(run_dir: Path, backend: str = "torch", quantize: str | None = None):
    """The run's Predictor on `backend`; InputError (before anything is written) for a run or a combination
    that cannot be served so."""
    from modelladder.serve.predictor import Predictor

    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise InputError(f"--quantize must be one of {list(QUANTIZATIONS)}, got {quantize!r}")
    if quantize and backend != "onnxruntime":
        raise InputError(f"--quantize {quantize} needs --backend onnxruntime (it quantizes the ONNX graph), "
                         f"got --backend {backend}")
    if backend == "torch":
        return Predictor.load(run_dir)
    from modelladder.models.build import is_neural
    from modelladder.registry import TASKS, lookup
    from modelladder.verbs.export import refusal

    cfg = read_run_config(run_dir, "RUN")
    refused = refusal(cfg, "onnx")
    if cfg.task.name == "seq2seq" and not refused:  # its export is two graphs and a decoding loop, not one graph
        refused = ("a seq2seq run's export (an encoder and a decoder-step graph, greedy decoding: "
                   "verbs/onnx_seq2seq.py) is not served yet: serve it with --backend torch")
    if refused:
        raise InputError(f"--backend onnxruntime serves the run's ONNX export, and {refused}")
    if not lookup(TASKS, "task.name", cfg.task.name).predicts:
        raise InputError(f"--backend onnxruntime: run {run_dir} was trained for task.name '{cfg.task.name}', which "
                         "makes no predictions to serve")
    predictor = Predictor.load(run_dir)
    if quantize and not is_neural(predictor.model):
        raise InputError(f"--quantize {quantize} quantizes a network's weights; model {cfg.model.name} is a "
                         "scikit-learn rung, whose ONNX graph has none: serve it without --quantize")
    return onnx_predictor(predictor, quantize)


def onnx_predictor(predictor, quantize: str | None = None):
    """An OnnxPredictor for `predictor`'s run: the cached, checked fp32 graph, or its int8 quantization with the
    accuracy change measured."""
    from filelock import FileLock

    from modelladder.serve.onnx_predictor import OnnxPredictor

    # several servers started at once on a fresh run (one fp32, one int8, ...) would each export into the same
    # cache, one replacing the graph another is loading: the first makes it under the lock, the others reuse it
    with FileLock(predictor.run_dir / ".serve-backend.lock"):  # an empty file, left in place (unlinking it races)
        folder = exported(predictor)
        graph = quantized(folder) if quantize else folder / "model.onnx"
    check = read_json(folder / "export.json")["verification"]
    details = {"export": {k: check[k] for k in ("compared", "max_abs_diff", "tolerance", "n", "split")}}
    fp32 = OnnxPredictor(predictor, folder / "model.onnx", {**details, "precision": "fp32"})
    if quantize is None:
        return fp32
    int8 = OnnxPredictor(predictor, graph, {**details, "precision": "int8 (dynamic quantization)",
                                            "quantized_ops": list(QUANTIZED_OPS)})
    int8.details["quantization"] = change = accuracy_change(fp32, int8)
    print(f"int8: {change['metric']} {change['fp32']:.4f} (fp32) -> {change['int8']:.4f} (int8), change "
          f"{change['change']:+.4f} on {change['n']} {change['split']} examples"
          + (f" (a seeded sample of {change['n_split']})" if change["sampled"] else "")
          + f"; predictions agree on {change['agreement']:.1%}", file=sys.stderr)
    return int8


def exported(predictor) -> Path:
    """RUN/serve-onnx: `ladder export --format onnx`'s checked folder, made when missing or older than the model."""
    from modelladder.verbs.export import export_run

    run_dir = predictor.run_dir
    folder = run_dir / CACHE
    model = run_dir / ("model.safetensors" if (run_dir / "model.safetensors").is_file() else "model.skops")
    record = folder / "export.json"
    if record.is_file() and record.stat().st_mtime >= model.stat().st_mtime and (folder / "model.onnx").is_file():
        return folder
    print(f"exporting {run_dir} to ONNX in {folder} (checked with onnxruntime against torch)...", file=sys.stderr)
    export_run(predictor, "onnx", folder)
    return folder


def quantized(folder: Path) -> Path:
    """folder/model.int8.onnx: model.onnx with int8 weights (onnxruntime.quantization.quantize_dynamic), written
    through a temporary file; reused while newer than model.onnx."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, target = folder / "model.onnx", folder / "model.int8.onnx"
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    handle, tmp = tempfile.mkstemp(prefix=".model.int8.", suffix=".onnx", dir=folder)
    os.close(handle)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph first (shape inference) is not the user's task
    try:
        quantize_dynamic(source, tmp, weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS))
        os.replace(tmp, target)
    finally:
        root.setLevel(level)
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def accuracy_change(fp32, int8) -> dict:
    """Accuracy (mean absolute error for a regression) of both graphs on the run's test split (validation when
    the run has no test split), at most SAMPLE examples of it; how often their predictions agree."""
    from modelladder.verbs.build import load_run_data

    data = load_run_data(fp32.cfg)
    split = "test" if len(data.split("test")[1]) else "val"
    X, y = data.split(split)
    n_split = len(X)
    if n_split > SAMPLE:
        keep = np.sort(np.random.default_rng(fp32.cfg.seed).choice(n_split, SAMPLE, replace=False))
        X, y = X[keep], y[keep]
    before, after = fp32.scores(X), int8.scores(X)
    if fp32.classes:
        metric, a, b = "accuracy", (before.argmax(1) == y).mean(), (after.argmax(1) == y).mean()
        agreement = (before.argmax(1) == after.argmax(1)).mean()
    else:
        metric, a, b = "mae", np.abs(before - y).mean(), np.abs(after - y).mean()
        agreement = np.isclose(before, after, rtol=1e-2, atol=1e-6).mean()
    return {"metric": metric, "fp32": float(a), "int8": float(b), "change": float(b - a),
            "agreement": float(agreement), "split": split, "n": len(X), "n_split": n_split,
            "sampled": len(X) < n_split}
