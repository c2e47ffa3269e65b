"""`--budget latency_ms_p50=5`: the best rung whose costs fit a budget, for `ladder run` and `ladder report`.

A budget is one or more comma-separated limits `cost=value` or `cost<=value` (an upper limit), or
`throughput_per_s>=value` (a lower limit: more is better). The verdict names the best rung on the headline
metric among those that fit; a rung without a value for a budgeted cost cannot be shown to fit and is left out.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from modelladder.errors import InputError
from modelladder.report.pareto import Headline, headline, number
from modelladder.runs import write_json

# evaluate/cost.py's COST_COLUMNS that are numbers, with their units; throughput is the one where more is better
UNITS = {"params": "", "nodes": "", "flops_train": " FLOPs", "train_seconds": " s", "cpu_s": " CPU s",
         "peak_mem_mb": " MB", "peak_gpu_mem_mb": " MB", "energy_cpu_kwh": " kWh", "energy_modelled_kwh": " kWh",
         "energy_kwh": " kWh", "co2_kg": " kg", "latency_ms_p50": " ms", "latency_ms_p95": " ms",
         "throughput_per_s": " /s"}
AT_LEAST = {"throughput_per_s"}
ALIASES = {"latency_ms": "latency_ms_p50"}  # the spelling `--budget latency_ms=5` means the median
LIMIT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|=)\s*([^,]+?)\s*$")


def parse_budget(text: str | None) -> dict[str, float]:
    """'latency_ms_p50=5,train_seconds<=60' -> {'latency_ms_p50': 5.0, 'train_seconds': 60.0}; {} for None."""
    if text is None:
        return {}
    budget = {}
    for part in text.split(","):
        match = LIMIT.match(part)
        if not match:
            raise InputError(f"--budget: {part.strip()!r} is not a limit; write COST=VALUE or COST<=VALUE "
                             f"(throughput_per_s>=VALUE), several separated by commas, e.g. "
                             f"--budget latency_ms_p50=5,train_seconds<=60")
        name, op, raw = match.groups()
        name = ALIASES.get(name, name)
        if name not in UNITS:
            close = difflib.get_close_matches(name, [*UNITS, *ALIASES], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"--budget: unknown cost {name!r}{hint}; allowed: {', '.join(UNITS)} "
                             f"(latency_ms means latency_ms_p50)")
        expected = ">=" if name in AT_LEAST else "<="
        if op not in ("=", expected):
            raise InputError(f"--budget: {name} takes {name}{expected}VALUE or {name}=VALUE "
                             f"({'more' if name in AT_LEAST else 'less'} is better), got {part.strip()!r}")
        try:
            limit = float(raw)
        except ValueError:
            limit = float("nan")
        if not limit >= 0 or limit == float("inf"):
            raise InputError(f"--budget: {name} must be a number >= 0, got {raw!r}")
        budget[name] = limit
    return budget


def describe(budget: dict[str, float]) -> str:
    return ", ".join(f"{k} {'>=' if k in AT_LEAST else '<='} {_num(v)}{UNITS[k]}" for k, v in budget.items())


def _num(v: float) -> str:
    """50250.0 -> '50,250'; 0.41 -> '0.41'; 2.1e-07 -> '2.1e-07'."""
    return f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e15 else f"{v:.4g}"


def _misfit(row: dict, budget: dict[str, float]) -> str | None:
    """Why a row does not fit the budget, or None when it does."""
    for cost, limit in budget.items():
        value = number(row.get(cost))
        if value is None:
            return f"no {cost} measured"
        if (value < limit) if cost in AT_LEAST else (value > limit):
            return f"{cost} {_num(value)}{UNITS[cost]} {'<' if cost in AT_LEAST else '>'} {_num(limit)}{UNITS[cost]}"
    return None


def verdict(rows: list[dict], budget: dict[str, float]) -> dict:
    """The best rung within the budget: {'budget', 'text', 'rung', 'metric', 'fits', 'left_out', 'best_overall'}."""
    rows = [r for r in rows if r.get("status", "ok") == "ok"]  # a failed rung has no metrics (verbs/ladder.py)
    head = headline(rows)
    if head is None:
        raise InputError("--budget: the leaderboard has no metric to rank the rungs on (no test_<metric> or "
                         "cv_<metric>_mean column)")
    ranked = [r for r in rows if head.value(r) is not None]
    left_out = {str(r["rung"]): _misfit(r, budget) for r in ranked if _misfit(r, budget)}
    fits = [r for r in ranked if str(r["rung"]) not in left_out]
    best_overall = _best(ranked, head)
    chosen = _best(fits, head)
    out = {"budget": budget, "metric": head.column, "rung": chosen and str(chosen["rung"]),
           "fits": [str(r["rung"]) for r in fits], "left_out": left_out,
           "best_overall": best_overall and str(best_overall["rung"])}
    return out | {"text": _text(chosen, best_overall, head, budget, left_out)}


def _best(rows: list[dict], head: Headline) -> dict | None:
    best = None
    for row in rows:
        if best is None or head.better(head.value(row), head.value(best)):
            best = row
    return best


def _score(row: dict, head: Headline) -> str:
    interval = head.interval(row)
    text = f"{head.column} {head.value(row):.4f}"
    return text + (f" (95% interval {interval[0]:.4f} to {interval[1]:.4f})" if interval else "")


def _text(chosen: dict | None, best: dict | None, head: Headline, budget: dict, left_out: dict) -> str:
    within = f"within {describe(budget)}"
    if chosen is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in left_out.items())
        return f"No rung fits {within} ({reasons})."
    text = f"Best rung {within}: {chosen['rung']}, {_score(chosen, head)}."
    if best is not chosen:
        text += f" The best overall, {best['rung']}, {_score(best, head)}, is out: {left_out[str(best['rung'])]}."
        significant = chosen.get("significant")
        if significant is not None:
            test, p = chosen.get("test") or "the leaderboard's test", chosen.get("p_adj", chosen.get("p_value"))
            p_text = f", adjusted p {p:.3g}" if number(p) is not None else ""
            text += (f" {chosen['rung']} is {'' if significant else 'not '}significantly worse than it "
                     f"({test}{p_text}).")
    else:
        text += " It is also the best rung overall."
    return text


def write_verdict(folder: Path, rows: list[dict], budget: dict[str, float]) -> dict:
    """budget.json in the ladder folder (the report shows it at the top); returns the verdict."""
    result = verdict(rows, budget)
    write_json(Path(folder) / "budget.json", result)
    return result
