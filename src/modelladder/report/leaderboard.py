"""The leaderboard as a terminal table (rich): what `ladder run` and `ladder cv` print."""

from __future__ import annotations

import re

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from modelladder.evaluate.intervals import PROPORTIONS, RESAMPLES
from modelladder.evaluate.seq2seq import PROPORTIONS as SEQUENCE_PROPORTIONS
from modelladder.evaluate.significance import ALPHA, WILCOXON_MIN_PAIRS

# what fits a 120-column terminal; leaderboard.csv / .json hold every column
TABLE_COSTS = {"params": "params", "nodes": "nodes", "flops_train": "FLOPs", "train_seconds": "train s",
               "energy_kwh": "kWh", "latency_ms_p50": "p50 ms"}
HEADLINE = ("_accuracy", "_f1_macro", "_rmse", "_mae", "_r2", "_mse", "_wer", "_per", "_bleu", "_chrf")
# shown beside the compared metric: a regression's R^2, a seq2seq ladder's PER and, for parallel text, BLEU / chrF
BESIDE = ("_r2", "_per", "_bleu", "_chrf")
WILSON = (*PROPORTIONS, *SEQUENCE_PROPORTIONS)  # metrics whose brackets are Wilson intervals
# the estimator a linear rung (logreg / linear / tfidf_logreg) is for task regression, named next to the model:
# 'logreg (Ridge)'; a text rung's estimator is its pipeline, 'TfidfVectorizer + Ridge'
RIDGE = "Ridge"
# shown when some rung has them: the audit's demographic parity gaps (odds_gap_*: leaderboard.csv), a DP
# rung's epsilon
TABLE_EXTRAS = ("parity_gap_", "dp_epsilon", "per_p_adj")
SUMMARY = re.compile(r"_(mean|std|low|high)$")  # a metric's interval and fold statistics
TESTS = {"mcnemar-exact": "exact McNemar test on the paired right / wrong answers",
         "paired-bootstrap": f"paired bootstrap test ({RESAMPLES} resamples of the same examples)",
         "corrected-t": "corrected resampled t-test (Nadeau & Bengio) on the paired folds"}


def leaderboard_table(rows: list[dict], title: str) -> Table:
    """Headline metrics with their 95% intervals, then the main costs that some rung has a value for.

    When the rungs were compared (a ladder: holdout or k-fold), only the headline metric they were
    compared on, its Holm-adjusted p against the best rung and a "vs best" verdict, and a caption that
    says which test decided; a regression also shows R^2 beside it, a seq2seq ladder PER (with its own paired
    test's adjusted p) and, where they were scored, BLEU and chrF. The model column is left out when every rung
    is named after its model and no linear rung is a Ridge regression (a `logreg` rung of a regression ladder).
    """
    failed = [row for row in rows if row.get("status", "ok") != "ok"]
    everyone, rows = rows, [row for row in rows if row.get("status", "ok") == "ok"]
    tested = bool(rows) and "p_adj" in rows[0]
    metrics = _metric_columns(rows[0]) if rows else []
    if tested:
        metrics = metrics[:1] + [c for c in metrics[1:] if c.endswith(BESIDE)]
    costs = [c for c in TABLE_COSTS if any(row.get(c) is not None for row in rows)]
    extras = [c for c in dict.fromkeys(k for row in rows for k in row) if c.startswith(TABLE_EXTRAS)]
    show_model = any(row["rung"] != row["model"] or _is_ridge(row) for row in everyone)
    caption = _caption(rows, metrics[0] if metrics else None, tested) if rows else ""
    tuned = tuning_caption(everyone)
    if tuned:
        caption = (caption.rstrip(".") + ". " if caption else "") + tuned
    if failed:
        errors = "; ".join(f"{row['rung']} {row['status']}: {(row.get('error') or 'no error recorded').rstrip('.')}"
                           for row in failed)
        caption = (caption.rstrip(".") + ". " if caption else "") + f"Not finished: {errors}."
    table = Table(title=title, caption=caption)
    table.add_column("rung", no_wrap=True)
    if show_model:
        table.add_column("model", no_wrap=True)
    for col in metrics:
        table.add_column(col.replace("_", " ") + " [95% CI]", justify="right", no_wrap=True)
    if tested:
        table.add_column("vs best", justify="right", no_wrap=True)
    for col in extras:
        table.add_column(col.replace("_", " "), justify="right")
    for col in costs:
        table.add_column(TABLE_COSTS[col], justify="right", no_wrap=True)
    if not metrics:  # every rung failed: the error is all there is to show
        table.add_column("error")
    for row in everyone:
        cells = [row["rung"], *([model_text(row)] if show_model else [])]
        if row in failed:
            table.add_row(*cells, *_failed_cells(row, len(metrics) + tested + len(extras) + len(costs)),
                          style="red")
            continue
        cells += [_metric_cell(row, c) for c in metrics]
        if tested:
            cells.append(verdict(row) if row.get("best") else f"{verdict(row)} ({p_text(row['p_adj'])})")
        table.add_row(*cells, *(p_text(row.get(c)) if c.endswith("_p_adj") else _fmt(row.get(c)) for c in extras),
                      *(_fmt(row.get(c)) for c in costs))
    return table


def model_text(row: dict) -> str:
    """The registered model, with Ridge named when a linear rung is one (task regression): 'linear (Ridge)'."""
    return f"{row['model']} ({RIDGE})" if _is_ridge(row) else str(row["model"])


def _is_ridge(row: dict) -> bool:
    return RIDGE in str(row.get("estimator", "")).split(" + ")


def _failed_cells(row: dict, width: int) -> list[str]:
    """A failed (or skipped) rung's cells: 'failed: <error>' in the first metric column (cut to fit), '-' after."""
    error = row.get("error") or "no error recorded"
    error = error if len(error) <= 40 else error[:37] + "..."
    return [f"{row.get('status', 'failed')}: {error}", *["-"] * (max(width, 1) - 1)]


def table_console(table: Table, least: int = 120) -> Console:
    """A console wide enough for every column of `table` (at least `least`), so that a leaderboard is neither cut
    when piped nor squeezed to empty columns when an audit or DP rung adds some."""
    width = Measurement.get(Console(width=1000), Console(width=1000).options, table).maximum
    return Console(width=max(Console().width, least, min(width, 240)))


def p_text(p: float | None) -> str:
    """A p-value as a table shows it: three decimals, or '<0.001'."""
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def verdict(row: dict) -> str:
    """'best', 'worse' (significantly, after Holm) or 'n.s.' (not significantly different from the best)."""
    if row.get("best"):
        return "best"
    return "worse" if row["significant"] else "n.s."


def tuning_caption(rows: list[dict]) -> str:
    """The tuning budget every rung had (a ladder's tune:, verbs/tune.py), or "" for an untuned ladder."""
    budgets = list(dict.fromkeys(row["tune_budget"] for row in rows if row.get("tune_budget")))
    if not budgets:
        return ""
    if len(budgets) == 1:
        return f"Every rung tuned with the same budget: {budgets[0]} on validation."
    # a --time-limit gives each rung's trials a time cap from what is left when it starts (verbs/resilience.py)
    return f"Rungs tuned on validation with the budgets {' / '.join(budgets)} (the ladder's time limit capped them)."


def _caption(rows: list[dict], metric: str | None, tested: bool) -> str:
    """What the brackets are, and, for compared rungs, which test decided and how to read its verdict."""
    kfold = "folds" in rows[0]
    if kfold:
        spread = f"Mean over {rows[0]['folds']} folds [95% corrected resampled t interval]"
    elif metric is not None and metric.split("_", 1)[1] in WILSON:
        spread = f"[95% Wilson interval] (other metrics: bootstrap, {RESAMPLES} resamples)"
    else:
        spread = f"[95% bootstrap interval, {RESAMPLES} resamples]"
    test = next((row["test"] for row in rows if row.get("test")), None)
    if not tested or test is None:
        return spread
    text = (f"{spread}. vs best (adjusted p): {TESTS.get(test, test)} of each rung against the best on "
            f"{metric.replace('_', ' ')}, Holm-adjusted over {_count(len(rows) - 1, 'comparison')}; the best was chosen on "
            f"these same data. n.s.: not significantly different from the best; worse: p adj. < {ALPHA}. {_cost_note(rows)}")
    if any(row.get("per_p_adj") is not None for row in rows):
        text += (f" per p adj: paired bootstrap ({RESAMPLES} resamples of the same sources) of each rung's PER "
                 "against the same best rung's, Holm-adjusted.")
    if kfold:
        return text + (f" Wilcoxon p (from {WILCOXON_MIN_PAIRS} folds of one repeat), std, every metric, interval "
                       "and cost: leaderboard.csv")
    return text + " Every metric, interval and cost: leaderboard.csv"


def _cost_note(rows: list[dict]) -> str:
    """How the table's energy and latency were measured (docs/ladder-run.md, Cost columns)."""
    measured = any(row.get("energy_cpu_kwh") is not None for row in rows)
    energy = "CPU measured by RAPL plus a modelled rest" if measured else "modelled by codecarbon (no RAPL counters)"
    return f"kWh: {energy}; p50 ms: latency of one example on one thread."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _metric_columns(row: dict) -> list[str]:
    names = list(dict.fromkeys(SUMMARY.sub("", k) for k in row if k.startswith(("test_", "val_", "cv_"))))
    return [c for c in names if c.endswith(HEADLINE)] or names[:2]


def _metric_cell(row: dict, column: str) -> str:
    value = row.get(f"{column}_mean", row.get(column))
    if value is None:
        return "-"
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    return f"{value:.4f} [{low:.3f}, {high:.3f}]" if low is not None and high is not None else f"{value:.4f}"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if value < 10**7 else f"{value:.3g}"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
