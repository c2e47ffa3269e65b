"""BENCHMARKS.md target 4: `ladder serve` (dynamic micro-batching) vs a plain FastAPI endpoint that runs
the model once per request (peer `fastapi-per-request`, re-created here in our own words: a sync route
calling the same Predictor on each request's items, as the FastAPI tutorials do for blocking work).

Both serve the same trained run (trained first into a temporary folder) from their own uvicorn
process on loopback, with the same environment. A load generator in this process (aiohttp,
32 concurrent clients, each sending one item per request and waiting for the answer) drives one side
at a time, alternating ours / peer, each side's time and request count bounded. Prints requests/s and
the ratio, p50 / p99 latency, the error count (any answer other than 200, or a failed connection),
and the accuracy of the answers each side gave. Two workloads (--model):
- minilm (the default): the sst2 ladder's `hf` rung, MiniLM-L6 fine-tuned (mode full, max_length 64)
  on a few thousand SST-2 training sentences; requests are SST-2 dev sentences, {"texts": [...]}.
  One sentence costs a 6-layer Transformer forward pass, several ms on this CPU, far more than the
  HTTP and JSON around it: as in real transformer serving, the model dominates each request, and
  that per-call cost is what dynamic batching shares out (a batch of 32 costs far less than 32 calls);
- cnn: the MNIST ladder's CNN rung, requests are base64 PNG test images, {"images": [...]}. Its
  forward pass for one image is ~0.1 ms, far below the request's HTTP, JSON and PNG decoding: there
  is almost nothing for batching to save, and the ratio shows the server's fixed per-request cost.
Our side is served on each of --backends: torch (`ours`, the recorded line the README quotes), onnxruntime
(`ladder serve --backend onnxruntime`, the run's checked ONNX export) and onnxruntime-int8 (`--quantize int8`,
whose accuracy change on the run's test split, measured by the server at start-up, is recorded beside it); each is
a contender against the same peer, one result line each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from modelladder.openmp import set_wait_policy

REPO = Path(__file__).resolve().parents[1]
CNN = {"name": "cnn", "channels": [32, 64]}  # configs/ladders/mnist.yaml's cnn rung
MINILM = {"name": "hf", "mode": "full", "pooling": "mean", "max_length": 64}  # configs/ladders/sst2.yaml's minilm rung
BACKENDS = {  # --backends name -> the name of our side and `ladder serve`'s flags
    "torch": ("ours", []),
    "onnxruntime": ("ours-onnxruntime", ["--backend", "onnxruntime"]),
    "onnxruntime-int8": ("ours-onnxruntime-int8", ["--backend", "onnxruntime", "--quantize", "int8"]),
}
WORKLOADS_DATA = {"minilm": "sst2", "cnn": "mnist"}  # the dataset each workload's run trains on
WORKLOADS = {  # what each side serves: the run's description and the training examples by default / with --quick
    "minilm": ("hf MiniLM-L6 (full fine-tune, max_length 64) on SST-2 sentences", 6000, 600),
    "cnn": ("cnn [32, 64] on MNIST 28x28", 10_000, 1000),
}


# ---------------------------------------------------------------- the peer: one forward pass per request


class ImageRequest(BaseModel):
    images: list[str]  # base64 PNG / JPEG


class TextRequest(BaseModel):
    texts: list[str]


def peer_app(run_dir: Path):
    """The plain endpoint: decode the request's items, call the Predictor on them, answer. A sync `def`
    route, so FastAPI runs it in its thread pool, as the FastAPI tutorials do for blocking work."""
    from fastapi import FastAPI
    from PIL import Image

    from modelladder.serve.predictor import Predictor

    predictor = Predictor.load(run_dir)
    app = FastAPI()

    def answer(scores: np.ndarray) -> dict:
        return {"predictions": predictor.decode(scores).tolist(),
                "probabilities": [dict(zip(predictor.classes, map(float, row))) for row in scores]}

    if predictor.preprocess["kind"] == "text":
        @app.post("/predict")
        def predict_texts(request: TextRequest) -> dict:
            return answer(predictor.predict_proba(request.texts))

        return app

    size = (predictor.preprocess["transform"]["width"], predictor.preprocess["transform"]["height"])
    scale = predictor.preprocess["transform"]["pixel_max"] / 255.0

    @app.post("/predict")
    def predict_images(request: ImageRequest) -> dict:
        pixels = []
        for text in request.images:
            data = base64.b64decode(text)
            if data.startswith(b"\x93NUMPY"):  # --images npy: the pixels themselves, as ours reads them
                pixels.append(np.load(io.BytesIO(data), allow_pickle=False).astype(np.float32))
                continue
            with Image.open(io.BytesIO(data)) as img:
                pixels.append(np.asarray(img.convert("L").resize(size), np.float32) * scale)
        return answer(predictor.predict_proba(np.stack(pixels)))

    return app


def run_peer(run_dir: Path, port: int) -> None:
    import uvicorn

    uvicorn.run(peer_app(run_dir), host="127.0.0.1", port=port, log_level="warning")


# ---------------------------------------------------------------- servers and the load generator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int, timeout: float = 120) -> subprocess.Popen:
    """Start a server and wait until GET /health (ours) or the port (the peer) answers."""
    import httpx

    # with main()'s OpenMP setting; this checkout's src first, whichever checkout the venv's editable install names
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src")])}
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{' '.join(command)} exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{' '.join(command)} did not answer on port {port} within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def load(url: str, bodies: list[dict], labels: list[str], *, clients: int, seconds: float,
               max_requests: int) -> dict:
    """`clients` loops, each posting one request body (one item) and awaiting the answer, until the time
    or the request budget is spent. Latencies in ms; errors are non-200 answers and failed requests.
    The client is aiohttp's: it shares this machine's cores with the servers, and httpx's AsyncClient spent
    ~4 ms of CPU per request here against aiohttp's ~0.3 ms (same server, 1,500 requests, 32 connections),
    so with httpx the benchmark mostly measured its own load generator."""
    import aiohttp

    latencies, correct, errors, sent = [], [], [0], [0]
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline and sent[0] < max_requests:
            i = sent[0] % len(bodies)
            sent[0] += 1
            began = time.perf_counter()
            try:
                async with session.post(url, json=bodies[i]) as answer:
                    status = answer.status
                    body = await answer.json() if status == 200 else None
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors[0] += 1
                continue
            latencies.append((time.perf_counter() - began) * 1000)
            if status != 200:
                errors[0] += 1
                continue
            correct.append(body["predictions"][0] == labels[i])

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return {"requests": len(correct), "errors": errors[0], "seconds": elapsed, "latencies": latencies,
            "correct": int(sum(correct))}


def summary(parts: list[dict]) -> dict:
    requests = sum(p["requests"] for p in parts)
    latencies = np.concatenate([p["latencies"] for p in parts]) if requests else np.zeros(1)
    return {"requests": requests, "errors": sum(p["errors"] for p in parts),
            "requests_per_s": requests / sum(p["seconds"] for p in parts),
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99)),
            "accuracy": sum(p["correct"] for p in parts) / max(requests, 1)}


# ---------------------------------------------------------------- the runs and the requests


def train(model: str, folder: Path, limit: int) -> Path:
    """The run both sides serve; scored on a small validation split (the test split would cost more
    time than the short benchmark itself)."""
    from modelladder.config import validate_run
    from modelladder.runs import prepare
    from modelladder.verbs.train import train_run

    data = WORKLOADS_DATA[model]
    if model == "cnn":
        spec = CNN
        train_cfg = {"epochs": 1, "batch_size": 64}
    else:  # the sst2 ladder's minilm recipe, on fewer sentences
        spec = MINILM
        train_cfg = {"epochs": 1, "batch_size": 32, "optimizer": {"name": "adamw", "lr": 5e-5},
                     "schedule": {"name": "linear", "warmup_steps": max(limit // 320, 1)}}
    cfg = validate_run({"name": f"{data}-{model}", "seed": 0, "eval": {"split": "val"},
                        "data": {"dataset": data, "limit": limit, "split": {"val": 0.05}},
                        "model": spec, "train": {**train_cfg, "progress": False}})
    run_dir = prepare(folder / cfg.name, overwrite=True)  # a --keep-run folder whose training was cut short: again
    began = time.perf_counter()
    result = train_run(cfg, run_dir)
    print(f"trained {run_dir.name} ({WORKLOADS[model][0]}) on {limit} training examples in "
          f"{time.perf_counter() - began:.0f} s: val accuracy {result['metrics']['accuracy']:.4f}")
    return run_dir


def requests_for(model: str, n: int, images: str = "png") -> tuple[list[dict], list[str], str]:
    """The request bodies (one item each), the label each answer should give, and what they are."""
    from modelladder.data.download import data_root

    if model == "minilm":
        from modelladder.data.text_sources import SENTIMENT, read_sst2

        texts, labels = read_sst2(data_root(None) / "sst" / "sst2_dev.tsv")
        return ([{"texts": [t]} for t in texts[:n]], [SENTIMENT[y] for y in labels[:n]],
                f"SST-2 dev sentences ({min(n, len(texts))})")
    encoded, labels = test_images(n, images)
    return [{"images": [i]} for i in encoded], list(labels), f"MNIST test images ({n}, {images})"


def test_images(n: int, form: str = "png") -> tuple[list[str], np.ndarray]:
    """The first n MNIST test images as base64 PNG (form png) or as base64 .npy arrays of their pixels in the
    run's pixel scale, uint8 0-255 (form npy), and their labels."""
    from PIL import Image

    from modelladder.data.download import data_root
    from modelladder.data.mnist import (
        IMAGES_MAGIC,
        LABELS_MAGIC,
        ensure_files,
        read_idx,
    )

    folder = ensure_files(data_root(None) / "mnist")
    x = read_idx(folder / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC)[:n]
    y = read_idx(folder / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)[:n]
    encoded = []
    for pixels in x:
        buffer = io.BytesIO()
        if form == "npy":
            np.save(buffer, pixels)  # uint8: MNIST's pixel scale is 0-255
        else:
            Image.fromarray(pixels).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded, y.astype(str)


# ---------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks serve")
    parser.add_argument("--model", choices=list(WORKLOADS), default="minilm",
                        help="minilm: MiniLM-L6 on SST-2 sentences (default); cnn: the MNIST CNN on PNG images")
    parser.add_argument("--seconds", type=float, default=60, help="load time per side (default: 60)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations; each side gets seconds/rounds per round")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-requests", type=int, default=200_000, help="request budget per side and round")
    parser.add_argument("--train-limit", type=int,
                        help="training examples for the run (default: minilm 6000 SST-2 sentences, cnn 10000 "
                             "MNIST images; --quick: 600 / 1000)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"our sides, comma-separated, torch first (default: {','.join(BACKENDS)})")
    parser.add_argument("--images", choices=["png", "npy"], default="png",
                        help="cnn: how both sides receive the images: base64 PNG (default) or base64 .npy pixels")
    parser.add_argument("--keep-run", type=Path, metavar="DIR",
                        help="train the run into DIR and keep it; a later call with the same DIR and --model serves "
                             "it again without training (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true", help="3 s per side, 1 round, a smaller run; not recorded")
    parser.add_argument("--peer-server", type=Path, help=argparse.SUPPRESS)  # internal: run the peer's server
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.backends = args.backends.split(",")
    if args.backends[0] != "torch" or not set(args.backends) <= set(BACKENDS):
        parser.error(f"--backends must start with torch and name only {list(BACKENDS)}, got {args.backends}")
    if args.peer_server:
        run_peer(args.peer_server, args.port)
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # MiniLM comes from its wheel; the servers inherit this
    set_wait_policy()  # before torch loads (nothing above imports it); the servers inherit it
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    if args.train_limit is None:
        args.train_limit = WORKLOADS[args.model][2 if args.quick else 1]
    if args.keep_run:  # trained once into this folder, then reused (its cached ONNX graphs too)
        run_dir = args.keep_run / f"{WORKLOADS_DATA[args.model]}-{args.model}"
        if not (run_dir / "summary.json").is_file():
            run_dir = train(args.model, args.keep_run, args.train_limit)
        else:
            print(f"serving the run kept in {run_dir} (not trained again)")
        return compare(run_dir, args)
    with tempfile.TemporaryDirectory() as folder:
        run_dir = train(args.model, Path(folder), args.train_limit)
        return compare(run_dir, args)


def compare(run_dir: Path, args) -> int:
    bodies, labels, args.requests = requests_for(args.model, 1000, args.images)
    ports = {BACKENDS[b][0]: free_port() for b in args.backends} | {"fastapi-per-request": free_port()}
    servers = {}  # started one after another: the first onnxruntime server exports the graph the int8 one reuses
    for backend in args.backends:
        name, flags = BACKENDS[backend]
        servers[name] = start([sys.executable, "-m", "modelladder", "serve", str(run_dir), "--port", str(ports[name]),
                               "--max-batch", "32", "--max-wait-ms", "5", "--log-level", "warning", *flags],
                              ports[name], timeout=120 if backend == "torch" else 600)
    servers["fastapi-per-request"] = start([sys.executable, "-m", "benchmarks", "serve", "--peer-server",
                                            str(run_dir), "--port", str(ports["fastapi-per-request"])],
                                           ports["fastapi-per-request"])
    urls = {name: f"http://127.0.0.1:{port}/predict" for name, port in ports.items()}
    parts: dict[str, list[dict]] = {name: [] for name in servers}
    try:
        for name in servers:  # warm-up, not counted: first-call costs land on nobody
            asyncio.run(load(urls[name], bodies, labels, clients=args.clients, seconds=1, max_requests=200))
        per_round = args.seconds / args.rounds
        for r in range(args.rounds):
            for name in servers:
                part = asyncio.run(load(urls[name], bodies, labels, clients=args.clients, seconds=per_round,
                                        max_requests=args.max_requests))
                parts[name].append(part)
                print(f"  round {r + 1}/{args.rounds} {name:20s} {part['requests'] / part['seconds']:7.1f} requests/s "
                      f"errors={part['errors']}", flush=True)
        import httpx

        metadata = {name: httpx.get(f"http://127.0.0.1:{ports[name]}/metadata").json() for name in servers
                    if name != "fastapi-per-request"}
    finally:
        for proc in servers.values():
            stop(proc)
    theirs = summary(parts["fastapi-per-request"])
    failed = 0
    for name, meta in metadata.items():
        failed += report(summary(parts[name]), theirs, meta["batching"], args, name, meta["backend"])
    return 1 if failed else 0


def report(ours: dict, theirs: dict, batching: dict, args, side: str = "ours", backend: dict | None = None) -> int:
    import torch

    from benchmarks.common import record

    how = (f" --model {args.model}" + (f" --images {args.images}" if args.images != "png" else "")
           + (" --quick" if args.quick else f" --seconds {args.seconds:g}"))
    backend = backend or {"name": "torch"}
    quantization = backend.get("quantization")
    extra = {"backend": backend["name"], "precision": backend.get("precision", "fp32")}
    if quantization:  # measured by the int8 server at start-up on the run's test split, against its fp32 graph
        extra |= {"int8_accuracy_change": round(quantization["change"], 4), "int8_accuracy_n": quantization["n"],
                  "fp32_test_accuracy": round(quantization["fp32"], 4)}
    command = ("make bench BENCH=serve  # = " if args.model == "minilm" else "") + "python -m benchmarks serve" + how
    line = record("serve", "fastapi-per-request", unit="requests/s", higher_is_better=True,  # one line per backend
                  ours=ours["requests_per_s"], theirs=theirs["requests_per_s"],
                  quality_metric=f"accuracy of the answers ({args.requests})",
                  ours_quality=ours["accuracy"], theirs_quality=theirs["accuracy"], command=command,
                  write=not args.quick, errors=ours["errors"] + theirs["errors"],
                  ours_errors=ours["errors"], theirs_errors=theirs["errors"],
                  ours_requests=ours["requests"], theirs_requests=theirs["requests"],
                  ours_p50_ms=round(ours["p50_ms"], 2), ours_p99_ms=round(ours["p99_ms"], 2),
                  theirs_p50_ms=round(theirs["p50_ms"], 2), theirs_p99_ms=round(theirs["p99_ms"], 2),
                  clients=args.clients, seconds_per_side=args.seconds, model=WORKLOADS[args.model][0],
                  mean_requests_per_batch=batching["mean_requests_per_batch"], cpu_count=os.cpu_count(),
                  server_threads=torch.get_num_threads(), **extra)
    print(f"{side} {line['ours']:.1f} requests/s, p50 {line['ours_p50_ms']} ms, p99 {line['ours_p99_ms']} ms, "
          f"{line['ours_errors']} errors, {line['mean_requests_per_batch']} requests per forward pass | "
          f"fastapi-per-request {line['theirs']:.1f} requests/s, p50 {line['theirs_p50_ms']} ms, "
          f"p99 {line['theirs_p99_ms']} ms, {line['theirs_errors']} errors | {line['ratio']:.2f}x requests/s")
    print(f"accuracy of the answers: {side} {line['ours_quality']:.4f}, peer {line['theirs_quality']:.4f}"
          + (f"; int8 accuracy change on the test split {quantization['change']:+.4f} ({quantization['n']} examples)"
             if quantization else ""))
    print("result: " + json.dumps(line))
    if line["errors"]:
        return 1
    if not args.quick:
        print(f"target (>= 3x requests/s at {args.clients} clients): {'met' if line['ratio'] >= 3 else 'NOT met'}")
    return 0
