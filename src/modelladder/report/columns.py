"""A table's column decisions (data/columns.py) as a short terminal table, printed before training."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

MAX_ROWS = 20  # beyond this many columns, plain numeric and categorical ones are grouped into one row per role
GROUPED = ("numeric", "categorical")
NAMES_SHOWN = 6  # column names listed in a grouped row


def columns_table(preprocess: dict) -> Table | None:
    """Column, role, why and features made, for a run's preprocess.json (or a table's transform state); None
    for images, texts and tables from before column roles. Leakage warnings are the caption."""
    decisions = preprocess.get("columns") if "transform" in preprocess else preprocess.get("roles")
    kind = preprocess.get("kind")
    if kind != "tabular" or not decisions or not isinstance(decisions[0], dict):
        return None
    warnings = preprocess.get("warnings") or []
    n_features = sum(d.get("features", 0) for d in decisions)
    table = Table(title=f"columns: {len(decisions)} in, {n_features} features out", title_justify="left",
                  caption=_caption(warnings), caption_justify="left", min_width=100 if warnings else None)
    table.add_column("column", overflow="fold")
    table.add_column("role")
    table.add_column("why")
    table.add_column("features", justify="right")
    grouped = len(decisions) > MAX_ROWS
    for d in decisions:
        if not (grouped and d["role"] in GROUPED):
            table.add_row(d["column"], _role(d["role"]), d["why"], str(d.get("features", "")))
    if grouped:
        for role in GROUPED:
            group = [d for d in decisions if d["role"] == role]
            if group:
                names = ", ".join(d["column"] for d in group[:NAMES_SHOWN]) + (", ..." if len(group) > NAMES_SHOWN else "")
                table.add_row(f"{len(group)} columns: {names}", _role(role), "",
                              str(sum(d.get("features", 0) for d in group)))
    return table


def _role(role: str) -> Text:
    return Text(role, style="dim" if role in ("id", "constant", "drop") else "")


def _caption(warnings: list[str]) -> Text:
    text = Text("override a role with data.columns: {column: role} (numeric, categorical, id, drop, date, text, "
                "frequency)", style="dim")
    for warning in warnings:
        text.append("\n")
        text.append(f"warning: {warning}", style="bold yellow")
    return text


def print_columns(preprocess: dict, console=None) -> None:
    """Print columns_table(preprocess) when there is one (to stderr unless a rich Console is given)."""
    table = columns_table(preprocess)
    if table is not None:
        from rich.console import Console

        (console or Console(stderr=True)).print(table)
