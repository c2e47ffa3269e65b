"""`ladder serve --backend onnxruntime`: a run's Predictor whose forward pass is an ONNX graph run by onnxruntime.

Everything else is the torch Predictor's: the preprocessing, the tokenizer, the calibration (applied to the graph's
logits), the decoding; the torch model stays loaded for what needs gradients (the try-it page's explanations).
The graph is the one `ladder export --format onnx` writes and checks (verbs/serve_backend.py makes and caches it);
for a network it takes `x` or `input_ids` + `attention_mask` and gives logits (or a standardised value), for a
scikit-learn rung `x` flattened and the probabilities of the classes the rung saw in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modelladder.errors import InputError
from modelladder.models.build import is_neural
from modelladder.serve.predictor import Predictor


class OnnxPredictor(Predictor):
    """`predictor`'s run with its outputs from onnxruntime running `graph` (a model.onnx, fp32 or quantized)."""

    def __init__(self, predictor: Predictor, graph: Path, details: dict | None = None):
        super().__init__(predictor.cfg, predictor.model, predictor.preprocess, predictor.run_dir, predictor.encoder,
                         predictor.calibration)
        import onnxruntime

        if not is_neural(self.model) and self.calibration is not None:
            raise InputError(f"run {self.run_dir} is a calibrated scikit-learn rung: its ONNX graph gives "
                             "probabilities only, not the logits its calibration rescales; serve it with "
                             "--backend torch")
        self.graph = Path(graph)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # as many threads as the torch backend uses
        # its threads spin between calls by default, taking the cores the HTTP loop and other processes need
        # (as libgomp's do: openmp.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.details = {"name": "onnxruntime", "version": onnxruntime.__version__, "graph": str(graph),
                        **(details or {})}

    def backend(self) -> dict:
        return self.details

    def uncalibrated_scores(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        if is_neural(self.model):
            return super().uncalibrated_scores(X, batch_size)
        self._check_predicts()
        flat = np.asarray(X, np.float32).reshape(len(X), -1)
        if not self.classes:
            return self.session.run(None, {"x": flat})[0].reshape(-1).astype(np.float32)
        seen = self.model._fitted().classes_.astype(int)
        probabilities = np.zeros((len(X), len(self.classes)), np.float32)  # a class absent in training: 0
        probabilities[:, seen] = self.session.run(["probabilities"], {"x": flat})[0]
        return probabilities

    def logits(self, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        if not is_neural(self.model):
            raise InputError(f"run {self.run_dir}: the ONNX graph of a scikit-learn rung gives no logits")
        return super().logits(X, batch_size)

    def _network_outputs(self, X: np.ndarray, batch_size: int) -> torch.Tensor:
        """The graph's outputs (N, n_outputs) in the order of X: texts in length-sorted batches padded to each
        batch's longest, as the torch Predictor runs them."""
        if len(X) == 0:
            return torch.zeros((0, len(self.classes) or 1))
        if self.encoder is None:
            flat = np.asarray(X, np.float32)
            outs = [self.session.run(None, {"x": flat[i:i + batch_size]})[0] for i in range(0, len(flat), batch_size)]
            return torch.from_numpy(np.concatenate(outs))
        from modelladder.data.batches import TokenSequences, make_source, unsort

        source = make_source(TokenSequences(self.encoder.encode(list(X)), self.encoder.pad_id), None, torch.float32,
                             torch.device("cpu"))
        batches, outs = source.in_order(batch_size), []
        for idx in batches:
            ids, mask = source.take(idx)[0]
            feed = {"input_ids": ids.numpy(), "attention_mask": mask.long().numpy()}
            outs.append(torch.from_numpy(self.session.run(None, feed)[0]))
        return unsort(batches, outs)
