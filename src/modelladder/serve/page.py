"""The try-it page of `ladder serve` and its OpenAPI docs, both working with no network.

GET / is serve/templates/page.html: one self-contained file (inline CSS and JavaScript, no CDN) that asks
GET /metadata what the run takes and draws the matching form (an image to upload, a text to type, or one
field per feature column of a table), POSTs it to /predict and shows the prediction with its probabilities;
for a classifier it then POSTs the same body to /explain and shows the picture `ladder explain` would draw
for that input (verbs/explain.py page_explainer: the rung's first method, with its faithfulness curves).
A Content-Security-Policy header lets the page load nothing from another origin.

/docs and /redoc are FastAPI's own pages pointed at swagger-ui and redoc files served from the
`fastapi-offline` package (FastAPI's documented way to self-host the docs' assets), not from a CDN.
"""

# no `from __future__ import annotations`: FastAPI must see the request model passed to add_page
import base64
import threading
from collections.abc import Callable
from importlib.resources import files

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

DOCS_ASSETS = "/docs-assets"
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'")


class ExplainResponse(BaseModel):
    method: str  # ig, saliency, shap or lime (ladder explain --method)
    label: str  # the method's name, for a person
    predicted: str
    probability: float
    top: list[dict]  # the most attributed units: {"unit", "score"}
    faithfulness: dict[str, float]  # deletion / insertion areas, and those of random orders
    picture: str  # a data: URL of the PNG


def add_page(app: FastAPI, request_model: type[BaseModel], features: Callable[[BaseModel], np.ndarray],
             check_key: Callable, explain: Callable[[np.ndarray], dict] | None) -> None:
    """GET / (the page) and, when `explain` is given, POST /explain: `request_model`'s body (as /predict's),
    its first item explained; `features` turns a body into model features."""
    page = (files("modelladder.serve") / "templates" / "page.html").read_text(encoding="utf-8")
    one_at_a_time = threading.Lock()  # an explanation takes hundreds of forward passes: never two at once

    @app.get("/", include_in_schema=False)
    async def try_it() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})

    if explain is None:
        return

    @app.post("/explain", dependencies=[Depends(check_key)])
    def explain_first(body: request_model) -> ExplainResponse:  # a plain def: FastAPI runs it in a thread
        """The first item of the body explained for its predicted class, as `ladder explain` would."""
        X = features(body)
        with one_at_a_time:
            record = explain(X)
        png = record.pop("png")
        return ExplainResponse(**record, picture="data:image/png;base64," + base64.b64encode(png).decode())


def add_offline_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc with their JavaScript and CSS served by this app; create the app with
    docs_url=None and redoc_url=None."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=root + app.openapi_url, title=f"{app.title} - Swagger UI",
                                   oauth2_redirect_url=root + oauth2_redirect,
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png")

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=root + app.openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
