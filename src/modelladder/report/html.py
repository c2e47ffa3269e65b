"""`ladder report`: one self-contained HTML file (plots inlined as data URIs) from a run or ladder folder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from modelladder.errors import InputError
from modelladder.report import plots
from modelladder.report.card import audit_context, card_context
from modelladder.report.pareto import FRONTIER_COSTS, HEADLINES
from modelladder.report.story import story_context
from modelladder.report.tuning import folds_tuning_context, ladder_panels, tuning_context
from modelladder.runs import read_json, write_text

IDENTITY = ("rung", "model", "family")
SPLITS = ("test", "val")
PREFIXES = ("test", "val", "cv")  # a k-fold row's cv_<metric>_mean (val_ before the inner split)
METRIC_NAMES = {"accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss", "roc_auc", "rmse", "mse", "mae",
                "r2", "ece"}
# a cost is a count of parameters or operations, a time, an energy or a memory size
COST = re.compile(r"^(params|flops|macs)|seconds|latency|_ms|energy|kwh|memory|bytes")
PICTURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
NOT_SIGNIFICANT = "†"


def write_report(folder: str | Path) -> Path:
    """Write folder/report.html for a ladder folder (leaderboard.json) or a run folder; return its path."""
    folder = Path(folder)
    try:
        return _write(folder)
    except OSError as err:  # a file that cannot be read, or a folder that cannot be written
        raise InputError(f"report: {err.filename2 or err.filename or folder}: {err.strerror or err}") from None


def _write(folder: Path) -> Path:
    if (folder / "leaderboard.json").is_file():
        context = ladder_context(folder)
    elif _is_run(folder) or _is_cv(folder):
        run = run_context(folder) if _is_run(folder) else cv_context(folder)
        context = {"title": folder.name, "kind": "run", "runs": [run], "leaderboard": None,
                   "cost_plots": [], "ladder_config": None, "legend": None, "story": None, "tuning": []}
    elif not folder.exists():
        raise InputError(f"report: folder {folder} does not exist; expected a ladder folder "
                         "(with leaderboard.json) or a run folder (with config.yaml and summary.json)")
    else:
        raise InputError(f"report: {folder} is neither a ladder folder (no leaderboard.json), a run "
                         "folder (config.yaml and summary.json) nor a cross-validation folder (cv.json): "
                         "pass a folder that `ladder run`, `ladder train` or `ladder cv` wrote")
    path = folder / "report.html"
    write_text(path, render(context))
    return path


def render(context: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("modelladder", "report/templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)


def _is_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and (folder / "summary.json").is_file()


def _is_cv(folder: Path) -> bool:
    return (folder / "cv.json").is_file()


# ---------------------------------------------------------------- ladder


def ladder_context(folder: Path) -> dict:
    rows = read_json(folder / "leaderboard.json")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) and "rung" in r for r in rows):
        raise InputError(f"{folder / 'leaderboard.json'} must hold a non-empty list of rows, each with a "
                         "'rung' key")
    columns = table_columns(rows)
    headline = headline_metric(columns)
    table = {"columns": columns, "rows": [_leaderboard_row(r, columns, headline) for r in rows]}
    ladder_yaml = folder / "ladder.yaml"
    ok = [r for r in rows if r.get("status", "ok") == "ok"]  # failed rungs (verbs/ladder.py) have no metrics
    return {
        "title": folder.name,
        "kind": "ladder",
        "leaderboard": table,
        "legend": _legend(rows, columns, headline),
        "story": story_context(folder, ok, fmt) if ok else None,
        "cost_plots": cost_plots(ok, [c for c in columns if c not in FRONTIER_COSTS], headline),
        "ladder_config": ladder_yaml.read_text() if ladder_yaml.is_file() else None,
        "runs": [_rung_context(folder / str(r["rung"]), r) for r in rows],
        "tuning": ladder_panels(ok, folder),  # one small optimisation history per tuned rung
    }


def _rung_context(rung_dir: Path, row: dict | None = None) -> dict:
    if row is not None and row.get("status", "ok") != "ok":
        note = f"{row['status']}: {row.get('error') or 'no error recorded'} (traceback: {rung_dir / 'error.txt'})"
        return _missing_run(rung_dir) | {"notes": [note]}
    if _is_run(rung_dir):
        return run_context(rung_dir)
    return cv_context(rung_dir) if _is_cv(rung_dir) else _missing_run(rung_dir)


# shown as a marker on the metric (significant, best) or folded into its cell (_mean, _std, _low, _high)
MARKERS = ("significant", "best")
FOLDED = ("mean", "std", "low", "high")


def table_columns(rows: list[dict]) -> list[str]:
    """Every key the rows carry, in order; `<c>_mean`, `<c>_std`, `<c>_low`, `<c>_high` fold into one column `<c>`."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    columns = []
    for key in keys:
        if key in MARKERS or key.endswith("_significant"):
            continue
        base = re.sub(rf"_({'|'.join(FOLDED)})$", "", key)
        if base != key and (base in keys or {f"{base}_mean", f"{base}_std"} <= set(keys)
                            or {f"{base}_low", f"{base}_high"} <= set(keys)):
            key = base
        if key not in columns:
            columns.append(key)
    return columns


def is_metric(column: str) -> bool:
    return column.startswith(tuple(f"{s}_" for s in PREFIXES)) or column in METRIC_NAMES


def headline_metric(columns: list[str]) -> str | None:
    metrics = [c for c in columns if is_metric(c)]
    for name in HEADLINES:  # the tasks' monitored metrics first: what the rungs are ranked and tested on
        for column in metrics:
            if column == name or column.endswith(f"_{name}"):
                return column
    return metrics[0] if metrics else None


def value(row: dict, column: str):
    return row.get(f"{column}_mean", row.get(column))


def cost_columns(rows: list[dict], columns: list[str]) -> list[str]:
    return [c for c in columns if c not in IDENTITY and not is_metric(c) and COST.search(c)
            and any(_is_number(value(r, c)) for r in rows)]


def _leaderboard_row(row: dict, columns: list[str], headline: str | None) -> list[dict]:
    cells = []
    for column in columns:
        if f"{column}_mean" in row:
            text = f"{fmt(row[f'{column}_mean'])} ± {fmt(row.get(f'{column}_std'))}"
        else:
            text = fmt(row.get(column))
        interval = None
        if _is_number(row.get(f"{column}_low")) and _is_number(row.get(f"{column}_high")):
            interval = f"[{fmt(row[f'{column}_low'])}, {fmt(row[f'{column}_high'])}]"
        marked = _not_significant(row, column, headline)
        if column == headline and row.get("best") is True:
            text += " (best)"
        cells.append({"text": text + (f" {NOT_SIGNIFICANT}" if marked else ""), "marked": marked,
                      "number": _is_number(value(row, column)), "interval": interval})
    return cells


def _not_significant(row: dict, column: str, headline: str | None) -> bool:
    """`<c>_significant: false` marks column c; a row's plain `significant: false` marks its headline."""
    return row.get(f"{column}_significant") is False or (column == headline and row.get("significant") is False)


def _legend(rows: list[dict], columns: list[str], headline: str | None) -> str | None:
    """What the brackets and the marker mean, which test decided, and that the best was picked on the same data."""
    parts = []
    if any(_is_number(r.get(f"{c}_low")) for r in rows for c in columns):
        parts.append("[low, high]: 95% interval (Wilson for proportions, a seeded bootstrap otherwise; under "
                     "k-fold the corrected resampled t interval)")
    tests = sorted({str(r["test"]) for r in rows if r.get("test")})
    if tests:
        holm = ", p adjusted with Holm's method over the comparisons (p_adj)" if any("p_adj" in r for r in rows) else ""
        parts.append(f"each rung is compared with the best on {headline} by {' / '.join(tests)}{holm}")
    if any(_not_significant(r, c, headline) for r in rows for c in columns):
        parts.append(f"{NOT_SIGNIFICANT} not significantly different from the best rung"
                     + ("" if tests else " (the row's `significant` value is false)"))
    if tests or any("best" in r for r in rows):
        parts.append("the best rung was chosen on the same data it is compared on, so its lead is optimistic")
    return "; ".join(parts) + "." if parts else None


def cost_plots(rows: list[dict], columns: list[str], headline: str | None) -> list[dict]:
    if headline is None:
        return []
    out = []
    for cost in cost_columns(rows, columns):
        points = [(str(r["rung"]), float(value(r, cost)), float(value(r, headline))) for r in rows
                  if _is_number(value(r, cost)) and _is_number(value(r, headline))]
        if points:
            names, costs, scores = zip(*points)
            out.append({"id": f"cost/{cost}", "title": f"{headline} vs {cost}",
                        "uri": plots.metric_vs_cost(list(names), list(costs), list(scores), cost, headline)})
    return out


# ---------------------------------------------------------------- one run


def run_context(run_dir: Path) -> dict:
    name = run_dir.name
    summary = read_json(run_dir / "summary.json")
    split = next((s for s in SPLITS if (run_dir / f"eval_{s}.json").is_file()), None)
    evaluation = read_json(run_dir / f"eval_{split}.json") if split else {}
    figures, per_class, notes = [], None, []
    records = read_jsonl(run_dir / "metrics.jsonl")
    curves = plots.learning_curves(records) if records else None
    if curves:
        figures.append({"id": f"{name}/learning-curves", "title": "learning curves", "uri": curves})
    else:
        notes.append("no learning curves: this run has no metrics.jsonl (scikit-learn rungs fit in one call)")
    notes += _seq2seq_context(run_dir, name, evaluation, figures)
    if split and (run_dir / f"predictions_{split}.csv").is_file():
        frame = read_predictions(run_dir / f"predictions_{split}.csv")
        per_class = _prediction_figures(name, frame, evaluation, figures)
    elif split and "accuracy" in evaluation.get("metrics", {}):  # only a classifier lacks them by accident
        notes.append(f"no predictions_{split}.csv: no per-class table or ROC curve")
    else:
        notes.append("not evaluated yet: no eval_test.json or eval_val.json")
    env_path = run_dir / "env.json"
    return {
        "name": name,
        "split": split,
        "summary": {k: fmt(v) for k, v in summary.items()},
        "metrics": {k: fmt(v) for k, v in {**evaluation.get("metrics", {}), **evaluation.get("latency", {})}.items()},
        "figures": figures,
        "per_class": per_class,
        "notes": notes,
        "pictures": pictures(run_dir),
        "config": (run_dir / "config.yaml").read_text(),
        "env": flatten(read_json(env_path)) if env_path.is_file() else {},
        "audit": audit_context(run_dir, fmt),
        "card": card_context(run_dir, summary, evaluation, fmt),
        "tuning": tuning_context(run_dir, fmt),
    }


def _seq2seq_context(run_dir: Path, name: str, evaluation: dict, figures: list[dict]) -> list[str]:
    """A seq2seq run's attention heat maps (attention.json) as a figure; its most frequent errors and, for parallel
    text, how BLEU and chrF were scored (sacrebleu's signatures) as notes."""
    if (run_dir / "attention.json").is_file():
        examples = read_json(run_dir / "attention.json")["examples"]
        if examples:
            figures.append({"id": f"{name}/attention", "title": "attention over the source, first test words",
                            "uri": plots.attention_maps(examples)})
    notes = []
    if evaluation.get("sacrebleu"):  # parallel text: how BLEU and chrF were tokenised and scored
        notes.append("BLEU and chrF (0-100) by sacrebleu, corpus-level, 95% bootstrap over the sources: " + "; ".join(
            f"{name} {signature}" for name, signature in evaluation["sacrebleu"].items()))
    errors = evaluation.get("common_errors") or []
    if errors:
        shown = [f"{e['op']} {e['reference'] or '-'} -> {e['predicted'] or '-'} ({e['count']})" for e in errors[:8]]
        notes.append("most frequent errors: " + "; ".join(shown))
    return notes


def cv_context(cv_dir: Path) -> dict:
    """A cross-validated rung: its mean ± std, the learning curves of every fold on one plot, and the
    confusion matrix, ROC and per-class table of the pooled out-of-fold predictions."""
    name = cv_dir.name
    cv = read_json(cv_dir / "cv.json")
    folds = sorted(d for d in cv_dir.glob("fold-*") if _is_run(d))
    figures, notes, per_class = [], [], None
    curves = plots.fold_learning_curves({d.name: read_jsonl(d / "metrics.jsonl") for d in folds})
    if curves:
        figures.append({"id": f"{name}/learning-curves", "title": "learning curves of every fold", "uri": curves})
    # a fold run scores its fold as its test split (val before the inner validation split existed)
    split = "test" if folds and all((d / "eval_test.json").is_file() for d in folds) else "val"
    evaluations = [read_json(d / f"eval_{split}.json") for d in folds if (d / f"eval_{split}.json").is_file()]
    frames = [read_predictions(d / f"predictions_{split}.csv") for d in folds
              if (d / f"predictions_{split}.csv").is_file()]
    if frames and len(frames) == len(evaluations) == len(folds):
        import pandas as pd

        pooled = {"confusion": np.sum([e["confusion"] for e in evaluations], axis=0).tolist()} \
            if all("confusion" in e for e in evaluations) else {}
        per_class = _prediction_figures(name, pd.concat(frames, ignore_index=True), pooled, figures)
        notes.append(f"confusion matrix, ROC and per-class table pool the out-of-fold predictions of "
                     f"{len(folds)} folds")
    else:
        notes.append(f"not every fold has eval_{split}.json and predictions_{split}.csv: no pooled per-class figures")
    summary = cv.get("summary", {}) if isinstance(cv, dict) else {}
    first = folds[0] if folds else cv_dir
    config = next((p for p in (cv_dir / "config.yaml", first / "config.yaml") if p.is_file()), None)
    return {"name": name, "split": f"out-of-fold {split}", "summary": {k: fmt(v) for k, v in summary.items()},
            "metrics": _fold_scores(cv), "figures": figures, "per_class": per_class, "notes": notes,
            "pictures": [], "config": config.read_text() if config else None,
            "env": flatten(read_json(first / "env.json")) if (first / "env.json").is_file() else {},
            "tuning": folds_tuning_context(cv_dir)}


def _fold_scores(cv) -> dict:
    """`fold r-k metric` -> value for each fold's metrics in cv.json."""
    records = cv.get("folds", []) if isinstance(cv, dict) else []
    return {f"fold {f.get('repeat')}-{f.get('fold')} {k}": fmt(v) for f in records if isinstance(f, dict)
            for k, v in (f.get("metrics") or {}).items()}


def _missing_run(run_dir: Path) -> dict:
    """A leaderboard row without a run folder still gets its section, saying what is missing."""
    note = f"no run folder {run_dir} with config.yaml and summary.json: only its leaderboard row is known"
    return {"name": run_dir.name, "split": None, "summary": {}, "metrics": {}, "figures": [], "per_class": None,
            "notes": [note], "pictures": [], "config": None, "env": {}}


def _prediction_figures(name: str, frame, evaluation: dict, figures: list[dict]) -> list[dict] | None:
    """Confusion matrix, ROC and the per-class table for classes; predicted vs true otherwise."""
    classes = [c.removeprefix("proba_") for c in frame.columns if c.startswith("proba_")]
    if "word_error" in frame.columns:  # seq2seq: strings, scored in eval_<split>.json (no figure yet)
        return None
    if not classes:
        figures.append({"id": f"{name}/predicted-vs-true", "title": "predicted vs true, and residuals",
                        "uri": plots.predicted_vs_true(frame["true"].to_numpy(), frame["predicted"].to_numpy())})
        return None
    if "confusion" in evaluation:
        figures.append({"id": f"{name}/confusion", "title": "confusion matrix",
                        "uri": plots.confusion_matrix(evaluation["confusion"], classes)})
    proba = frame[[f"proba_{c}" for c in classes]].to_numpy(dtype=np.float64)
    roc = plots.roc_curves(frame["true"].to_numpy(), proba, classes)
    if roc:
        figures.append({"id": f"{name}/roc", "title": "ROC curve", "uri": roc})
    return per_class_table(frame["true"], frame["predicted"], classes)


def per_class_table(y_true, y_pred, classes: list[str]) -> list[dict]:
    from sklearn.metrics import classification_report

    report = classification_report(y_true, y_pred, labels=classes, output_dict=True, zero_division=0)
    return [{"label": label, "precision": fmt(v["precision"]), "recall": fmt(v["recall"]),
             "f1": fmt(v["f1-score"]), "support": fmt(int(v["support"]))}
            for label, v in report.items() if isinstance(v, dict)]


def read_predictions(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype={"true": str, "predicted": str})
        if not {"true", "predicted"} <= set(frame.columns):
            raise ValueError("it needs the columns 'true' and 'predicted'")
        if "word_error" in frame.columns:  # a seq2seq run's output strings (tasks/seq2seq.py)
            return frame
        if not any(c.startswith("proba_") for c in frame.columns):  # regression: numbers
            frame[["true", "predicted"]] = frame[["true", "predicted"]].astype(float)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path} is not a predictions table written by ModelLadder: {err}") from None
    return frame


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path} line {number} is not valid JSON: {err.msg}") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def pictures(run_dir: Path) -> list[dict]:
    """Images a run folder holds (its own *.png, or anything in pictures/), inlined as data URIs."""
    found = sorted(run_dir.glob("*.png")) + sorted(p for p in (run_dir / "pictures").glob("*") if p.is_file())
    return [{"name": str(p.relative_to(run_dir)),
             "uri": f"data:{PICTURE_TYPES[p.suffix.lower()]};base64," + base64.b64encode(p.read_bytes()).decode("ascii")}
            for p in found if p.suffix.lower() in PICTURE_TYPES]


# ---------------------------------------------------------------- formatting


def flatten(obj, prefix: str = "") -> dict[str, str]:
    """{'versions': {'torch': '2.3'}} -> {'versions.torch': '2.3'}: env.json as one table."""
    if not isinstance(obj, dict):
        return {prefix: fmt(obj)}
    out = {}
    for key, val in obj.items():
        out |= flatten(val, f"{prefix}.{key}" if prefix else str(key))
    return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, list):
        return " ".join(fmt(x) for x in v)
    return str(v)
