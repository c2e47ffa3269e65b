"""A tuned run in the report: the optimisation history (each trial's validation value, pruned trials marked, the
best so far), the parameter importances (fANOVA over the complete trials) and the best parameters.

Read from the run folder's tune/study.db (the Optuna SQLite storage `ladder tune` writes) and/or tune/trials.csv
(number, state, value, duration_s, one column per parameter, `param_` prefixed or not) and tune.json (metric,
direction, best_params, budget). Plots are PNG data URIs drawn like report/plots.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from modelladder.report.plots import _figure, data_uri
from modelladder.runs import read_json

LOWER_IS_BETTER = ("loss", "log_loss", "ece", "rmse", "mae", "mse", "wer", "per")
CSV_COLUMNS = ("number", "state", "value", "duration_s")
PARAM_PREFIXES = ("params_", "param_")


def is_tuned(run_dir: Path) -> bool:
    return (run_dir / "tune" / "study.db").is_file() or (run_dir / "tune" / "trials.csv").is_file()


def load_trials(run_dir: Path) -> tuple[list[dict], Any, str]:
    """(trials, optuna study or None, where they came from). Each trial: number, state, value (a pruned trial's
    last reported value when it has none), params. The study comes from tune/study.db; without one, from
    trials.csv (an in-memory study rebuilt from its rows, so importances can still be computed)."""
    folder = run_dir / "tune"
    study = _load_study(folder / "study.db", run_dir) if (folder / "study.db").is_file() else None
    if study is None and not (folder / "trials.csv").is_file():
        return [], None, "tune/study.db (no study could be read from it)"
    if study is not None:
        trials = [{"number": t.number, "state": t.state.name, "params": dict(t.params),
                   "value": t.value if t.value is not None else _last(t.intermediate_values)}
                  for t in study.get_trials(deepcopy=False)]
        return trials, study, "tune/study.db"
    return _csv_trials(folder / "trials.csv"), None, "tune/trials.csv"


def _load_study(db: Path, run_dir: Path):
    """The study in `db`: the one named in tune.json or after the run, else the only (or first) one there."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sqlalchemy.exc import SQLAlchemyError

    storage = f"sqlite:///{db.resolve()}"
    try:
        names = optuna.get_all_study_names(storage=storage)
        if not names:
            return None
        info = _tune_json(run_dir)
        name = next((n for n in (info.get("study"), run_dir.name) if n in names), names[0])
        return optuna.load_study(study_name=name, storage=storage)
    except (SQLAlchemyError, RuntimeError, ValueError):  # not an Optuna database (or one from a newer Optuna)
        return None


def _last(values: dict) -> float | None:
    return values[max(values)] if values else None


def _csv_trials(path: Path) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(path)
    params = [c for c in frame.columns if c not in CSV_COLUMNS]
    trials = []
    for row in frame.to_dict("records"):
        value = row.get("value")
        trials.append({"number": int(row["number"]), "state": str(row.get("state", "COMPLETE")),
                       "value": None if value is None or _nan(value) else float(value),
                       "params": {_param_name(c): _cell(row[c]) for c in params if not _nan(row[c])}})
    return trials


def _param_name(column: str) -> str:
    return next((column.removeprefix(p) for p in PARAM_PREFIXES if column.startswith(p)), column)


def _cell(value: Any) -> Any:
    """A CSV cell as the value it was: JSON lists ('[128, 64]') parsed back."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if hasattr(value, "item") else value


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _tune_json(run_dir: Path) -> dict:
    info = read_json(run_dir / "tune.json") if (run_dir / "tune.json").is_file() else {}
    return info if isinstance(info, dict) else {}


def direction_of(info: dict, study) -> str:
    """"minimize" or "maximize": tune.json's, the study's, else from the metric's name."""
    if info.get("direction") in ("minimize", "maximize"):
        return info["direction"]
    if study is not None:
        return study.direction.name.lower()
    metric = str(info.get("metric") or "")
    return "minimize" if metric.endswith(LOWER_IS_BETTER) else "maximize"


# ---------------------------------------------------------------- pictures


def history_plot(trials: list[dict], metric: str, direction: str, small: bool = False) -> str | None:
    """Each complete trial's validation value by trial number, pruned trials as crosses at their last reported
    value, and the best so far as a step line."""
    complete = sorted((t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None),
                      key=lambda t: t["number"])
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["value"] is not None]
    if not complete and not pruned:
        return None
    fig, (ax,) = _figure(3.6, 2.6) if small else _figure(5.4, 3.4)
    ax.scatter([t["number"] for t in complete], [t["value"] for t in complete], s=14, label="complete trial")
    if pruned:
        ax.scatter([t["number"] for t in pruned], [t["value"] for t in pruned], marker="x", s=18, color="grey",
                   label="pruned (last value)")
    if complete:
        pick = min if direction == "minimize" else max
        best, xs, ys = None, [], []
        for t in complete:
            best = t["value"] if best is None else pick(best, t["value"])
            xs.append(t["number"])
            ys.append(best)
        ax.step(xs, ys, where="post", color="C3", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="optimisation history")
    ax.legend(fontsize="x-small" if small else "small")
    return data_uri(fig)


def folds_history_plot(series: dict[str, list[dict]], metric: str, direction: str, small: bool = False) -> str | None:
    """A k-fold rung's studies, one per fold: each fold's complete trials (faint) and its best so far."""
    if not any(t["state"] == "COMPLETE" and t["value"] is not None for trials in series.values() for t in trials):
        return None
    from matplotlib.ticker import MaxNLocator

    fig, (ax,) = _figure(3.6, 2.6) if small else _figure(5.4, 3.4)
    pick = min if direction == "minimize" else max
    for i, (fold, trials) in enumerate(series.items()):
        complete = sorted((t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None),
                          key=lambda t: t["number"])
        if not complete:
            continue
        xs, ys = [t["number"] for t in complete], [t["value"] for t in complete]
        ax.scatter(xs, ys, s=8, alpha=0.35, color=f"C{i % 10}")
        best = [pick(ys[: j + 1]) for j in range(len(ys))]
        ax.step(xs, best, where="post", color=f"C{i % 10}", label=fold)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="optimisation history per fold (best so far)")
    ax.legend(fontsize="x-small")
    return data_uri(fig)


def tuned_folds(cv_dir: Path) -> list[Path]:
    """The fold runs of a k-fold rung that were tuned."""
    return sorted(d for d in cv_dir.glob("fold-*") if is_tuned(d))


def folds_series(folds: list[Path]) -> tuple[dict[str, list[dict]], str, str]:
    """(fold name -> its trials, metric, direction) of tuned fold runs."""
    series, metric, direction = {}, "value", "maximize"
    for fold in folds:
        trials, study, _ = load_trials(fold)
        info = _tune_json(fold)
        series[fold.name] = trials
        metric, direction = info.get("metric") or metric, direction_of(info, study)
    return series, metric, direction


def importances(trials: list[dict], study, direction: str) -> tuple[dict[str, float] | None, str | None]:
    """(parameter -> fANOVA importance, None) or (None, why there are none)."""
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if len(complete) < 2:
        return None, (f"no parameter importances: they need at least 2 complete trials, this study has "
                      f"{len(complete)}")
    import optuna

    try:
        study = study if study is not None else _study_from(complete, direction)
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as err:
        return None, f"no parameter importances: {err}"
    if not found:
        return None, "no parameter importances: the complete trials share no parameter"
    return dict(found), None


def _study_from(complete: list[dict], direction: str):
    """An in-memory study holding trials.csv's complete trials, each parameter's distribution its observed range
    (numbers) or its observed values (anything else)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    names = sorted({k for t in complete for k in t["params"]})
    dists = {}
    for name in names:
        values = [t["params"][name] for t in complete if name in t["params"]]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric and min(values) < max(values):
            dists[name] = FloatDistribution(float(min(values)), float(max(values)))
        else:
            dists[name] = CategoricalDistribution(sorted({json.dumps(v) for v in values}))
    study = optuna.create_study(direction=direction)
    for t in complete:
        params = {k: (json.dumps(v) if isinstance(dists[k], CategoricalDistribution) else float(v))
                  for k, v in t["params"].items()}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=t["value"]))
    return study


def importance_plot(found: dict[str, float]) -> str:
    """A horizontal bar per parameter, the most important on top."""
    names = sorted(found, key=found.get)
    fig, (ax,) = _figure(5.4, max(1.6, 0.45 * len(names) + 1.0))
    ax.barh(names, [found[n] for n in names])
    ax.set(xlabel="importance (fANOVA, sums to 1)", title="parameter importances")
    return data_uri(fig)


# ---------------------------------------------------------------- report contexts


def tuning_context(run_dir: Path, fmt) -> dict | None:
    """A tuned run's section: summary line, figures, best parameters and notes; None for a run not tuned."""
    if not is_tuned(run_dir):
        return None
    name = run_dir.name
    trials, study, source = load_trials(run_dir)
    info = _tune_json(run_dir)
    direction = direction_of(info, study)
    metric = info.get("metric") or "value"
    counts = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    figures, notes = [], []
    history = history_plot(trials, metric, direction)
    if history:
        figures.append({"id": f"{name}/tuning-history", "title": "optimisation history", "uri": history})
    else:
        notes.append("no optimisation history: no trial has a validation value yet")
    found, why = importances(trials, study, direction)
    if found:
        figures.append({"id": f"{name}/tuning-importances", "title": "parameter importances",
                        "uri": importance_plot(found)})
    else:
        notes.append(why)
    if counts["FAIL"]:
        notes.append(f"{counts['FAIL']} failed trials (a killed run's, or an error) are not shown and not counted")
    best = _best(trials, direction, info)
    budget = f", budget {info['budget']}" if info.get("budget") else ""
    summary = (f"{counts['COMPLETE']} complete and {counts['PRUNED']} pruned trials{budget}, scored on the "
               f"validation split ({metric}, {direction[:3]}imised); from {source}")
    if best is not None:
        summary += f"; best: trial {best['number']}, {metric} {fmt(best['value'])}" if best["number"] is not None \
            else f"; best {metric} {fmt(best['value'])}"
    params = best["params"] if best is not None else {}
    return {"summary": summary, "figures": figures, "notes": notes,
            "best_params": [{"path": k, "value": _show(v, fmt)} for k, v in params.items()],
            "importances": {k: fmt(v) for k, v in (found or {}).items()}}


def folds_tuning_context(cv_dir: Path) -> dict | None:
    """A tuned k-fold rung's section: every fold's history on one plot and each fold's best parameters (each fold
    is tuned on its own inner validation split); None when no fold was tuned."""
    folds = tuned_folds(cv_dir)
    if not folds:
        return None
    series, metric, direction = folds_series(folds)
    uri = folds_history_plot(series, metric, direction)
    figures = [{"id": f"{cv_dir.name}/tuning-history", "title": "optimisation history per fold", "uri": uri}] \
        if uri else []
    rows = []
    for fold in folds:
        best = _best(series[fold.name], direction, _tune_json(fold))
        for path, value in (best["params"] if best else {}).items():
            rows.append({"path": f"{fold.name}: {path}", "value": _show(value, str)})
    counts = [sum(t["state"] == "COMPLETE" for t in series[f.name]) for f in folds]
    summary = (f"{len(folds)} folds tuned, each on its own inner validation split ({metric}); complete trials per "
               f"fold: {', '.join(map(str, counts))}; importances are in each fold run's own report")
    return {"summary": summary, "figures": figures, "notes": [], "best_params": rows, "importances": {}}


def _best(trials: list[dict], direction: str, info: dict) -> dict | None:
    """The best complete trial (number, value, params); tune.json's best_params (decoded config values) win."""
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not complete and not info.get("best_params"):
        return None
    pick = min if direction == "minimize" else max
    trial = pick(complete, key=lambda t: t["value"]) if complete else {"number": None, "value": None, "params": {}}
    params = info.get("best_params") if isinstance(info.get("best_params"), dict) else trial["params"]
    value = info.get("best_value", trial["value"])
    return {"number": trial["number"], "value": value, "params": params}


def _show(value: Any, fmt) -> str:
    return json.dumps(value) if isinstance(value, list | dict) or value is None else fmt(value)


def ladder_panels(rows: list[dict], folder: Path) -> list[dict]:
    """One small optimisation-history panel per tuned rung of a ladder (a k-fold rung: every fold's study on one
    panel)."""
    panels = []
    for row in rows:
        rung_dir = folder / str(row["rung"])
        if folds := tuned_folds(rung_dir):
            series, metric, direction = folds_series(folds)
            uri = folds_history_plot(series, metric, direction, small=True)
            if uri:
                panels.append({"id": f"tuning/{rung_dir.name}", "rung": rung_dir.name, "uri": uri,
                               "caption": f"{rung_dir.name}: one study per fold, {len(folds)} folds"})
            continue
        if not is_tuned(rung_dir):
            continue
        trials, study, _ = load_trials(rung_dir)
        info = _tune_json(rung_dir)
        uri = history_plot(trials, info.get("metric") or "value", direction_of(info, study), small=True)
        if uri:
            complete = sum(t["state"] == "COMPLETE" for t in trials)
            pruned = sum(t["state"] == "PRUNED" for t in trials)
            panels.append({"id": f"tuning/{rung_dir.name}", "rung": rung_dir.name, "uri": uri,
                           "caption": f"{rung_dir.name}: {complete} complete, {pruned} pruned trials"})
    return panels
