"""GPU benchmark: time to held-out loss 1.47 on Tiny Shakespeare characters, ours vs nanoGPT, with MFU.

- ours: `ladder pretrain configs/pretrain/shakespeare_char_gpu.yaml` (nanoGPT's GPU size, our blocks, CUDA,
  bf16, no torch.compile) through modelladder.verbs.pretrain; its own end-of-epoch validation (every
  non-overlapping 257-character window of the held-out 10%, every 62 steps) is the yardstick and part of
  its time, and a callback ends the run at the first validation <= the target.
- nanogpt: benchmarks/gpu/nanogpt.py, nanoGPT's train.py with config/train_shakespeare_char.py (compiled;
  its compilation, 200-batch estimates, checkpoints and log syncs are part of its time). Every 62
  iterations, with its clock paused, it is scored on the same held-out windows, and ends at the first score
  <= the target.

Both stop after `max_seconds` of training (check.py's --lm-seconds, 150) if the target is not reached
first: the check fits its ~10-minute device lease that way. MFU is nanoGPT's estimate_mfu count (6 N +
12 L H Q T FLOPs per token) over each run's whole timed training, against the card's dense bf16 peak (PEAKS).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.gpu.nanogpt import RECIPE, train_nanogpt
from benchmarks.lm_pretrain import flops_per_step
from modelladder.config import load_run_config
from modelladder.verbs.pretrain import build_language_model, prepare_data, pretrain_run

GPU_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "shakespeare_char_gpu.yaml"
TARGET = 1.47  # nanoGPT's reported best val loss with this recipe (1.4697 in its README)
# dense bf16 tensor-core peaks in TFLOP/s, matched in order against torch.cuda.get_device_name()
PEAKS = [("H200", 989.0), ("GH200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0),
         ("H800", 989.0), ("A100", 312.0), ("L40S", 362.0), ("L4", 121.0)]
# --dry-run: a tiny model on the first 20,000 characters, on the CPU: checks the plumbing, measures nothing
DRY_OURS = ["train.device=cpu", "train.precision=fp32", "train.max_steps=2", "train.batch_size=4",
            "model.max_length=32", "model.dim=32", "model.depth=1", "model.heads=2", "data.limit=20000"]
DRY_PEER = {**RECIPE, "n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 4, "max_iters": 2,
            "eval_iters": 2}


def card_peak(name: str) -> float | None:
    """The dense bf16 peak (TFLOP/s) of a card named `name`, or None when PEAKS does not know it."""
    return next((peak for key, peak in PEAKS if key in name), None)


class Reached(Exception):
    """Raised by TargetWatch to end our run at the target."""


class TargetWatch:
    """A training-loop callback: the seconds from the loop's start to the first validation <= target."""

    def __init__(self, target: float):
        self.target, self.seconds, self.record = target, None, None

    def on_fit_start(self, _info):
        self.start = time.perf_counter()

    def on_epoch_end(self, record):
        self.record = record
        if record.get("val_loss", math.inf) <= self.target:
            self.seconds = time.perf_counter() - self.start
            raise Reached


def run_ours(overrides: list[str], max_seconds: float) -> dict:
    cfg = load_run_config(GPU_RECIPE, [*overrides, f"train.max_seconds={max_seconds}", "train.progress=false"])
    data = prepare_data(cfg)  # tokenised into the cache, outside the timing
    watch = TargetWatch(TARGET)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        try:
            result = pretrain_run(cfg, Path(run_dir), data=data, callbacks=[watch])
            steps, val_loss = result["steps"], result["metrics"].get("loss")
        except Reached:
            steps, val_loss = watch.record["step"], watch.record["val_loss"]
        if cfg.train.device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - watch.start
    m = cfg.model
    model = build_language_model(cfg)
    n_params = sum(p.numel() for p in model.parameters()) - (m.max_length * m.dim if m.positions == "learned" else 0)
    flops = flops_per_step(n_params, m.depth, m.heads, m.dim, m.max_length, cfg.train.batch_size) * steps
    return {"seconds": seconds, "seconds_to_target": watch.seconds, "steps": steps,
            "val_loss": val_loss, "tflops": flops / seconds / 1e12, "params": n_params,
            "setup_seconds": round(watch.start - start, 2)}


def held_out_windows(ids: np.ndarray, context: int, every: int = 1) -> torch.Tensor:
    """Every non-overlapping (context + 1)-token window of the held-out ids (every `every`-th of them)."""
    starts = np.arange((len(ids) - 1) // context)[::every] * context
    return torch.from_numpy(np.asarray(ids)[starts[:, None] + np.arange(context + 1)].astype(np.int64))


def run_nanogpt(text: str, device: str, recipe: dict, max_seconds: float, every: int, compile_model: bool) -> dict:
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    n = int(0.9 * len(text))
    train_ids = np.array([stoi[c] for c in text[:n]], dtype=np.uint16)  # prepare.py
    val_ids = np.array([stoi[c] for c in text[n:]], dtype=np.uint16)
    windows = held_out_windows(val_ids, recipe["block_size"], every).to(device)
    losses: list[float] = []

    @torch.no_grad()
    def check(model, _iteration) -> bool:
        model.eval()
        total = 0.0
        for batch in windows.split(256):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                logits = model(batch[:, :-1])[0]
            total += F.cross_entropy(logits.flatten(0, 1).float(), batch[:, 1:].flatten(), reduction="sum").item()
        model.train()
        losses.append(total / (windows.shape[0] * recipe["block_size"]))
        return losses[-1] <= TARGET

    context_steps = (len(train_ids) - 1) // recipe["block_size"] // recipe["batch_size"] + 1  # our epoch: 62
    out = train_nanogpt(train_ids, val_ids, device, recipe=recipe, compile_model=compile_model, check=check,
                        check_every=context_steps, max_seconds=max_seconds)
    model = out.pop("model")
    if not losses or out["steps"] % context_steps:
        check(model, out["steps"])
    r = recipe
    n_params = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()
    flops = flops_per_step(n_params, r["n_layer"], r["n_head"], r["n_embd"], r["block_size"], r["batch_size"])
    return {**out, "val_loss": losses[-1], "tflops": flops * out["steps"] / out["seconds"] / 1e12,
            "params": n_params, "compiled": compile_model}


def main(dry_run: bool = False, max_seconds: float = 150.0) -> dict:
    """Both contenders once (ours first), the ratio of their times to the target and each one's MFU."""
    device = "cpu" if dry_run else "cuda"
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)"
    peak = card_peak(card) if device == "cuda" else None
    cfg = load_run_config(GPU_RECIPE, DRY_OURS if dry_run else [])
    text = Path(prepare_data(cfg).corpus.files[0]).read_text(encoding="utf-8")
    if dry_run:
        text = text[:20_000]
    print(f"lm: {card}, bf16 peak {peak} TFLOP/s; target held-out loss {TARGET}; at most {max_seconds:.0f} s of "
          f"training each; torch {torch.__version__}", flush=True)
    ours = run_ours(DRY_OURS if dry_run else [], max_seconds)
    print(f"  ours    {_line(ours, peak)}", flush=True)
    try:
        theirs = run_nanogpt(text, device, DRY_PEER if dry_run else RECIPE, max_seconds, 1, not dry_run)
    except Exception as err:  # noqa: BLE001 - torch.compile can fail on a new image: measure eager instead
        print(f"  nanogpt compiled failed ({type(err).__name__}: {err}); eager instead", flush=True)
        theirs = run_nanogpt(text, device, DRY_PEER if dry_run else RECIPE, max_seconds, 1, False)
    print(f"  nanogpt {_line(theirs, peak)}", flush=True)
    both = ours["seconds_to_target"] and theirs["seconds_to_target"]
    result = {"card": card, "peak_tflops": peak, "target": TARGET, "max_seconds": max_seconds, "ours": ours,
              "nanogpt": theirs, "dry_run": dry_run,
              "ratio_to_target": theirs["seconds_to_target"] / ours["seconds_to_target"] if both else None}
    for name in ("ours", "nanogpt"):
        result[name]["mfu"] = result[name]["tflops"] / peak if peak else None
    verdict = f"{result['ratio_to_target']:.2f}x nanoGPT's speed to {TARGET}" if both else \
        f"not both reached {TARGET} within {max_seconds:.0f} s"
    print(f"lm: {verdict}", flush=True)
    return result


def _line(r: dict, peak: float | None) -> str:
    reached = f"{r['seconds_to_target']:.1f} s to target" if r["seconds_to_target"] else "target not reached"
    mfu = f", MFU {r['tflops'] / peak:.1%}" if peak else ""
    loss = f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "n/a"
    return f"{reached}; {r['steps']} steps in {r['seconds']:.1f} s, held-out loss {loss}, {r['tflops']:.1f} TFLOP/s{mfu}"
