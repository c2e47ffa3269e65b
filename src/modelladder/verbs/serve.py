"""`ladder serve`: a trained run behind the HTTP API of serve/app.py, on the backend asked for (verbs/serve_backend.py:
torch, or onnxruntime with its graph checked against torch, optionally int8), with the try-it page's explanations
from verbs/explain.py (the serve layer cannot import the explain layer above it)."""

from __future__ import annotations

import sys


def main(args) -> int:
    """`ladder serve RUN [--backend torch|onnxruntime] [--quantize int8] [--host] [--port] [--max-batch]
    [--max-wait-ms] [--max-items] [--max-body-bytes] [--api-key]`."""
    from modelladder.serve.app import serve, settings_from_args
    from modelladder.verbs.explain import page_explainer
    from modelladder.verbs.export_check import ExportMismatch
    from modelladder.verbs.serve_backend import load_predictor

    settings = settings_from_args(args.max_batch, args.max_wait_ms, args.max_items, args.max_body_bytes,
                                  args.api_key)
    try:
        predictor = load_predictor(args.run, args.backend, args.quantize)
    except ExportMismatch as err:
        print(f"error: the ONNX graph of {args.run} does not agree with the torch model, so it is not served: {err}",
              file=sys.stderr)
        return 1
    serve(args.run, host=args.host, port=args.port, settings=settings, log_level=args.log_level,
          explainer=page_explainer, predictor=predictor)
    return 0
