"""The story a ladder report tells before its tables: the budget verdict, the Pareto frontier of the
headline metric against each cost, the step up the ladder, calibration (classifiers) or predicted vs true
(regressors), and how the costs were measured.

Every part reads what the ladder folder holds and says what it lacks: folders written before a field
existed (intervals, ECE, env.json's thread and load records) still get a report.
"""

from __future__ import annotations

from pathlib import Path

from modelladder.report import plots
from modelladder.report.pareto import FRONTIER_COSTS, Headline, frontier_points, headline, number
from modelladder.report.reliability import from_predictions
from modelladder.report.steps import load_predictions, step_table
from modelladder.runs import read_json


def story_context(folder: Path, rows: list[dict], fmt) -> dict:
    head = headline(rows)
    seed = _seed(folder)
    return {
        "verdict": _verdict(folder),
        "headline": head.label if head else None,
        "frontiers": _frontiers(rows, head) if head else [],
        "steps": step_table(folder, rows, head, seed=seed) if head else None,
        "calibration": _calibration(folder, rows, fmt),
        "predictions": _predictions(folder, rows),
        "measured": measured_notes(folder, rows),
    }


def _seed(folder: Path) -> int:
    """The ladder's seed (ladder.yaml), so the step table's bootstrap is the same every time it is drawn."""
    import yaml

    path = folder / "ladder.yaml"
    try:
        seed = (yaml.safe_load(path.read_text()) or {}).get("seed", 0) if path.is_file() else 0
    except yaml.YAMLError:
        return 0
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 0


def _verdict(folder: Path) -> dict | None:
    path = folder / "budget.json"
    if not path.is_file():
        return None
    record = read_json(path)
    return record if isinstance(record, dict) and "text" in record else None


def _frontiers(rows: list[dict], head: Headline) -> list[dict]:
    out = []
    for cost in FRONTIER_COSTS:
        points = frontier_points(rows, head, cost)
        if points is None or len(points["names"]) < 2:
            continue
        dominated = [n for n, best in zip(points["names"], points["frontier"]) if not best]
        caption = (f"on the frontier: {', '.join(n for n, b in zip(points['names'], points['frontier']) if b)}"
                   + (f"; dominated (greyed): {', '.join(dominated)}" if dominated else "; none dominated"))
        if points["left_out"]:
            caption += f"; not drawn, no {cost} value: {', '.join(points['left_out'])}"
        out.append({"id": f"frontier/{cost}", "title": f"{head.column} vs {cost}", "caption": caption,
                    "uri": plots.frontier_figure(points, head.label)})
    return out


def _calibration(folder: Path, rows: list[dict], fmt) -> dict | None:
    """Each classifier rung's reliability diagram (from its test predictions) and ECE, before and after
    calibration where the run was calibrated (eval.calibrate)."""
    panels, table = [], []
    for row in rows:
        rung = str(row["rung"])
        frame = load_predictions(folder / rung / "predictions_test.csv")
        rel = from_predictions(frame) if frame is not None else None
        ece = number(row.get("test_ece"))
        if rel is None and ece is None:
            continue
        method = row.get("calibration")
        suffix = f" ({method})" if method else ""
        if rel is not None:
            panels.append({"name": rung, "reliability": rel, "ece": ece if ece is not None else rel["ece"],
                           "suffix": suffix})
        table.append({"rung": rung, "ece": fmt(ece if ece is not None else rel["ece"]),
                      "interval": _interval(row, "test_ece", fmt),
                      "method": method or "none",
                      "uncalibrated": fmt(row.get("test_ece_uncalibrated")),
                      "confidence": fmt(rel["mean_confidence"]) if rel else "-",
                      "accuracy": fmt(rel["accuracy_overall"]) if rel else "-",
                      "coverage": fmt(row.get("test_coverage")), "set_size": fmt(row.get("test_set_size"))})
    if not table:
        return None
    return {"rows": table, "uri": plots.reliability_grid(panels) if panels else None,
            "conformal": any(r["coverage"] != "-" for r in table)}


def _predictions(folder: Path, rows: list[dict]) -> dict | None:
    """Every regression rung's test predictions against the truth, one panel each on shared axes (None for a
    classification ladder)."""
    panels = []
    for row in rows:
        frame = load_predictions(folder / str(row["rung"]) / "predictions_test.csv")
        if frame is None or any(c.startswith("proba_") for c in frame.columns):
            continue
        try:
            true, predicted = frame["true"].astype(float).to_numpy(), frame["predicted"].astype(float).to_numpy()
        except ValueError:  # not numbers: not a regression's predictions
            continue
        panels.append({"name": str(row["rung"]), "true": true, "predicted": predicted,
                       "rmse": number(row.get("test_rmse")), "r2": number(row.get("test_r2"))})
    if not panels:
        return None
    return {"uri": plots.predicted_vs_true_grid(panels), "rungs": [p["name"] for p in panels]}


def _interval(row: dict, column: str, fmt) -> str:
    low, high = row.get(f"{column}_low"), row.get(f"{column}_high")
    return f"{fmt(low)} to {fmt(high)}" if number(low) is not None and number(high) is not None else "-"


# ---------------------------------------------------------------- how it was measured


def measured_notes(folder: Path, rows: list[dict]) -> list[str]:
    """Sentences for the footnote: the machine, threads and load, latency batch sizes, energy and CO2."""
    env = _env(folder, rows)
    notes = []
    cpu = _find(env, ("cpu_model", "cpu.model", "processor", "cpu"))
    cores = _find(env, ("cores", "cpu_count"))
    if cpu or cores:
        notes.append(f"Machine: {cpu or 'CPU model not recorded'}" + (f", {cores} cores" if cores else "") + ".")
    load = _load(env)
    latency = _latency_record(folder, rows)
    if latency:
        notes.append(f"Latency: batch {latency.get('batch_size', 1)}, {latency.get('threads', '?')} thread(s), "
                     f"n_jobs=1, {latency.get('calls', 'several')} timed calls after a warm-up; p50 and p95 per "
                     f"example. Throughput: batch {latency.get('throughput_batch_size', '?')}, the same threads.")
    else:
        threads = _find(env, ("torch_threads", "threads"))
        notes.append("Latency: measured before the threads and batch sizes were recorded with it (batch 1, "
                     "whatever threads the process had" + (f"; env.json: {threads} torch threads" if threads else "")
                     + "), so it is not comparable across runs.")
    notes.append(f"Load average: {load}." if load else "Load average: not recorded.")
    notes.append(_energy_note(rows, env))
    return notes


def _env(folder: Path, rows: list[dict]) -> dict:
    """The ladder folder's env.json, else its first rung's, flattened to dotted keys."""
    for path in [folder / "env.json"] + [folder / str(r["rung"]) / "env.json" for r in rows[:1]]:
        if path.is_file():
            return _flat(read_json(path))
    return {}


def _flat(obj, prefix: str = "") -> dict:
    """{'cost': {'cores': 2}} -> {'cost.cores': 2}."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out = {}
    for key, val in obj.items():
        out |= _flat(val, f"{prefix}.{key}" if prefix else str(key))
    return out


def _find(env: dict, names: tuple[str, ...]) -> str | None:
    """The first env entry whose dotted key ends with one of `names` (checked in order), as text."""
    for name in names:
        for key, val in env.items():
            if (key == name or key.endswith((f".{name}", f"_{name}"))) and val not in (None, ""):
                return " ".join(str(v) for v in val) if isinstance(val, list) else str(val)
    return None


def _load(env: dict) -> str | None:
    start = _find(env, ("load_average_start", "load_start", "loadavg_start"))
    end = _find(env, ("load_average_end", "load_end", "loadavg_end"))
    if start or end:
        return f"{start or '?'} at the start, {end or '?'} at the end (1, 5, 15 min)"
    return _find(env, ("load_average", "loadavg"))


def _latency_record(folder: Path, rows: list[dict]) -> dict:
    """eval_test.json's latency record of the first rung that has one (batch size, threads, calls)."""
    for row in rows:
        path = folder / str(row["rung"]) / "eval_test.json"
        record = read_json(path).get("latency", {}) if path.is_file() else {}
        if isinstance(record, dict) and ("threads" in record or "batch_size" in record):
            return record
    return {}


def _energy_note(rows: list[dict], env: dict) -> str:
    measured = any(number(r.get("energy_cpu_kwh")) is not None for r in rows)
    modelled = any(number(r.get("energy_modelled_kwh")) is not None for r in rows)
    country = next((r["co2_country"] for r in rows if r.get("co2_country")), None) or _find(env, ("country",))
    rapl = _find(env, ("rapl_readable", "rapl"))
    if measured or modelled:
        text = ("Energy: energy_kwh = energy_cpu_kwh, measured from the CPU's RAPL counters where readable"
                f"{' (readable here)' if measured else ' (not readable here: none measured)'}, plus "
                "energy_modelled_kwh, codecarbon's model of the rest (RAM at a fixed wattage times wall time, "
                "CPU by TDP where RAPL is unreadable).")
    else:
        text = ("Energy: energy_kwh is codecarbon's estimate (largely modelled: RAM at a fixed wattage times wall "
                "time); this folder does not split measured from modelled energy.")
    if rapl and not (measured or modelled):
        text += f" RAPL readable: {rapl}."
    return text + (f" CO2 uses the grid intensity of {country}." if country else
                   " CO2 uses codecarbon's default grid (country not recorded).")
