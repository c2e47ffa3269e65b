"""`ladder serve`: a trained run behind the HTTP API of serve/app.py, with the try-it page's explanations
from verbs/explain.py (the serve layer cannot import the explain layer above it)."""

from __future__ import annotations


def main(args) -> int:
    """`ladder serve RUN [--host] [--port] [--max-batch] [--max-wait-ms] [--max-items] [--max-body-bytes]
    [--api-key]`."""
    from modelladder.serve.app import serve, settings_from_args
    from modelladder.verbs.explain import page_explainer

    settings = settings_from_args(args.max_batch, args.max_wait_ms, args.max_items, args.max_body_bytes,
                                  args.api_key)
    serve(args.run, host=args.host, port=args.port, settings=settings, log_level=args.log_level,
          explainer=page_explainer)
    return 0
