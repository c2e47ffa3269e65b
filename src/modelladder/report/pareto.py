"""Which rungs are worth their cost: the headline metric of a ladder's rows and the Pareto frontier of
that metric against each cost (a rung is dominated when another is at least as good on both and
better on one).

Rows are leaderboard.json rows: holdout rows carry test_<metric> (and _low / _high), k-fold rows
cv_<metric>_mean (older folders val_<metric>_mean); every reader here accepts all three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# the task's monitored metric first (classification: accuracy, regression: rmse; mse in folders from before rmse;
# seq2seq: wer), then the others
HEADLINES = ("accuracy", "rmse", "mse", "f1_macro", "r2", "mae", "roc_auc", "log_loss", "wer", "per", "bleu", "chrf")
LOWER_IS_BETTER = {"mse", "mae", "log_loss", "ece", "loss", "rmse", "wer", "per"}
PREFIXES = ("test", "cv", "val")
# the costs a frontier is drawn for: (axis label with its unit, lower is better)
FRONTIER_COSTS = {
    "train_seconds": ("training time (s)", True),
    "latency_ms_p50": ("latency p50 (ms per example, batch 1)", True),
    "energy_kwh": ("training energy (kWh)", True),
    "params": ("parameters (count)", True),
    "throughput_per_s": ("throughput (examples/s at batch 256, higher is better)", False),
}


@dataclass(frozen=True)
class Headline:
    """The metric rungs are ranked on, and where a row keeps it: test_<m> or cv_<m>_mean / val_<m>_mean."""

    metric: str
    column: str  # test_accuracy, cv_accuracy or val_accuracy
    kfold: bool

    @property
    def higher_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    @property
    def label(self) -> str:
        where = "cross-validated" if self.kfold else "test"
        return f"{where} {self.metric} ({'higher' if self.higher_better else 'lower'} is better)"

    def value(self, row: dict) -> float | None:
        return number(row.get(f"{self.column}_mean" if self.kfold else self.column))

    def interval(self, row: dict) -> tuple[float, float] | None:
        low, high = number(row.get(f"{self.column}_low")), number(row.get(f"{self.column}_high"))
        return (low, high) if low is not None and high is not None else None

    def better(self, x: float, y: float) -> bool:
        return x > y if self.higher_better else x < y


def headline(rows: list[dict]) -> Headline | None:
    """The headline metric the rows carry (accuracy, else rmse, else ...), None when they carry none."""
    keys = {k for row in rows for k in row}
    for metric in HEADLINES:
        for prefix in PREFIXES:
            column = f"{prefix}_{metric}"
            if f"{column}_mean" in keys:
                return Headline(metric, column, kfold=True)
            if column in keys:
                return Headline(metric, column, kfold=False)
    return None


def number(v) -> float | None:
    """A finite float, or None (for None, bools, text and NaN)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def on_frontier(costs: list[float], values: list[float], *, cost_lower_better: bool = True,
                value_higher_better: bool = True) -> list[bool]:
    """For each point, whether no other point is at least as good on both axes and strictly better on one."""
    c = [x if cost_lower_better else -x for x in costs]
    v = [y if value_higher_better else -y for y in values]

    def dominates(j: int, i: int) -> bool:
        return c[j] <= c[i] and v[j] >= v[i] and (c[j] < c[i] or v[j] > v[i])

    return [not any(dominates(j, i) for j in range(len(c)) if j != i) for i in range(len(c))]


def frontier_points(rows: list[dict], head: Headline, cost: str) -> dict | None:
    """The rungs with both a number for `cost` and the headline, which of them are on the frontier, and the
    rungs left out (a tree has no params, a folder from before a cost column existed)."""
    label, lower_better = FRONTIER_COSTS[cost]
    kept = [r for r in rows if number(r.get(cost)) is not None and head.value(r) is not None]
    if not kept:
        return None
    costs = [number(r[cost]) for r in kept]
    values = [head.value(r) for r in kept]
    return {"cost": cost, "cost_label": label, "names": [str(r["rung"]) for r in kept], "costs": costs,
            "values": values, "intervals": [head.interval(r) for r in kept],
            "frontier": on_frontier(costs, values, cost_lower_better=lower_better,
                                    value_higher_better=head.higher_better),
            "left_out": [str(r["rung"]) for r in rows if r not in kept]}
