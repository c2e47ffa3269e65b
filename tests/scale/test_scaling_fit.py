"""evaluate/scaling.py on synthetic data: the fits recover the law they were drawn from (pure numpy / scipy)."""

from __future__ import annotations

import numpy as np
import pytest

from modelladder.evaluate import scaling

TRUE = scaling.Law(E=1.2, A=40.0, B=60.0, alpha=0.4, beta=0.35)
BUDGETS = [1e12, 3e12, 1e13, 3e13]
SIZES = [1e4, 3e4, 1e5, 3e5, 1e6]


def per_token(n):
    return 6.0 * n


def synthetic(noise: float, seed: int = 0) -> dict[str, np.ndarray]:
    """An IsoFLOP grid (D = C / 6N) whose losses follow TRUE with multiplicative noise."""
    budget, n = (np.array(v, np.float64).ravel() for v in np.meshgrid(BUDGETS, SIZES, indexing="ij"))
    d = budget / per_token(n)
    loss = TRUE.loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, len(n)))
    return {"budget": budget, "n": n, "d": d, "loss": loss}


def test_flops_per_token_is_nanogpts_count():
    assert scaling.flops_per_token(1000, layers=2, dim=32, context=64) == 6 * 1000 + 12 * 2 * 32 * 64


def test_approach3_recovers_a_noisy_law():
    runs = synthetic(noise=0.003)
    law = scaling.fit_law(runs["n"], runs["d"], runs["loss"])
    assert law.alpha == pytest.approx(TRUE.alpha, abs=0.05)
    assert law.beta == pytest.approx(TRUE.beta, abs=0.05)
    assert law.E == pytest.approx(TRUE.E, abs=0.1)
    predicted = law.loss(runs["n"], runs["d"])
    assert np.max(np.abs(predicted / runs["loss"] - 1)) < 0.015


def test_approach3_is_exact_without_noise():
    runs = synthetic(noise=0.0)
    law = scaling.fit_law(runs["n"], runs["d"], runs["loss"])
    for name in scaling.LAW_PARAMS:
        assert getattr(law, name) == pytest.approx(getattr(TRUE, name), rel=0.02), name


def test_compute_optimal_matches_chinchillas_closed_form():
    """With C = 6 N D: N_opt = G (C / 6)^(beta / (alpha + beta)), G = (alpha A / (beta B))^(1 / (alpha + beta))."""
    a, b = TRUE.alpha, TRUE.beta
    g = (a * TRUE.A / (b * TRUE.B)) ** (1 / (a + b))
    opt = scaling.compute_optimal(TRUE, 1e15, per_token, (1e2, 1e12))
    assert opt["n"] == pytest.approx(g * (1e15 / 6) ** (b / (a + b)), rel=1e-3)
    assert opt["d"] == pytest.approx(1e15 / 6 / opt["n"])
    assert opt["loss"] == pytest.approx(float(TRUE.loss(opt["n"], opt["d"])))


def test_approach2_finds_the_isoflop_minima():
    """Losses that are exact parabolas in log N with a known minimum per budget, N_opt = 0.1 C^0.5."""
    budget, n, loss = [], [], []
    for c in BUDGETS:
        best = 0.1 * c**0.5
        for size in np.geomspace(best / 20, best * 20, 5):
            budget.append(c)
            n.append(size)
            loss.append(2.0 + 0.05 * np.log(size / best) ** 2)
    two = scaling.approach2(budget, n, loss, per_token)
    for m, c in zip(two["minima"], BUDGETS, strict=True):
        assert m["budget"] == c and m["n_opt"] == pytest.approx(0.1 * c**0.5, rel=1e-6)
        assert m["loss_opt"] == pytest.approx(2.0)
    assert two["a"] == pytest.approx(0.5, abs=1e-6) and two["n_opt_fit"]["k"] == pytest.approx(0.1, rel=1e-4)
    assert two["b"] == pytest.approx(0.5, abs=1e-6)  # D_opt = C / 6 N_opt


def test_approach2_skips_budgets_without_a_minimum():
    budget = [1e12] * 3 + [1e13] * 3 + [1e14] * 2
    n = [1e4, 1e5, 1e6] * 2 + [1e4, 1e5]
    loss = [3.0, 2.9, 1.5, 3.0, 2.0, 1.5, 2.0, 1.8]
    two = scaling.approach2(budget, n, loss, per_token)
    assert [m["budget"] for m in two["minima"]] == [1e12, 1e13]  # the third budget has 2 sizes: no parabola
    assert two["minima"][0]["n_opt"] is None and "opens downwards" in two["minima"][0]["why_none"]
    assert two["minima"][1]["n_opt"] is None and "outside the sizes" in two["minima"][1]["why_none"]
    assert two["a"] is None and two["b"] is None


def test_bootstrap_intervals_hold_the_truth():
    runs = synthetic(noise=0.003, seed=1)
    law = scaling.fit_law(runs["n"], runs["d"], runs["loss"])
    intervals = scaling.bootstrap(runs, law, per_token, samples=6, seed=0, predict_at=[1e14],
                                  n_range=(1e3, 1e9))
    assert set(intervals) >= {"E", "alpha", "beta", "a", "b", "loss@1e+14", "n@1e+14"}
    low, high = intervals["alpha"]
    assert low <= high and abs((low + high) / 2 - TRUE.alpha) < 0.1
    assert intervals["loss@1e+14"][0] <= intervals["loss@1e+14"][1]
