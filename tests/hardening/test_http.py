"""Hostile HTTP input to `ladder serve` (huge, deep, malformed, wrong types, NaN) gets a 4xx with a
message, never a 500, and the server stays up and keeps answering correctly."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelladder.serve.app import ServeSettings, create_app
from modelladder.serve.predictor import Predictor
from tests.hardening.server import start_server, stop_server
from tests.serve.runs import people_rows

HOSTILE = [  # (what, body bytes, content type, expected status)
    ("10 MB body", b'{"rows": [' + b"1," * 5_000_000 + b"1]}", "application/json", 413),
    ("deep JSON", b"[" * 200_000 + b"]" * 200_000, "application/json", 400),
    ("deep JSON in a row", b'{"rows": [' + b'{"age":' * 50_000 + b"1" + b"}" * 50_000 + b"]}", "application/json", 400),
    ("truncated JSON", b'{"rows": [{"age": 3', "application/json", 422),
    ("not UTF-8", b'{"rows": ["\xff\xfe"]}', "application/json", 400),
    ("empty body", b"", "application/json", 422),
    ("plain text", b"hello", "text/plain", 422),
    ("NaN", b'{"rows": [{"age": NaN, "income": 1, "city": "oslo"}]}', "application/json", 422),
    ("Infinity", b'{"rows": [{"age": 1, "income": -Infinity, "city": "oslo"}]}', "application/json", 422),
    ("huge number", b'{"rows": [{"age": 1e999999, "income": 1, "city": "oslo"}]}', "application/json", 422),
    ("a list, not an object", b"[1, 2, 3]", "application/json", 422),
    ("rows as an object", b'{"rows": {"age": 1}}', "application/json", 422),
    ("row as a list", b'{"rows": [[1, 2, "oslo"]]}', "application/json", 422),
    ("a 100 kB string", b'{"rows": [{"age": 1, "income": 1, "city": "' + b"x" * 100_000 + b'"}]}',
     "application/json", 422),
    ("too many rows", json.dumps({"rows": [{"age": 1, "income": 1, "city": "oslo"}] * 300}).encode(),
     "application/json", 422),
]


@pytest.fixture(scope="module")
def server(trained_runs):
    proc, url = start_server(trained_runs["tabular"])
    yield proc, url
    stop_server(proc)


@pytest.mark.parametrize(("what", "body", "content_type", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_requests_get_a_4xx_and_the_server_stays_up(server, what, body, content_type, status):
    proc, url = server
    answer = httpx.post(f"{url}/predict", content=body, headers={"content-type": content_type}, timeout=60)
    assert answer.status_code == status, answer.text[:500]
    assert answer.json()["detail"]
    assert proc.poll() is None
    good = httpx.post(f"{url}/predict", json={"rows": people_rows(2)}, timeout=60)
    assert good.status_code == 200 and len(good.json()["predictions"]) == 2


def test_wrong_methods_and_paths(server):
    _, url = server
    assert httpx.get(f"{url}/predict").status_code == 405
    assert httpx.post(f"{url}/nothing", json={}).status_code == 404
    assert httpx.get(f"{url}/health", headers={"x-huge": "a" * 200_000}).status_code in (200, 400, 431)
    assert httpx.get(f"{url}/health").status_code == 200


def test_concurrent_clients_on_the_real_server_are_batched(server):
    _, url = server
    rows = people_rows(32, seed=5)

    async def load():
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*(c.post(f"{url}/predict", json={"rows": [r]}) for r in rows))

    answers = asyncio.run(load())
    assert [a.status_code for a in answers] == [200] * 32
    assert httpx.get(f"{url}/metadata").json()["batching"]["largest_batch"] > 1


def test_binding_beyond_loopback_without_a_key_warns(trained_runs):
    proc, _ = start_server(trained_runs["tabular"], "--host", "0.0.0.0")
    assert "warning: serving on 0.0.0.0, reachable from other machines, without an API key" in stop_server(proc)
    proc, url = start_server(trained_runs["tabular"], "--host", "0.0.0.0", env={"MODELLADDER_API_KEY": "k"})
    assert httpx.get(f"{url}/metadata").status_code == 401
    assert httpx.get(f"{url}/metadata", headers={"X-API-Key": "k"}).status_code == 200
    assert "warning" not in stop_server(proc)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
                    max_leaves=30)
FIELDS = st.sampled_from(["rows", "texts", "images", "age", "city"])
BODIES = JSON | st.dictionaries(FIELDS, JSON, max_size=3) | st.fixed_dictionaries(
    {"rows": st.lists(st.dictionaries(st.sampled_from(["age", "income", "city", "zip"]), JSON, max_size=4),
                      max_size=4)})


@pytest.fixture(scope="module")
def clients(trained_runs):
    apps = {kind: create_app(Predictor.load(trained_runs[kind]), ServeSettings(max_wait_ms=0))
            for kind in ("tabular", "text", "image")}
    with TestClient(apps["tabular"], raise_server_exceptions=False) as tabular, \
            TestClient(apps["text"], raise_server_exceptions=False) as text, \
            TestClient(apps["image"], raise_server_exceptions=False) as image:
        yield {"tabular": tabular, "text": text, "image": image}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["tabular", "text", "image"]), body=BODIES)
def test_any_json_body_gets_an_answer_or_a_4xx_never_a_500(clients, kind, body):
    answer = clients[kind].post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert answer.status_code in (200, 400, 413, 422), (answer.status_code, answer.text[:300])
    if answer.status_code != 200:
        assert answer.json()["detail"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300))
def test_any_bytes_get_an_answer_or_a_4xx_never_a_500(clients, body):
    answer = clients["tabular"].post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code in (200, 400, 422), (answer.status_code, answer.text[:300])
