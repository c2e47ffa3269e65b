"""`ladder scale`'s plots, written as PNG files into the scale folder (matplotlib's Agg canvas, as report/plots.py
draws): the held-out loss against compute with the frontier, the IsoFLOP curves with their minima, and the fitted
law against the measured losses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from modelladder.evaluate.scaling import Law
from modelladder.report.plots import _figure


def write_plots(runs: pd.DataFrame, law: Law | None, minima: list[dict], folder: Path) -> list[str]:
    """loss_vs_compute.png, isoflop.png and law.png in `folder` (runs: the finished runs' rows); their names."""
    written = []
    for name, draw in (("loss_vs_compute.png", _frontier), ("isoflop.png", _isoflop), ("law.png", _law)):
        fig = draw(runs, law, minima)
        fig.savefig(folder / name, format="png")
        written.append(name)
    return written


def _frontier(runs: pd.DataFrame, law: Law | None, minima: list[dict]):
    fig, (ax,) = _figure(6, 4)
    for size, group in runs.groupby("size", sort=False):
        ax.scatter(group["flops"], group["loss"], s=18, label=f"{size} (N={group['n_params'].iloc[0]:,})")
    best = runs.loc[runs.groupby("budget")["loss"].idxmin()].sort_values("flops")
    ax.plot(best["flops"], best["loss"], color="black", lw=1, label="frontier (best run per budget)")
    ax.set(xscale="log", xlabel="training FLOPs (6N + 12 L d T per token)", ylabel="held-out loss",
           title="loss vs compute")
    ax.legend(fontsize="x-small")
    return fig


def _isoflop(runs: pd.DataFrame, law: Law | None, minima: list[dict]):
    fig, (ax,) = _figure(6, 4)
    colors = dict(zip(sorted(runs["budget"].unique()), [f"C{i}" for i in range(10)] * 10, strict=False))
    for budget, group in runs.groupby("budget"):
        ax.scatter(group["n_params"], group["loss"], s=18, color=colors[budget], label=f"C = {budget:.3g}")
    for m in minima:
        n = runs.loc[runs["budget"] == m["budget"], "n_params"]
        x = np.linspace(np.log(n.min()), np.log(n.max()), 50)
        c0, c1, c2 = m["parabola"]
        ax.plot(np.exp(x), c0 + c1 * x + c2 * x * x, color=colors[m["budget"]], lw=1)
        if m["n_opt"] is not None:
            ax.scatter([m["n_opt"]], [m["loss_opt"]], marker="*", s=90, color=colors[m["budget"]], edgecolor="black")
    ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel="held-out loss",
           title="IsoFLOP curves (stars: parabola minima)")
    ax.legend(fontsize="x-small")
    return fig


def _law(runs: pd.DataFrame, law: Law | None, minima: list[dict]):
    fig, (ax,) = _figure(6, 4)
    if law is None:
        ax.text(0.5, 0.5, "no law fitted", ha="center", va="center", transform=ax.transAxes)
        return fig
    predicted = law.loss(runs["n_params"].to_numpy(float), runs["tokens"].to_numpy(float))
    ax.scatter(predicted, runs["loss"], s=18)
    lo, hi = min(predicted.min(), runs["loss"].min()), max(predicted.max(), runs["loss"].max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.set(xlabel="fitted L(N, D)", ylabel="measured held-out loss",
           title=f"L = {law.E:.3f} + {law.A:.3g}/N^{law.alpha:.3f} + {law.B:.3g}/D^{law.beta:.3f}")
    return fig
