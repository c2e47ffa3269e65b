"""A run's model card and fairness-audit tables for report.html, from the files in its run folder.

The card gathers what a reader needs before using a model: intended use (the config's `card:`
section, else cautious defaults), the training data, metrics overall and by group (audit.json),
explanation examples (attributions/*.png or the pictures/explain-*.png that `ladder explain`
writes), privacy (DP epsilon from summary.json, PII counts from preprocess.json) and cost.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from modelladder.audit.fairness import GROUP_METRICS
from modelladder.runs import read_json

COSTS = {"train_seconds": "training time (s)", "cpu_s": "CPU time (s)", "params": "parameters",
         "nodes": "tree nodes", "flops_train": "training FLOPs", "peak_mem_mb": "peak memory (MB)",
         "energy_cpu_kwh": "CPU energy (kWh, measured: RAPL)", "energy_modelled_kwh": "energy (kWh, modelled)",
         "energy_kwh": "energy (kWh, total)", "co2_kg": "CO2 (kg, est.)", "co2_country": "CO2 grid (country)"}
EXPLANATION_EXAMPLES = 2  # pictures inlined in the card; the Pictures section holds them all
DEFAULT_USE = ("Research and teaching: comparing models on {dataset} under one evaluation protocol. The model "
               "has not been validated for any decision about a person.")
DEFAULT_OUT_OF_SCOPE = ("Decisions that affect people (credit, hiring, housing, insurance, policing) without a "
                        "separate validation on the population concerned and a fairness review.")


def audit_context(run_dir: Path, fmt) -> dict | None:
    """audit.json as tables: each sensitive column's groups, its gaps, and the before / after rows."""
    path = run_dir / "audit.json"
    if not path.is_file():
        return None
    audit = read_json(path)
    attributes = []
    for column, attribute in audit["attributes"].items():
        groups = [{"group": g, "n": fmt(m["n"]), **{k: fmt(m.get(k)) for k in GROUP_METRICS}}
                  for g, m in attribute["groups"].items()]
        attributes.append({"name": column, "groups": groups,
                           "dp": fmt(attribute["demographic_parity_difference"]),
                           "eo": fmt(attribute["equalized_odds_difference"])})
    return {"split": audit["split"], "n": fmt(audit["n"]), "positive": audit["positive"],
            "overall": {k: fmt(audit["overall"].get(k)) for k in GROUP_METRICS},
            "attributes": attributes, "mitigation": _mitigation(audit, fmt)}


def _mitigation(audit: dict, fmt) -> dict | None:
    after = audit.get("mitigation")
    if after is None:
        return None
    rows = []
    for column, attribute in audit["attributes"].items():
        mitigated = after["attributes"][column]
        for key, label in (("demographic_parity_difference", "demographic parity difference"),
                           ("equalized_odds_difference", "equalized odds difference")):
            rows.append({"column": column, "metric": label, "before": fmt(attribute[key]),
                         "after": fmt(mitigated[key])})
        rows.append({"column": column, "metric": "accuracy (overall)", "before": fmt(audit["overall"]["accuracy"]),
                     "after": fmt(mitigated["overall"]["accuracy"])})
    return {"method": after["method"], "constraint": after["constraint"], "fitted_on": after["fitted_on"],
            "n_fit": fmt(after["n_fit"]), "rows": rows}


def card_context(run_dir: Path, summary: dict, evaluation: dict, fmt) -> dict:
    """The model card: its parts (a title and (label, text) pairs each) and its explanation pictures."""
    config = _raw_config(run_dir)
    card = config.get("card") or {}
    data = config.get("data") or {}
    preprocess = read_json(run_dir / "preprocess.json") if (run_dir / "preprocess.json").is_file() else {}
    dataset = data.get("dataset", "its dataset")
    use = [("intended use", card.get("intended_use") or DEFAULT_USE.format(dataset=dataset)),
           ("out of scope", card.get("out_of_scope") or DEFAULT_OUT_OF_SCOPE)]
    use += [(label, card[key]) for key, label in (("limitations", "limitations"), ("contact", "contact"))
            if card.get(key)]
    split = evaluation.get("split", "-")
    parts = [("Intended use", use),
             ("Training data", _data_entries(preprocess, summary, data, fmt)),
             (f"Metrics ({split} split)", [(k, fmt(v)) for k, v in evaluation.get("metrics", {}).items()]),
             ("Metrics by group", _group_entries(run_dir, fmt)),
             ("Privacy", _privacy_entries(summary, preprocess.get("transform") or {}, fmt)),
             ("Cost", [(label, fmt(summary[key])) for key, label in COSTS.items() if summary.get(key) is not None])]
    return {"model": f"{summary.get('model', '?')} ({summary.get('family', '?')})",
            "parts": [{"title": title, "entries": entries} for title, entries in parts if entries],
            "explanations": _explanations(run_dir)}


def _raw_config(run_dir: Path) -> dict:
    try:
        raw = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _data_entries(preprocess: dict, summary: dict, data: dict, fmt) -> list[tuple[str, str]]:
    entries = [("source", preprocess.get("source") or data.get("dataset", "-")),
               ("kind", preprocess.get("kind", "-")),
               ("training examples", fmt(summary.get("train_examples")))]
    if preprocess.get("classes"):
        entries.append(("classes", ", ".join(preprocess["classes"])))
    if preprocess.get("kind") == "tabular":
        entries.append(("features", f"{len(preprocess.get('feature_names', []))} after one-hot encoding"))
    if data.get("drop"):
        entries.append(("columns left out", ", ".join(data["drop"])))
    if data.get("sensitive"):
        entries.append(("sensitive columns (audit)", ", ".join(data["sensitive"])))
    return entries


def _group_entries(run_dir: Path, fmt) -> list[tuple[str, str]]:
    if not (run_dir / "audit.json").is_file():
        return [("by group", "not audited: run `ladder audit RUN --sensitive COLUMNS` on a table run")]
    audit = read_json(run_dir / "audit.json")
    entries = []
    for column, attribute in audit["attributes"].items():
        accuracy = ", ".join(f"{g} {fmt(m['accuracy'])}" for g, m in attribute["groups"].items())
        gaps = (f"demographic parity difference {fmt(attribute['demographic_parity_difference'])}, "
                f"equalized odds difference {fmt(attribute['equalized_odds_difference'])}")
        entries.append((column, f"accuracy {accuracy}; {gaps}"))
    return entries


def _privacy_entries(summary: dict, transform: dict, fmt) -> list[tuple[str, str]]:
    if summary.get("dp_epsilon") is not None:
        dp = (f"DP-SGD (opacus): epsilon {fmt(summary['dp_epsilon'])} spent of {fmt(summary['dp_target_epsilon'])}"
              f" at delta {fmt(summary['dp_delta'])} ({summary.get('dp_sampling', 'poisson')} sampling, rate "
              f"{fmt(summary.get('dp_sample_rate'))}, RDP accountant); per-example gradients clipped to "
              f"{fmt(summary['dp_max_grad_norm'])}, noise multiplier {fmt(summary['dp_noise_multiplier'])}; noise "
              f"from a {summary.get('dp_noise', 'seeded generator')}. Not covered: preprocessing statistics fitted "
              "on the private training rows (normalisation, vocabulary) ship with the model outside this guarantee")
    else:
        dp = "none: the model was trained without differential privacy"
    entries = [("differential privacy", dp)]
    counts = transform.get("pii_counts")
    if counts:
        per_split = "; ".join(f"{split}: " + ", ".join(f"{kind} {n}" for kind, n in kinds.items())
                              for split, kinds in counts.items())
        entries.append(("PII redaction", f"personal data replaced by placeholders before training ({per_split})"))
    elif transform.get("kind") == "text":
        entries.append(("PII redaction", "off (data.clean.pii: false)"))
    return entries


def _explanations(run_dir: Path) -> list[dict]:
    found = sorted((run_dir / "attributions").glob("*.png")) + sorted((run_dir / "pictures").glob("explain-*.png"))
    return [{"name": str(p.relative_to(run_dir)),
             "uri": "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")}
            for p in found[:EXPLANATION_EXAMPLES]]
