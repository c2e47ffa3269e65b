"""BENCHMARKS.md target 1: training-engine overhead on the tutorial MLP (784-128-10, SGD lr 0.01).

Three contenders, run alternately in one process on the same MNIST tensors, same epochs:
- ours: modelladder.train.loop.fit, the loop behind `ladder train` (checkpoint writes included);
- tutorial-dataloader-loop: the PyTorch quickstart loop, re-created here in our own words
  (DataLoader over a TensorDataset, shuffle=True, zero_grad after step, loss.item() every 100 batches);
- hand-loop-in-memory: the same loop slicing in-memory tensors with a random permutation.
Prints samples/s ratios and the test accuracy each reaches, and appends to results/train_overhead.jsonl.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import alternate, median, record
from modelladder.config import DataConfig, TrainConfig
from modelladder.data.load import load_data
from modelladder.models.mlp import MLP
from modelladder.tasks.classification import Classification
from modelladder.train.loop import fit

LR = 0.01


class TutorialNet(nn.Module):
    """The quickstart's network shape, at the 784-128-10 size the issue names."""

    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.inference_mode():
        return (model(X).argmax(1) == y).float().mean().item()


def tutorial_dataloader_loop(X, y, Xt, yt, batch_size, epochs, seed):
    torch.manual_seed(seed)
    model = TutorialNet()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=batch_size,
                                         shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for batch, (xb, yb) in enumerate(loader):
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if batch % 100 == 0:
                loss.item()
    seconds = time.perf_counter() - start
    return {"samples_per_s": epochs * len(X) / seconds, "test_accuracy": accuracy(model, Xt, yt)}


def hand_loop_in_memory(X, y, Xt, yt, batch_size, epochs, seed):
    torch.manual_seed(seed)
    model = TutorialNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(X))
        for batch, i in enumerate(range(0, len(X), batch_size)):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if batch % 100 == 0:
                loss.item()
    seconds = time.perf_counter() - start
    return {"samples_per_s": epochs * len(X) / seconds, "test_accuracy": accuracy(model, Xt, yt)}


def ours(data, Xt, yt, batch_size, epochs, seed):
    torch.manual_seed(seed)
    model = MLP(MLP.Config(hidden=[128]), data.input_shape, 10)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer={"name": "sgd", "lr": LR},
                      schedule={"name": "constant"},  # the tutorial keeps its lr fixed
                      progress=False)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        fit(model, Classification(10), data, cfg, seed=seed, run_dir=Path(run_dir))
        seconds = time.perf_counter() - start
    return {"samples_per_s": epochs * len(data.y_train) / seconds, "test_accuracy": accuracy(model, Xt, yt)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks train_overhead")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 epoch, 10,000 examples: checks it runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args(argv)
    rounds, epochs = (1, 1) if args.quick else (args.rounds, args.epochs)
    torch.set_num_threads(args.threads)
    data = load_data(DataConfig(dataset="mnist", split={"val": 0}, limit=10_000 if args.quick else None),
                     seed=0)
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    Xt, yt = torch.from_numpy(data.X_test), torch.from_numpy(data.y_test)
    command = "make bench  # = python -m benchmarks train_overhead" + (" --quick" if args.quick else "")
    print(f"MNIST train {len(X)} / test {len(Xt)}, {epochs} epoch(s), {rounds} rounds, "
          f"{args.threads} threads, torch {torch.__version__}")
    lines = []
    for bs in args.batch_sizes:
        print(f"batch {bs}:")
        results = alternate({
            "ours": lambda: ours(data, Xt, yt, bs, epochs, seed=0),
            "tutorial-dataloader-loop": lambda: tutorial_dataloader_loop(X, y, Xt, yt, bs, epochs, seed=0),
            "hand-loop-in-memory": lambda: hand_loop_in_memory(X, y, Xt, yt, bs, epochs, seed=0),
        }, rounds)
        for peer in ["tutorial-dataloader-loop", "hand-loop-in-memory"]:
            line = record("train_overhead", peer, unit="samples/s", higher_is_better=True,
                          ours=median(results["ours"], "samples_per_s"),
                          theirs=median(results[peer], "samples_per_s"),
                          quality_metric="test_accuracy",
                          ours_quality=median(results["ours"], "test_accuracy"),
                          theirs_quality=median(results[peer], "test_accuracy"),
                          command=command, write=not args.quick, batch_size=bs, epochs=epochs)
            lines.append(line)
            print(f"  ours {line['ours']:,.0f} vs {peer} {line['theirs']:,.0f} samples/s: "
                  f"{line['ratio']:.2f}x  (test accuracy {line['ours_quality']:.4f} vs {line['theirs_quality']:.4f})")
    quality_gap = max(abs(l["ours_quality"] - l["theirs_quality"]) for l in lines)
    if quality_gap > 0.02:
        print(f"quality differs by {quality_gap:.3f}: the speed comparison is not like for like")
        return 1
    return 0
