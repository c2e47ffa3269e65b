"""Muon (Keller Jordan, 2024) for the hidden weight matrices, AdamW for everything else, as one optimizer.

Muon keeps a momentum of each matrix's gradient and steps along its orthogonalised direction: five
Newton-Schulz iterations (the quintic of torch.optim.Muon and Keller's muon.py) map the momentum
G = U S V^T to roughly U V^T, so every direction of the matrix moves at the same rate. The step is
scaled by sqrt(max(1, rows / cols)) (Keller's "original" adjustment) and weight decay is decoupled.

Why not torch.optim.Muon: torch 2.13's orthogonalises in bfloat16, which runs at ~1 GFLOP/s on CPUs
without fast bf16 (BENCHMARKS.md); this one runs the iterations in the gradient's dtype (fp32 here),
and it updates the other parameters (embeddings, norms, biases, an output head) with fused AdamW in the
same step, so the loop, the schedule (each group's lr_scale) and checkpoints see one optimizer.

Cost: per m x n matrix (m <= n) and iteration, 4 m^2 n + 2 m^3 FLOPs; for nanoGPT's baby GPT (4 blocks
of 128) ~2.3 GFLOP per step, over half of a batch-12 step's own FLOPs: it added ~20 ms to a ~45 ms
step at two threads, and Muon still won by needing ~40% fewer steps for the same held-out loss
(configs/pretrain/shakespeare_char.yaml, docs/benchmarks.md). Three or four iterations instead of five
lost more in loss than they saved in time there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.adamw import adamw

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Keller's quintic: the largest slope at zero that still converges


def orthogonalize(g: Tensor, steps: int = 5, eps: float = 1e-7) -> Tensor:
    """Roughly U V^T of each matrix g = U S V^T (the last two dimensions; leading ones are a batch) by `steps`
    Newton-Schulz iterations (singular values land in ~[0.7, 1.2])."""
    a, b, c = NS_COEFFICIENTS
    tall = g.shape[-2] > g.shape[-1]
    x = g.mT if tall else g  # the Gram matrix of the shorter side is the cheaper one
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm <= Frobenius norm <= 1
    batched = x.dim() == 3
    mm = torch.baddbmm if batched else torch.addmm
    for _ in range(steps):
        gram = x @ x.mT
        x = mm(x, mm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


def hidden_matrices(model: nn.Module) -> set[Tensor]:
    """The parameters Muon updates: the 2-D weights of nn.Linear layers, except a layer named `head` (an
    output projection, like the embeddings, is left to AdamW as in Keller's recipe)."""
    return {module.weight for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] != "head" and module.weight.dim() == 2}


def split_groups(model: nn.Module, groups: list[dict], muon_lr: float, lr: float) -> list[dict]:
    """Each group (from optim.param_groups) split in two: its hidden matrices (muon, at muon_lr times the group's
    lr_scale) and the rest (AdamW at lr times it). The schedule scales both through lr_scale."""
    matrices = hidden_matrices(model)
    out = []
    for group in groups:
        scale = group["lr_scale"]
        muon = [p for p in group["params"] if p in matrices]
        rest = [p for p in group["params"] if p not in matrices]
        if muon:
            out.append({"params": muon, "muon": True, "lr": muon_lr * scale, "lr_scale": muon_lr / lr * scale})
        if rest:
            out.append({"params": rest, "muon": False, "lr": lr * scale, "lr_scale": scale})
    return out


class MuonAdamW(torch.optim.Optimizer):
    """Groups with "muon": True take Muon's update (momentum, nesterov, ns_steps); the others fused AdamW's
    (betas, eps). weight_decay is decoupled in both (multiplied by the group's lr)."""

    def __init__(self, groups: list[dict], *, lr: float, weight_decay: float = 0.0, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        defaults = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
                    "ns_steps": ns_steps, "betas": betas, "eps": eps, "muon": False}
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (self._muon if group["muon"] else self._adamw)(group)
        return loss

    def _muon(self, group: dict) -> None:
        """Momentum, then the orthogonalised step; matrices of one shape go through Newton-Schulz together
        (batched matmuls: a few larger kernels instead of many small ones)."""
        lr, decay, momentum = group["lr"], group["weight_decay"], group["momentum"]
        by_shape: dict[tuple[int, ...], list[tuple[Tensor, Tensor]]] = {}
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buf = state["momentum_buffer"]
            buf.mul_(momentum).add_(p.grad)
            g = p.grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            by_shape.setdefault(tuple(p.shape), []).append((p, g))
        for shape, pairs in by_shape.items():
            updates = orthogonalize(torch.stack([g for _, g in pairs]), group["ns_steps"])
            scale = max(1.0, shape[0] / shape[1]) ** 0.5
            params = [p for p, _ in pairs]
            if decay:
                torch._foreach_mul_(params, 1 - lr * decay)
            torch._foreach_add_(params, list(updates.unbind(0)), alpha=-lr * scale)

    def _adamw(self, group: dict) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        for p in params:
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
        states = [self.state[p] for p in params]
        beta1, beta2 = group["betas"]
        adamw(params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
              [], [s["step"] for s in states], fused=True, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
              weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
