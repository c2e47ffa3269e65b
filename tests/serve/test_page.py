"""The try-it page and the docs of `ladder serve` need no network: GET / is one self-contained file, /docs and
/redoc load their assets from the server itself; POST /explain draws `ladder explain`'s picture for one input."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from PIL import Image
from sklearn.datasets import load_digits

from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from modelladder.verbs.explain import page_explainer
from tests.serve.runs import people_rows, train

URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(([^)]+)\)|fetch\(\s*["']([^"']+)["']""")


def client(run_dir, **settings) -> TestClient:
    predictor = Predictor.load(run_dir)
    return TestClient(create_app(predictor, ServeSettings(**settings), page_explainer(predictor)))


def references(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in URL.finditer(html)]


def is_local(url: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:|^//", url, re.IGNORECASE) or url.startswith(("data:", "blob:"))


def test_the_page_is_self_contained_and_forbids_other_origins(topics_dir):
    with client(topics_dir) as c:
        page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script>" in page.text and "<style>" in page.text  # inline, not fetched
    assert all(is_local(u) for u in references(page.text)), references(page.text)
    assert "http://" not in page.text and "https://" not in page.text


def test_docs_and_redoc_load_only_local_assets_that_answer(people_dir):
    with client(people_dir) as c:
        for path in ("/docs", "/redoc"):
            html = c.get(path)
            assert html.status_code == 200
            urls = references(html.text) + re.findall(r"url: *'([^']+)'", html.text)
            assert urls and all(is_local(u) for u in urls), urls
            assert "cdn" not in html.text.lower() and "googleapis" not in html.text
            for url in urls:
                answer = c.get(url)
                assert answer.status_code == 200, url
                assert len(answer.content) > 100, url
        assert "/predict" in c.get("/openapi.json").json()["paths"]


def test_explain_draws_the_picture_of_ladder_explain_for_the_first_item(digits_dir):
    digits = load_digits()
    pixels = digits.images[:2].tolist()  # the dataset's own scale (0..16)
    with client(digits_dir) as c:
        predicted = c.post("/predict", json={"images": pixels}).json()["predictions"][0]
        answer = c.post("/explain", json={"images": pixels})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["method"] == "ig" and body["label"] == "Integrated Gradients" and body["predicted"] == predicted
    assert len(body["top"]) == 10 and body["top"][0]["unit"].startswith("pixel (")
    assert set(body["faithfulness"]) == {"deletion_auc", "random_deletion_auc", "insertion_auc",
                                         "random_insertion_auc"}
    png = base64.b64decode(body["picture"].removeprefix("data:image/png;base64,"))
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.format == "PNG" and picture.width > 300
    assert not list((digits_dir / "pictures").glob("explain-*.png"))  # nothing written into the run folder


def test_explain_takes_the_predict_body_and_its_key(people_dir):
    with client(people_dir, api_key="secret") as c:
        assert c.post("/explain", json={"rows": people_rows(1)}).status_code == 401
        answer = c.post("/explain", json={"rows": people_rows(1)}, headers={"X-API-Key": "secret"})
        refused = c.post("/explain", json={"texts": ["a"]}, headers={"X-API-Key": "secret"})
        assert c.get("/").status_code == 200  # the page itself holds nothing secret: it asks /metadata
    assert answer.status_code == 200, answer.text
    assert answer.json()["method"] == "ig" and answer.json()["top"][0]["unit"] in ("age", "income", "city")
    assert refused.status_code == 422


def test_a_regression_run_has_no_explain_endpoint(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    pd.DataFrame({"x": x, "y": 2 * x}).to_csv(tmp_path / "line.csv", index=False)
    run = train(tmp_path, "line", {"data": {"dataset": "csv", "path": str(tmp_path / "line.csv"), "label": "y"},
                                   "task": {"name": "regression"}, "model": {"name": "linear"}})
    with client(run) as c:
        assert c.post("/explain", json={"rows": [{"x": 1.0}]}).status_code == 404
        assert c.get("/").status_code == 200
