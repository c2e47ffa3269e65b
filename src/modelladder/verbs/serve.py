"""`ladder serve`: a trained run behind the HTTP API of serve/app.py."""

from __future__ import annotations


def main(args) -> int:
    """`ladder serve RUN [--host] [--port] [--max-batch] [--max-wait-ms] [--max-items] [--max-body-bytes]
    [--api-key]`."""
    from modelladder.serve.app import serve, settings_from_args

    settings = settings_from_args(args.max_batch, args.max_wait_ms, args.max_items, args.max_body_bytes,
                                  args.api_key)
    serve(args.run, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
    return 0
