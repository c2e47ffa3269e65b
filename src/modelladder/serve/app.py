"""`ladder serve RUN`: a trained run behind an HTTP API (FastAPI + uvicorn) with dynamic micro-batching.

POST /predict takes {"rows": [...]} (tabular runs: one object per row, keyed by feature name; other keys
ignored and missing feature columns named, as `ladder predict` reads a table), {"texts": [...]} (text
runs; a text empty after cleaning is refused, data/text.py) or {"images": [...]} (image runs: base64
PNG / JPEG, or pixels in the dataset's pixel scale as nested lists or a base64 .npy file) and answers the
predicted labels (values for a regression) and each class's probability. GET /health, GET /metadata (model, classes, input schema, batching stats),
OpenAPI docs at /docs and /redoc, a page to try the model at GET / and, for a classifier, POST /explain (serve/page.py;
all of it works offline). Concurrent requests share one forward pass (serve/batcher.py).
"""

# no `from __future__ import annotations`: FastAPI must see the request model built in create_app
import base64
import binascii
import hmac
import io
import sys
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from modelladder.errors import InputError
from modelladder.serve.batcher import MicroBatcher
from modelladder.serve.page import add_offline_docs, add_page
from modelladder.serve.predictor import Predictor

API_KEY_ENV = "MODELLADDER_API_KEY"
API_KEY_HEADER = "X-API-Key"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_IMAGE_PIXELS = 4096 * 4096  # a small compressed file must not decode into gigabytes
NPY_MAGIC = b"\x93NUMPY"  # the first bytes of a .npy file (np.save)
TEXT_SUB_BATCH = 8  # texts per forward pass within a batch, similar lengths together


@dataclass(frozen=True)
class ServeSettings:
    max_batch: int = 32  # items in one forward pass
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_items: int = 256  # items in one request
    max_body_bytes: int = 1 << 20
    api_key: str | None = None


class PredictResponse(BaseModel):
    predictions: list[str | float]  # class names, values for a regression, or a seq2seq run's output strings
    probabilities: list[dict[str, float]] | None = None  # one {class: probability} per item


def create_app(predictor: Predictor, settings: ServeSettings = ServeSettings(),
               explain: Callable[[np.ndarray], dict] | None = None) -> FastAPI:
    """The API for one loaded run; the batcher runs while the app's lifespan does. `explain` (features -> an
    explanation record: verbs/explain.py page_explainer) adds POST /explain."""
    run_batch = predictor.scores
    if predictor.preprocess["kind"] == "text":  # length-sorted sub-batches: one padded to its longest text wastes
        run_batch = partial(predictor.scores, batch_size=TEXT_SUB_BATCH)  # ~40% (MiniLM, 32 SST-2 sentences)
    batcher = MicroBatcher(run_batch, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    run_name = predictor.run_dir.name if predictor.run_dir else "run"
    app = FastAPI(title=f"ModelLadder: {run_name}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description=f"{predictor.cfg.model.name} ({predictor.cfg.task.name}) on "
                              f"{predictor.preprocess['kind']} input")
    app.state.batcher = batcher
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InputError, _input_error)
    request_model = _request_model(predictor, settings.max_items)
    check_key = _key_checker(settings.api_key)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/metadata", dependencies=[Depends(check_key)])
    async def metadata() -> dict:
        limits = {k: v for k, v in asdict(settings).items() if k != "api_key"}
        return {"run": run_name, "model": predictor.cfg.model.name, "task": predictor.cfg.task.name,
                "kind": predictor.preprocess["kind"], "classes": predictor.classes,
                "backend": predictor.backend(), "input": input_schema(predictor), "limits": limits,
                "batching": batcher.stats.as_dict()}

    @app.post("/predict", dependencies=[Depends(check_key)])
    async def predict(body: request_model) -> PredictResponse:
        scores = await batcher.submit(request_features(predictor, body))
        return _response(predictor, scores)

    add_page(app, request_model, partial(request_features, predictor), check_key, explain)
    add_offline_docs(app)
    return app


def serve(run_dir: Path, *, host: str = "127.0.0.1", port: int = 8000,
          settings: ServeSettings = ServeSettings(), log_level: str = "info",
          explainer: Callable[[Predictor], Callable | None] | None = None,
          predictor: Predictor | None = None) -> None:
    """Load the run (or take `predictor`, another backend's: serve/onnx_predictor.py) and serve it with uvicorn
    until interrupted; `explainer(predictor)` gives create_app's `explain`."""
    import uvicorn

    predictor = predictor or Predictor.load(run_dir)
    explain = explainer(predictor) if explainer is not None else None
    if host not in LOOPBACK and not settings.api_key:
        print(f"warning: serving on {host}, reachable from other machines, without an API key; "
              f"set {API_KEY_ENV} or pass --api-key", file=sys.stderr)
    uvicorn.run(create_app(predictor, settings, explain), host=host, port=port, log_level=log_level)


# ---------------------------------------------------------------- requests in


def _request_model(predictor: Predictor, max_items: int) -> type[BaseModel]:
    """The POST /predict body for this run's kind of input; unknown keys of the body are refused (a row's
    are ignored: `_row_model`)."""
    kind = predictor.preprocess["kind"]
    strict = ConfigDict(extra="forbid")
    if kind == "tabular":
        row = _row_model(predictor.preprocess["transform"])
        item, field = row, "rows"
    elif kind in ("text", "seq2seq"):  # seq2seq: the sources to convert
        item, field = str, "texts"
    else:
        item, field = str | list, "images"
    items = Field(min_length=1, max_length=max_items, description=_FIELD_HELP[field])
    return create_model("PredictRequest", __config__=strict, **{field: (list[item], items)})


_FIELD_HELP = {
    "rows": "one object per row, keyed by the feature columns; null for a missing value",
    "texts": "the texts to classify",
    "images": "base64 PNG / JPEG (a data: URL is fine), or pixels in the dataset's pixel scale, shaped (H, W) "
              "or (C, H, W): as nested lists, or as a base64 .npy file (np.save; read without image decoding)",
}


def _row_model(transform: dict) -> type[BaseModel]:
    """One row, as `ladder predict` reads a table's: other keys (the label, ID and dropped columns, anything
    else) are ignored; every feature column must be present (null for a missing value: imputed), which
    `request_features` checks for all rows at once. Numbers must be finite; other columns take strings, or
    numbers read as a CSV cell would be."""
    fields = {}
    for i, column in enumerate(transform["columns"]):
        if column in transform["numeric"]:
            kind = float | None
            spec = Field(None, alias=column, allow_inf_nan=False)
        else:
            kind = Annotated[str | None, BeforeValidator(_category)]
            spec = Field(None, alias=column, max_length=10_000)
        fields[f"f{i}"] = (kind, spec)  # aliases: a column name need not be a Python identifier
    return create_model("Row", __config__=ConfigDict(extra="ignore"), **fields)


def _category(value):
    """A number sent for a non-numeric column becomes the string a CSV cell would give: 3 and 3.0 are '3'."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        return str(value)
    if np.isnan(value):  # a missing value
        return None
    return str(int(value)) if value.is_integer() else str(value)


def _check_rows_complete(rows: list[BaseModel], columns: list[str]) -> None:
    """One InputError naming the feature columns absent from rows, and which rows (null is not absent)."""
    absent: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        given = row.model_fields_set
        for i, column in enumerate(columns):
            if f"f{i}" not in given:
                absent.setdefault(column, []).append(index)
    if absent:
        where = "; ".join(f"'{c}' from rows {_indices(idx)}" for c, idx in absent.items())
        raise InputError(f"missing feature columns {list(absent)} ({where}); every row needs the feature columns "
                         f"{columns} (null for a missing value; other keys are ignored)")


def _indices(idx: list[int]) -> str:
    shown = ", ".join(map(str, idx[:10]))
    return f"[{shown}{f', ... ({len(idx)} rows)' if len(idx) > 10 else ''}]"


def request_features(predictor: Predictor, body: BaseModel) -> np.ndarray:
    """Preprocessed features for a validated request body, as `ladder predict` makes them."""
    import pandas as pd

    kind = predictor.preprocess["kind"]
    if kind == "tabular":
        columns = predictor.preprocess["transform"]["columns"]
        _check_rows_complete(body.rows, columns)
        frame = pd.DataFrame([r.model_dump(by_alias=True) for r in body.rows], columns=columns)
        return predictor.features(frame)
    if kind in ("text", "seq2seq"):
        return predictor.features(body.texts, [f"texts[{i}]" for i in range(len(body.texts))])
    return _image_features(predictor.preprocess["transform"], body.images)


def _image_features(transform: dict, images: list) -> np.ndarray:
    from modelladder.data.images import transform_images

    c, h, w = transform["channels"], transform["height"], transform["width"]
    raw = np.stack([_decode_image(i, item, transform) if isinstance(item, str) else _pixels(i, item, (c, h, w))
                    for i, item in enumerate(images)])
    return transform_images(transform, raw)


def _decode_image(index: int, text: str, transform: dict) -> np.ndarray:
    """(C, H, W) pixels in the dataset's scale from a base64 PNG / JPEG, resized as `ladder predict` does, or
    from a base64 .npy array already in that scale and shape (no image decoding: the cheap path for clients
    that hold arrays)."""
    c, h, w = transform["channels"], transform["height"], transform["width"]
    try:
        data = base64.b64decode(text.split(",", 1)[1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"images[{index}] is not valid base64") from None
    if data.startswith(NPY_MAGIC):
        return _pixels(index, _npy(index, data), (c, h, w))
    from PIL import Image, UnidentifiedImageError

    from modelladder.data.images import PIL_MODES

    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise InputError(f"images[{index}] is {img.width}x{img.height} pixels; "
                                 f"at most {MAX_IMAGE_PIXELS} pixels are accepted")
            img = img.convert(PIL_MODES[c]).resize((w, h), Image.Resampling.BILINEAR)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise InputError(f"images[{index}] is not a readable PNG or JPEG image: {err}") from None
    pixels = np.asarray(img, np.float32).reshape(h, w, c).transpose(2, 0, 1)
    return pixels * np.float32(transform["pixel_max"] / 255.0)


def _npy(index: int, data: bytes) -> np.ndarray:
    """A base64 .npy file's array (np.save's format: dtype and shape in its header), never unpickled."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"images[{index}] is not a readable .npy array: {err}") from None
    if array.dtype.kind not in "uif" or array.size > MAX_IMAGE_PIXELS:
        raise InputError(f"images[{index}] must be a numeric .npy array of at most {MAX_IMAGE_PIXELS} values, got "
                         f"dtype {array.dtype} and shape {array.shape}")
    return array


def _pixels(index: int, item, shape: tuple[int, int, int]) -> np.ndarray:
    c, h, w = shape
    try:
        pixels = np.asarray(item, dtype=np.float32)
    except (ValueError, TypeError):
        raise InputError(f"images[{index}] must be a nested list of numbers of shape ({h}, {w}) or "
                         f"({c}, {h}, {w})") from None
    if pixels.shape == (h, w) and c == 1:
        pixels = pixels[None]
    if pixels.shape != (c, h, w):
        allowed = f"({h}, {w}) or ({c}, {h}, {w})" if c == 1 else f"({c}, {h}, {w})"
        raise InputError(f"images[{index}] has shape {pixels.shape}; expected {allowed}")
    if not np.isfinite(pixels).all():
        raise InputError(f"images[{index}] holds NaN or infinite values")
    return pixels


def input_schema(predictor: Predictor) -> dict:
    """What /predict expects, for /metadata."""
    kind, transform = predictor.preprocess["kind"], predictor.preprocess["transform"]
    if kind == "tabular":
        categories = transform.get("categories", {})
        columns = {c: "number or null" if c in transform["numeric"] else
                   {"type": "string or null", "seen_in_training": categories[c]} if c in categories else
                   "string or null" for c in transform["columns"]}
        return {"field": "rows", "columns": columns, "ignored": "other keys (label, ID, dropped columns)"}
    if kind == "seq2seq":
        return {"field": "texts", "lowercase": transform.get("lowercase", False),
                "output": "space-separated target symbols", "empty": "refused (422)"}
    if kind == "text":
        return {"field": "texts", "clean": transform.get("clean"), "empty": "refused (422) when empty after cleaning"}
    return {"field": "images", **{k: transform[k] for k in ("channels", "height", "width", "pixel_max")}}


# ---------------------------------------------------------------- responses, errors and limits


def _response(predictor: Predictor, scores: np.ndarray) -> PredictResponse:
    if predictor.preprocess["kind"] == "seq2seq":
        return PredictResponse(predictions=[str(s) for s in scores])
    if not predictor.classes:
        return PredictResponse(predictions=scores.astype(float).tolist())
    probabilities = [dict(zip(predictor.classes, map(float, row))) for row in scores]
    return PredictResponse(predictions=predictor.decode(scores).tolist(), probabilities=probabilities)


def _key_checker(api_key: str | None):
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="needed when the server has a key")

    async def check(given: str | None = Security(header)) -> None:
        if api_key and not (given and hmac.compare_digest(given.encode(), api_key.encode())):
            raise HTTPException(status_code=401, detail=f"missing or wrong API key: send it in the "
                                                        f"{API_KEY_HEADER} header")

    return check


def _field(loc: tuple) -> str:
    """('body', 'rows', 0, 'age') -> 'rows[0].age'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "body"


async def _validation_error(request, exc: RequestValidationError) -> JSONResponse:
    errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return JSONResponse(status_code=422, content={"detail": detail, "errors": errors[:100]})


async def _input_error(request, exc: InputError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": str(exc)})


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before anything parses it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, send, int(declared))
        body, more = bytearray(), True
        while more:  # read it all (chunked bodies have no length up front), up to the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._refuse(scope, send, len(body))
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, send, size: int) -> None:
        response = JSONResponse(status_code=413, content={
            "detail": f"the request body ({size} bytes or more) is over the limit of {self.max_bytes} bytes "
                      "(max_body_bytes): send fewer items per request"})
        await response(scope, None, send)


def settings_from_args(max_batch: int, max_wait_ms: float, max_items: int, max_body_bytes: int,
                       api_key: str | None) -> ServeSettings:
    """Check the CLI's numbers; the API key falls back to $MODELLADDER_API_KEY."""
    import os

    problems = [f"--{name.replace('_', '-')} must be >= {low}, got {value}" for name, value, low in
                (("max_batch", max_batch, 1), ("max_wait_ms", max_wait_ms, 0), ("max_items", max_items, 1),
                 ("max_body_bytes", max_body_bytes, 1024)) if value < low]
    if problems:
        raise InputError(problems)
    return ServeSettings(max_batch=max_batch, max_wait_ms=max_wait_ms, max_items=max_items,
                         max_body_bytes=max_body_bytes, api_key=api_key or os.environ.get(API_KEY_ENV) or None)

