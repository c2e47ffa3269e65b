"""`ladder export` as a user types it: a trained run to ONNX, then onnxruntime loads it (refusals: tests/export)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.e2e.helpers import ladder
from tests.export.runs import image_run


@pytest.mark.slow  # a fresh process importing torch and the exporter (24 s on the 2-core machine at load 8)
def test_ladder_export_onnx_then_onnxruntime_predicts_like_the_run(tmp_path):
    import onnxruntime

    run = image_run(tmp_path, "cnn")
    result = ladder("export", run, "--format", "onnx", "--out", "cnn-onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "argmax agreement 100%" in result.stdout
    record = json.loads((tmp_path / "cnn-onnx" / "export.json").read_text())
    assert record["verification"]["passed"] and record["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    session = onnxruntime.InferenceSession(str(tmp_path / "cnn-onnx" / "model.onnx"))
    logits = session.run(None, {"x": np.zeros((5, 1, 8, 8), np.float32)})[0]
    assert logits.shape == (5, 10)

