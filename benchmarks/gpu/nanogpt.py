"""nanoGPT's GPU Shakespeare-char recipe, re-created in our own words (the peer of benchmarks/gpu/lm.py).

karpathy/nanoGPT config/train_shakespeare_char.py on top of train.py's defaults: 6 layers, 6 heads,
384 wide, block 256, batch 64, dropout 0.2, no bias, AdamW lr 1e-3 (betas 0.9 / 0.99, weight decay
0.1 on matrices only, fused on CUDA), grad clip 1.0, 100 warmup iterations then cosine to 1e-4 at
iteration 5000, bf16 autocast, TF32 matmuls, torch.compile, a 200-batch loss estimate of both splits
every 250 iterations with a checkpoint whenever the val estimate improved (part of its time, as in
train.py) and a loss.item() every 10 iterations.

The model is benchmarks/lm_pretrain.py's baby-GPT re-creation (the CPU peer) with nanoGPT's three
dropouts added: after the embeddings, on the attention weights and after each residual projection.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.lm_pretrain import CausalSelfAttention, NanoGPT, NanoMLP

RECIPE = {"n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256, "batch_size": 64, "dropout": 0.2,
          "learning_rate": 1e-3, "min_lr": 1e-4, "warmup_iters": 100, "max_iters": 5000, "eval_interval": 250,
          "eval_iters": 200, "log_interval": 10, "weight_decay": 0.1, "betas": (0.9, 0.99), "grad_clip": 1.0}


class DropoutAttention(CausalSelfAttention):
    def __init__(self, n_embd: int, n_head: int, bias: bool, dropout: float):
        super().__init__(n_embd, n_head, bias)
        self.dropout, self.resid_dropout = dropout, nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class DropoutMLP(NanoMLP):
    def __init__(self, n_embd: int, bias: bool, dropout: float):
        super().__init__(n_embd, bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(super().forward(x))


class DropoutGPT(NanoGPT):
    """NanoGPT with nanoGPT's dropouts; the same parameters, initialised the same way."""

    def __init__(self, vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384, bias=False, dropout=0.2):
        super().__init__(vocab_size, block_size, n_layer, n_head, n_embd, bias)
        for block in self.h:
            old_attn, old_mlp = block.attn, block.mlp
            block.attn, block.mlp = DropoutAttention(n_embd, n_head, bias, dropout), DropoutMLP(n_embd, bias, dropout)
            block.attn.load_state_dict(old_attn.state_dict())
            block.mlp.load_state_dict(old_mlp.state_dict())
        self.drop = nn.Dropout(dropout)  # the base forward applies it to the embeddings



def train_nanogpt(train_ids: np.ndarray, val_ids: np.ndarray, device: str, *, recipe: dict = RECIPE,
                  compile_model: bool = True, check: Callable[[nn.Module, int], bool] | None = None,
                  check_every: int = 62, max_seconds: float = math.inf) -> dict:
    """Train as nanoGPT's train.py does; every `check_every` iterations `check(model, iter)` runs with the clock
    paused (the common yardstick) and ends training when it returns True. Returns the timings."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as train.py sets them
    try:
        return _train(train_ids, val_ids, device, recipe, compile_model, check, check_every, max_seconds)
    finally:  # the benchmarks after this one run with the settings they found
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _train(train_ids, val_ids, device, recipe, compile_model, check, check_every, max_seconds) -> dict:
    r = recipe
    cuda = device == "cuda"
    torch.manual_seed(1337)
    model = DropoutGPT(block_size=r["block_size"], n_layer=r["n_layer"], n_head=r["n_head"], n_embd=r["n_embd"],
                       dropout=r["dropout"]).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": r["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=r["learning_rate"], betas=r["betas"], fused=cuda)
    trained = torch.compile(model) if compile_model else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    block, batch = r["block_size"], r["batch_size"]
    data = {"train": torch.from_numpy(train_ids.astype(np.int64)), "val": torch.from_numpy(val_ids.astype(np.int64))}

    def get_batch(split: str):
        ids = data[split]
        ix = torch.randint(len(ids) - block, (batch,))
        x = torch.stack([ids[i : i + block] for i in ix])
        y = torch.stack([ids[i + 1 : i + 1 + block] for i in ix])
        if cuda:
            return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        return x, y

    def get_lr(it: int) -> float:
        if it < r["warmup_iters"]:
            return r["learning_rate"] * (it + 1) / (r["warmup_iters"] + 1)
        if it > r["max_iters"]:
            return r["min_lr"]
        ratio = (it - r["warmup_iters"]) / (r["max_iters"] - r["warmup_iters"])
        return r["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (r["learning_rate"] - r["min_lr"])

    @torch.no_grad()
    def estimate_loss() -> float:
        trained.eval()
        losses = {split: [] for split in ("train", "val")}
        for split, values in losses.items():
            for _ in range(r["eval_iters"]):
                with autocast:
                    values.append(trained(*get_batch(split))[1].item())
        trained.train()
        return sum(losses["val"]) / len(losses["val"])

    best_val = math.inf
    out_dir = Path(tempfile.mkdtemp(prefix="nanogpt-"))

    def evaluate_and_save(iter_num: int) -> None:
        """train.py's eval step: the estimates, and a checkpoint whenever val improved (always_save_checkpoint False)."""
        nonlocal best_val
        val = estimate_loss()
        if val < best_val:
            best_val = val
            if iter_num > 0:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "iter_num": iter_num,
                            "best_val_loss": best_val, "config": r}, out_dir / "ckpt.pt")

    paused, first_step_s, reached_at = 0.0, None, None
    start = time.perf_counter()
    X, Y = get_batch("train")
    iter_num = 0
    while iter_num <= r["max_iters"]:
        for group in optimizer.param_groups:
            group["lr"] = get_lr(iter_num)
        if iter_num % r["eval_interval"] == 0:
            evaluate_and_save(iter_num)
        with autocast:
            _, loss = trained(X, Y)
        X, Y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), r["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if iter_num % r["log_interval"] == 0:
            loss.item()
        iter_num += 1
        if first_step_s is None:  # the compilation lands in the first step
            first_step_s = time.perf_counter() - start
        if check is not None and iter_num % check_every == 0:
            if cuda:
                torch.cuda.synchronize()
            pause = time.perf_counter()
            done = check(model, iter_num)
            paused += time.perf_counter() - pause
            if done:
                reached_at = time.perf_counter() - start - paused
                break
        if time.perf_counter() - start - paused >= max_seconds:
            break
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start - paused
    shutil.rmtree(out_dir)
    return {"model": model, "seconds": seconds, "steps": iter_num, "first_step_s": first_step_s,
            "seconds_to_target": reached_at}
