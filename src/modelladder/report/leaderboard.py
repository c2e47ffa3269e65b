"""The leaderboard as a terminal table (rich): what `ladder run` and `ladder cv` print."""

from __future__ import annotations

import re

from rich.table import Table

from modelladder.evaluate.significance import ALPHA

# what fits a 120-column terminal; leaderboard.csv / .json hold every column
TABLE_COSTS = {"params": "params", "nodes": "nodes", "flops_train": "train FLOPs", "train_seconds": "train s",
               "energy_kwh": "kWh (est.)", "latency_ms_p50": "latency ms"}
HEADLINE = ("_accuracy", "_f1_macro", "_r2", "_mse")
# shown when some rung has them: the audit's demographic parity gaps (odds_gap_*: leaderboard.csv), a DP
# rung's epsilon
TABLE_EXTRAS = ("parity_gap_", "dp_epsilon")


def leaderboard_table(rows: list[dict], title: str) -> Table:
    """Headline metrics, then the main costs that some rung has a value for. Under k-fold: the
    task's headline metric as mean ± std, and its p-value against the best rung."""
    tested = "p_value" in rows[0]
    metrics = _metric_columns(rows[0])[: 1 if tested else None]
    costs = [c for c in TABLE_COSTS if any(row.get(c) is not None for row in rows)]
    table = Table(title=title)
    table.add_column("rung", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for col in metrics:
        table.add_column(col.replace("_", " "), justify="right", no_wrap=tested)  # mean ± std on one line
    if tested:
        table.add_column("p", justify="right")
        table.add_column("sig.", justify="right")
        table.caption = (f"mean ± std over {rows[0]['folds']} folds; p: corrected resampled t-test (Nadeau & "
                         f"Bengio) against the best rung; sig.: p < {ALPHA}. Wilcoxon p and every cost: "
                         "leaderboard.csv")
    extras = [c for c in dict.fromkeys(k for row in rows for k in row) if c.startswith(TABLE_EXTRAS)]
    for col in extras:
        table.add_column(col.replace("_", " "), justify="right")
    for col in costs:
        table.add_column(TABLE_COSTS[col], justify="right")
    for row in rows:
        cells = [_metric_cell(row, c) for c in metrics]
        if tested:
            cells += [_fmt(row["p_value"]), _significance(row)]
        cells += [_fmt(row.get(c)) for c in extras]
        table.add_row(row["rung"], row["model"], *cells, *(_fmt(row.get(c)) for c in costs))
    return table


def _metric_columns(row: dict) -> list[str]:
    names = list(dict.fromkeys(re.sub(r"_(mean|std)$", "", k) for k in row if k.startswith(("test_", "val_"))))
    return [c for c in names if c.endswith(HEADLINE)] or names[:2]


def _metric_cell(row: dict, column: str) -> str:
    if f"{column}_mean" in row:
        return f"{row[f'{column}_mean']:.4f} ± {row[f'{column}_std']:.4f}"
    return f"{row[column]:.4f}" if row.get(column) is not None else "-"


def _significance(row: dict) -> str:
    if row["significant"] is None:
        return "best"
    return "yes" if row["significant"] else "no"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}" if value < 10**7 else f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
