"""The HTTP API answers what `ladder predict` / the Predictor answer, batches concurrent requests,
and refuses bad requests with a status and a message naming the field."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from tests.serve.runs import people_rows


def post_json(c: TestClient, body: dict):
    """Python's json writes NaN and Infinity (as clients do), which httpx's json= refuses to send."""
    return c.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})


def client(run_dir, **settings) -> TestClient:
    return TestClient(create_app(Predictor.load(run_dir), ServeSettings(**settings)))


def probabilities(response: dict, classes: list[str]) -> np.ndarray:
    return np.array([[p[c] for c in classes] for p in response["probabilities"]])


def test_tabular_rows_match_the_predictor(people_dir):
    rows = people_rows(40)
    predictor = Predictor.load(people_dir)
    expected = predictor.predict_proba(pd.DataFrame(rows))
    with client(people_dir) as c:
        answer = c.post("/predict", json={"rows": rows})
        assert answer.status_code == 200, answer.text
        body = answer.json()
    assert body["predictions"] == list(predictor.decode(expected))
    np.testing.assert_allclose(probabilities(body, predictor.classes), expected, rtol=0, atol=1e-6)
    assert set(body["predictions"]) <= {"yes", "no"}


def test_texts_match_the_predictor(topics_dir):
    texts = ["the team scored a goal in the match", "a new law after the election", "the cpu runs code"]
    predictor = Predictor.load(topics_dir)
    with client(topics_dir) as c:
        body = c.post("/predict", json={"texts": texts}).json()
    assert body["predictions"] == list(predictor.predict(texts)) == ["sport", "politics", "tech"]
    np.testing.assert_allclose(probabilities(body, predictor.classes), predictor.predict_proba(texts), atol=1e-6)


def test_images_as_png_match_ladder_predict_and_pixel_lists_match_the_predictor(digits_dir, tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    predictor = Predictor.load(digits_dir)
    files, encoded = [], []
    for i in range(12):
        pixels = (digits.images[i] * 255 / 16).round().astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    encoded[0] = "data:image/png;base64," + encoded[0]
    with client(digits_dir) as c:
        from_png = c.post("/predict", json={"images": encoded}).json()
        from_pixels = c.post("/predict", json={"images": digits.images[:12].tolist()}).json()
        from_npy = c.post("/predict", json={"images": [npy(image) for image in digits.images[:12]]}).json()
    by_files = predictor.predict_files(files)  # what `ladder predict RUN *.png` computes
    assert from_png["predictions"] == list(predictor.decode(by_files))
    np.testing.assert_allclose(probabilities(from_png, predictor.classes), by_files, atol=1e-6)
    np.testing.assert_allclose(probabilities(from_pixels, predictor.classes),
                               predictor.predict_proba(digits.images[:12]), atol=1e-6)
    assert np.mean(np.array(from_pixels["predictions"]) == digits.target[:12].astype(str)) >= 0.75
    assert from_npy == from_pixels  # the same pixels, sent as .npy files instead of lists


def npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return base64.b64encode(buffer.getvalue()).decode()


def test_health_metadata_and_docs(people_dir):
    with client(people_dir) as c:
        assert c.get("/health").json() == {"status": "ok"}
        meta = c.get("/metadata").json()
        assert c.get("/docs").status_code == 200
        schema = c.get("/openapi.json").json()
    assert meta["run"] == "people" and meta["model"] == "mlp" and meta["task"] == "classification"
    assert meta["classes"] == ["no", "yes"] and meta["kind"] == "tabular"
    assert meta["input"]["field"] == "rows"
    assert meta["input"]["columns"]["age"] == "number or null"
    assert meta["input"]["columns"]["city"]["seen_in_training"] == ["lima", "oslo", "paris"]
    assert meta["limits"] == {"max_batch": 32, "max_wait_ms": 5.0, "max_items": 256, "max_body_bytes": 1 << 20}
    assert "/predict" in schema["paths"]
    row = schema["components"]["schemas"]["Row"]
    assert set(row["properties"]) == {"age", "income", "city"}


async def _concurrent(app, bodies: list[dict]) -> tuple[list[httpx.Response], dict]:
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        answers = await asyncio.gather(*(c.post("/predict", json=b) for b in bodies))
        meta = (await c.get("/metadata")).json()
    return answers, meta


def test_concurrent_requests_share_a_forward_pass_and_each_gets_its_own_answer(people_dir):
    rows = people_rows(24, seed=3)
    predictor = Predictor.load(people_dir)
    calls = []

    def counting_scores(x):
        calls.append(len(x))
        return predictor.scores(x)

    predictor_spy = Predictor.load(people_dir)
    predictor_spy.scores = counting_scores
    app = create_app(predictor_spy, ServeSettings(max_batch=8, max_wait_ms=200))
    bodies = [{"rows": [r]} for r in rows[:20]] + [{"rows": rows[20:24]}]  # 21 requests, 24 rows
    answers, meta = asyncio.run(_concurrent(app, bodies))
    expected = predictor.predict(pd.DataFrame(rows))
    got = [p for a in answers for p in a.json()["predictions"]]
    assert got == list(expected)
    stats = meta["batching"]
    assert stats["requests"] == 21 and stats["items"] == 24
    assert stats["largest_batch"] > 1 and stats["batches"] == len(calls) < 21
    assert max(calls) <= 8  # never more than max_batch items in one pass


def test_an_api_key_is_required_when_set(people_dir):
    rows = people_rows(2)
    with client(people_dir, api_key="s3cret") as c:
        missing = c.post("/predict", json={"rows": rows})
        wrong = c.get("/metadata", headers={"X-API-Key": "guess"})
        right = c.post("/predict", json={"rows": rows}, headers={"X-API-Key": "s3cret"})
        health = c.get("/health")
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["detail"] == "missing or wrong API key: send it in the X-API-Key header"
    assert right.status_code == 200 and health.status_code == 200


def test_size_limits_answer_413_and_422(people_dir):
    rows = people_rows(5)
    with client(people_dir, max_items=4, max_body_bytes=2048) as c:
        too_many = c.post("/predict", json={"rows": rows})
        too_big = c.post("/predict", json={"rows": rows[:1], "pad": "x" * 5000})
        chunked = c.post("/predict", content=iter([b'{"rows": [', b" " * 4096, b"]}"]),
                         headers={"content-type": "application/json"})
        still_fine = c.post("/predict", json={"rows": rows[:4]})
    assert too_many.status_code == 422
    assert too_many.json()["detail"].startswith("rows: List should have at most 4 items")
    assert too_big.status_code == 413 and "over the limit of 2048 bytes (max_body_bytes)" in too_big.json()["detail"]
    assert chunked.status_code == 413
    assert still_fine.status_code == 200


@pytest.mark.parametrize(("body", "message"), [
    ({"rows": [{"age": "old", "income": 50, "city": "oslo"}]}, "rows[0].age: Input should be a valid number"),
    ({"rows": [{"age": 30, "income": float("nan"), "city": "oslo"}]}, "rows[0].income: Input should be a finite number"),
    ({"rows": [{"age": 30, "city": "oslo"}]}, ("missing feature columns ['income'] ('income' from rows [0]); every "
                                               "row needs the feature columns ['age', 'income', 'city']")),
    ({"rows": [{"age": 30, "income": 1, "city": [7]}]}, "rows[0].city: Input should be a valid string"),
    ({"rows": []}, "rows: List should have at least 1 item"),
    ({"texts": ["hello"]}, "rows: Field required; texts: Extra inputs are not permitted"),
    ({"rows": "all of them"}, "rows: Input should be a valid list"),
])
def test_tabular_validation_errors_name_the_field(people_dir, body, message):
    with client(people_dir) as c:
        answer = post_json(c, body)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(message)


@pytest.mark.parametrize(("body", "message"), [
    ({"images": ["not base64!"]}, "images[0] is not valid base64"),
    ({"images": [base64.b64encode(b"GIF89a....").decode()]}, "images[0] is not a readable PNG or JPEG image"),
    ({"images": [[[1, 2], [3, 4]]]}, "images[0] has shape (2, 2); expected (8, 8) or (1, 8, 8)"),
    ({"images": [[["a"] * 8] * 8]}, "images[0] must be a nested list of numbers"),
    ({"images": [[[1e400] * 8] * 8]}, "images[0] holds NaN or infinite values"),
    ({"images": [npy(np.zeros((3, 3)))]}, "images[0] has shape (3, 3); expected (8, 8) or (1, 8, 8)"),
    ({"images": [npy(np.array(["a"] * 64).reshape(8, 8))]}, "images[0] must be a numeric .npy array"),
    ({"images": [npy(np.full((8, 8), np.nan))]}, "images[0] holds NaN or infinite values"),
    ({"images": [base64.b64encode(b"\x93NUMPY\x01\x00garbage").decode()]}, "images[0] is not a readable .npy"),
])
def test_image_validation_errors_name_the_item(digits_dir, body, message):
    with client(digits_dir) as c:
        answer = post_json(c, body)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(message)


def test_text_validation_errors_name_the_item(topics_dir):
    with client(topics_dir) as c:
        answer = c.post("/predict", json={"texts": ["fine", 3]})
    assert answer.status_code == 422 and answer.json()["detail"] == "texts[1]: Input should be a valid string"


def test_rows_as_ladder_predict_reads_a_table_extra_keys_ignored_missing_columns_named_at_once(people_dir):
    rows = people_rows(6)
    with client(people_dir) as c:
        plain = c.post("/predict", json={"rows": rows}).json()
        extra = c.post("/predict", json={"rows": [{**r, "label": "yes", "zip": 1, "note": None} for r in rows]})
        number = c.post("/predict", json={"rows": [{**rows[0], "city": 7}, {**rows[0], "city": 7.0}]})
        gaps = c.post("/predict", json={"rows": [{"age": 1}, {"income": 2, "city": "oslo"}, rows[0]]})
    assert extra.status_code == 200 and extra.json() == plain
    assert number.status_code == 200  # a number for a category is read as its CSV cell would be ('7')
    assert gaps.status_code == 422
    assert gaps.json()["detail"].startswith("missing feature columns ['income', 'city', 'age'] ('income' from rows "
                                            "[0]; 'city' from rows [0]; 'age' from rows [1])")


def test_an_empty_text_is_refused_naming_it_as_ladder_predict_does(topics_dir):
    with client(topics_dir) as c:
        answer = c.post("/predict", json={"texts": ["the match", "   ", "<br/>"]})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("texts[1], texts[2] are empty after cleaning")
