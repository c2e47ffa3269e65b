"""Why `ladder` sets GOMP_SPINCOUNT=10000 (src/modelladder/openmp.py): `fit` on the tutorial MLP (784-128-10,
SGD lr 0.01, batch 64, 2 threads) under three OpenMP wait settings, on the machine as it is and with two
busy processes beside it (the shared-machine case). libgomp reads its settings once, when torch loads, so
each setting runs in a fresh child process; the settings alternate within each round (A B C A B C ...).
Prints samples/s (the median of the rounds), and ours (GOMP_SPINCOUNT=10000) against the libgomp default
and against OMP_WAIT_POLICY=PASSIVE; appends both ratios to results/openmp_wait.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchmarks.common import record

# one child: load MNIST, train once untimed (allocator growth, lazy imports), then time `fit` once
CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import torch
from modelladder.config import DataConfig, TrainConfig
from modelladder.data.load import load_data
from modelladder.models.mlp import MLP
from modelladder.tasks.classification import Classification
from modelladder.train.loop import evaluate, fit
torch.set_num_threads(2)
limit, epochs = int(sys.argv[1]), int(sys.argv[2])
data = load_data(DataConfig(dataset="mnist", split={"val": 0}, limit=limit), seed=0)
cfg = TrainConfig(epochs=epochs, batch_size=64, optimizer={"name": "sgd", "lr": 0.01},
                  schedule={"name": "constant"}, progress=False)
for timed in (False, True):
    torch.manual_seed(0)
    model = MLP(MLP.Config(hidden=[128]), data.input_shape, 10)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        fit(model, Classification(10), data, cfg, seed=0, run_dir=Path(run_dir))
        seconds = time.perf_counter() - start
accuracy = evaluate(model, Classification(10), data.X_test, data.y_test)["accuracy"]
print(json.dumps({"samples_per_s": epochs * len(data.y_train) / seconds, "test_accuracy": accuracy}))
"""
SETTINGS = {
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "libgomp default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}
BUSY = "while True: pass"


def child(setting: dict, limit: int, epochs: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | setting
    result = subprocess.run([sys.executable, "-c", CHILD, str(limit), str(epochs)], env=env, capture_output=True,
                            text=True, timeout=900, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(limit: int, epochs: int, rounds: int) -> dict[str, dict]:
    runs = {name: [] for name in SETTINGS}
    for _ in range(rounds):
        for name, setting in SETTINGS.items():
            runs[name].append(child(setting, limit, epochs))
    return {name: {"samples_per_s": statistics.median(r["samples_per_s"] for r in rs),
                   "test_accuracy": rs[0]["test_accuracy"]} for name, rs in runs.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks openmp_wait")
    parser.add_argument("--quick", action="store_true", help="1 round on 5,000 images: checks it runs")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    # quiet: all 60,000 images, 2 epochs; beside busy processes the default setting is ~200x slower, so 10,000 x 1
    cases = {"quiet": (5_000 if args.quick else 60_000, 1 if args.quick else 2, 0),
             "2 busy processes": (5_000 if args.quick else 10_000, 1, 2)}
    for case, (limit, epochs, busy) in cases.items():
        hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
        try:
            results = measure(limit, epochs, rounds)
        finally:
            for hog in hogs:
                hog.kill()
        print(f"{case} ({limit} images x {epochs} epoch(s), batch 64, median of {rounds}):")
        for name, r in results.items():
            print(f"  {name:24s} {r['samples_per_s']:>10,.0f} samples/s  test accuracy {r['test_accuracy']:.4f}")
        ours = results["GOMP_SPINCOUNT=10000"]
        for peer in ["libgomp default", "OMP_WAIT_POLICY=PASSIVE"]:
            line = record("openmp_wait", peer, unit="samples/s", higher_is_better=True, ours=ours["samples_per_s"],
                          theirs=results[peer]["samples_per_s"], quality_metric="test_accuracy",
                          ours_quality=ours["test_accuracy"], theirs_quality=results[peer]["test_accuracy"],
                          command="python -m benchmarks openmp_wait", write=not args.quick, case=case,
                          images=limit, epochs=epochs, batch_size=64)
            print(f"  GOMP_SPINCOUNT=10000 vs {peer}: {line['ratio']:.2f}x")
    return 0
