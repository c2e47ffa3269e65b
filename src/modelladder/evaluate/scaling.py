"""Scaling-law numerics for `ladder scale` (verbs/scale.py): pure numpy / scipy, no torch.

- FLOPs per token: nanoGPT's estimate_mfu count, 6 N + 12 L d T (N the non-embedding parameters, L blocks of
  width d, context T): 6 N for the forward and backward matmuls of the weights, 12 L d T for attention's scores
  and weighted sums.
- Approach 3 of the Chinchilla paper (Hoffmann et al. 2022): L(N, D) = E + A / N^alpha + B / D^beta fitted by
  minimising the Huber loss (delta 1e-3) between log L and log of the law written as a log-sum-exp,
  LSE(a - alpha log N, b - beta log D, e) with A = exp(a), B = exp(b), E = exp(e), with L-BFGS from a grid of
  initialisations (the paper's grid, evaluated at once; L-BFGS from its STARTS best points), keeping the best.
- Approach 2: per compute budget a parabola of the loss in log N, whose minimum is N_opt(C); then
  N_opt = k C^a and D_opt = k' C^b fitted in log-log.
- Intervals: the percentile bootstrap over runs (runs resampled with replacement, both fits redone).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

HUBER_DELTA = 1e-3  # as in the Chinchilla paper
INIT_GRID = {  # log A, log B, log E, alpha, beta: the Chinchilla paper's grid of initialisations
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0), "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0), "alpha": (0.0, 0.5, 1.0, 1.5, 2.0), "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}
STARTS = 8  # L-BFGS runs, from the grid points with the lowest objective
LAW_PARAMS = ("E", "A", "B", "alpha", "beta")


def flops_per_token(n_params: float, layers: int, dim: int, context: int, *, attention: bool = True) -> float:
    """Training FLOPs per token: 6 N (N non-embedding parameters), + 12 L d T for attention (nanoGPT) when the
    model has it (a recurrent network's N covers its whole step)."""
    return 6.0 * n_params + (12.0 * layers * dim * context if attention else 0.0)


@dataclass
class Law:
    """L(N, D) = E + A / N^alpha + B / D^beta, and the Huber objective it reached."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float = float("nan")

    def loss(self, n, d):
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    def as_dict(self) -> dict:
        return asdict(self)


def _terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """(3, ..., runs): a - alpha log N, b - beta log D, e; theta (5,) or (5, starts)."""
    a, b, e, alpha, beta = (t[..., None] for t in theta)
    return np.stack(np.broadcast_arrays(a - alpha * log_n, b - beta * log_d, e))


def _huber(residual: np.ndarray) -> np.ndarray:
    """The Huber loss divided by delta (the same minimum; values near |residual|, which suits L-BFGS's tolerances)."""
    small = np.abs(residual) <= HUBER_DELTA
    return np.where(small, 0.5 * residual**2 / HUBER_DELTA, np.abs(residual) - 0.5 * HUBER_DELTA)


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray
               ) -> tuple[float, np.ndarray]:
    """The summed (scaled) Huber loss of the log-residuals and its gradient in (a, b, e, alpha, beta)."""
    terms = _terms(theta, log_n, log_d)
    top = terms.max(axis=0)
    exp = np.exp(terms - top)
    total = exp.sum(axis=0)
    residual = top + np.log(total) - log_loss
    slope = np.clip(residual / HUBER_DELTA, -1.0, 1.0)  # d huber / d residual
    weights = exp / total * slope  # d LSE / d term, times the slope
    grad = np.array([weights[0].sum(), weights[1].sum(), weights[2].sum(),
                     -(weights[0] * log_n).sum(), -(weights[1] * log_d).sum()])
    return float(_huber(residual).sum()), grad


def _best_starts(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray, keep: int) -> list[np.ndarray]:
    """The `keep` points of INIT_GRID with the lowest objective, evaluated all at once."""
    grid = np.array(list(itertools.product(*INIT_GRID.values()))).T  # (5, points)
    terms = _terms(grid, log_n, log_d)
    residual = logsumexp(terms, axis=0) - log_loss
    order = np.argsort(_huber(residual).sum(axis=-1))
    return [grid[:, i] for i in order[:keep]]


def fit_law(n, d, loss, starts: list[np.ndarray] | None = None) -> Law:
    """Approach 3: the law of the runs (parameters `n`, tokens `d`, held-out `loss`): L-BFGS from the STARTS
    best points of INIT_GRID (or from `starts`: (a, b, e, alpha, beta) vectors), the best result kept."""
    log_n, log_d, log_loss = (np.log(np.asarray(v, np.float64)) for v in (n, d, loss))
    if starts is None:
        starts = _best_starts(log_n, log_d, log_loss, STARTS)
    bounds = [(None, None), (None, None), (None, None), (0.0, 3.0), (0.0, 3.0)]
    best = None
    with threadpool_limits(limits=1):  # L-BFGS's tiny BLAS calls: threads only wait for each other (50x slower)
        for start in starts:
            res = minimize(_objective, start, args=(log_n, log_d, log_loss), jac=True, method="L-BFGS-B",
                           bounds=bounds, options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-10})
            if best is None or res.fun < best.fun:
                best = res
    a, b, e, alpha, beta = best.x
    return Law(E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta),
               objective=float(best.fun * HUBER_DELTA))


def law_start(law: Law) -> np.ndarray:
    """(log A, log B, log E, alpha, beta): an L-BFGS start (a term that underflowed to 0 starts very small)."""
    logs = np.log(np.maximum([law.A, law.B, law.E], 1e-300))
    return np.array([*logs, law.alpha, law.beta])


def compute_optimal(law: Law, budget: float, per_token: Callable[[float], float], n_range: tuple[float, float]
                    ) -> dict:
    """The N that minimises the law at compute `budget` when D = budget / per_token(N), searched in log N over
    `n_range`: {"n", "d", "loss"}."""
    lo, hi = np.log(n_range[0]), np.log(n_range[1])

    def at(log_n: float) -> float:
        n = np.exp(log_n)
        return float(law.loss(n, budget / per_token(n)))

    best = minimize_scalar(at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    n = float(np.exp(best.x))
    return {"n": n, "d": budget / per_token(n), "loss": float(best.fun)}


def isoflop_minima(budget, n, loss) -> list[dict]:
    """Approach 2, first half: per budget with at least 3 sizes, the parabola loss = c0 + c1 x + c2 x^2 in
    x = log N and its minimum; a budget whose parabola opens downwards, or has its minimum outside the sizes
    trained there (an extrapolation), is reported without one, and why."""
    budget, n, loss = (np.asarray(v, np.float64) for v in (budget, n, loss))
    out = []
    for c in np.unique(budget):
        here = budget == c
        if len(np.unique(n[here])) < 3:
            continue
        c2, c1, c0 = np.polyfit(np.log(n[here]), loss[here], 2)
        row = {"budget": float(c), "parabola": [float(c0), float(c1), float(c2)], "n_opt": None, "loss_opt": None,
               "why_none": None}
        x = -c1 / (2 * c2) if c2 > 0 else None
        if x is None:
            row["why_none"] = "the parabola opens downwards"
        elif not n[here].min() <= np.exp(x) <= n[here].max():
            row["why_none"] = f"the parabola's minimum, N = {np.exp(x):,.0f}, lies outside the sizes trained"
        else:
            row.update(n_opt=float(np.exp(x)), loss_opt=float(c0 + c1 * x + c2 * x * x))
        out.append(row)
    return out


def power_fit(x, y) -> dict | None:
    """y = k x^p fitted in log-log by least squares: {"k", "p"}; None with fewer than 2 distinct x."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(np.unique(x)) < 2:
        return None
    p, log_k = np.polyfit(np.log(x), np.log(y), 1)
    return {"k": float(np.exp(log_k)), "p": float(p)}


def approach2(budget, n, loss, per_token: Callable[[float], float]) -> dict:
    """The IsoFLOP minima and N_opt = k C^a, D_opt = k' C^b (D_opt = C / per_token(N_opt)) over the budgets that
    have one; "a" and "b" are None with fewer than two such budgets."""
    minima = isoflop_minima(budget, n, loss)
    found = [m for m in minima if m["n_opt"] is not None]
    for m in found:
        m["d_opt"] = m["budget"] / per_token(m["n_opt"])
    cs = [m["budget"] for m in found]
    n_fit = power_fit(cs, [m["n_opt"] for m in found])
    d_fit = power_fit(cs, [m["d_opt"] for m in found])
    return {"minima": minima, "n_opt_fit": n_fit, "d_opt_fit": d_fit,
            "a": n_fit["p"] if n_fit else None, "b": d_fit["p"] if d_fit else None}


def bootstrap(runs: dict[str, np.ndarray], law: Law, per_token: Callable[[float], float], *, samples: int,
              seed: int, predict_at: list[float] = (), n_range: tuple[float, float] = (1.0, 1e12)) -> dict:
    """Percentile 95% intervals of alpha, beta, E, A, B, a, b (and of the compute-optimal loss, N and D at each
    budget of `predict_at`) over `samples` resamplings of the runs (`runs`: arrays "budget", "n", "d", "loss");
    each refit starts from `law` and the two best grid points. {name: [low, high], or None when fewer than half
    of the resamplings gave a value}."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    with threadpool_limits(limits=1):
        for _ in range(samples):
            pick = rng.integers(0, len(runs["loss"]), len(runs["loss"]))
            values = _refit({k: v[pick] for k, v in runs.items()}, law, per_token, predict_at, n_range)
            for k, v in values.items():
                if v is not None and np.isfinite(v):
                    draws.setdefault(k, []).append(v)
    names = [*LAW_PARAMS, "a", "b", *(f"{what}@{c:g}" for c in predict_at for what in ("loss", "n", "d"))]
    return {k: [float(np.percentile(draws[k], 2.5)), float(np.percentile(draws[k], 97.5))]
            if len(draws.get(k, [])) >= 0.5 * samples else None for k in names}


def _refit(runs: dict[str, np.ndarray], law: Law, per_token: Callable[[float], float], predict_at,
           n_range: tuple[float, float]) -> dict[str, float | None]:
    """Both fits of one resampling of the runs, and the compute-optimal runs at `predict_at`."""
    n, d, loss = runs["n"], runs["d"], runs["loss"]
    fitted = fit_law(n, d, loss, [law_start(law), *_best_starts(np.log(n), np.log(d), np.log(loss), 2)])
    values = {k: getattr(fitted, k) for k in LAW_PARAMS}
    two = approach2(runs["budget"], n, loss, per_token)
    values.update(a=two["a"], b=two["b"])
    for c in predict_at:
        opt = compute_optimal(fitted, c, per_token, n_range)
        values.update({f"loss@{c:g}": opt["loss"], f"n@{c:g}": opt["n"], f"d@{c:g}": opt["d"]})
    return values
