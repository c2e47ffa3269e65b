"""`ladder audit RUN --sensitive sex,race [--mitigate]`: a trained binary classifier's group metrics on the
test split, written to RUN/audit.json (and shown in its report), and optionally the same after
fairlearn's ThresholdOptimizer, fitted on the validation split."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from modelladder.audit.fairness import GROUP_METRICS, group_metrics, headline_gaps, threshold_optimizer
from modelladder.config import AuditConfig, LadderConfig, RunConfig
from modelladder.data.bundle import DataBundle
from modelladder.errors import InputError
from modelladder.runs import write_json
from modelladder.serve.predictor import Predictor


def with_sensitive(cfg: RunConfig, columns: list[str]) -> RunConfig:
    """`cfg` whose data.sensitive also holds `columns`, so that its bundle carries them per split."""
    keep = list(dict.fromkeys([*cfg.data.sensitive, *columns]))
    return cfg.model_copy(update={"data": cfg.data.model_copy(update={"sensitive": keep})})


def audit_run(run_dir: str | Path, sensitive: list[str] = (), *, mitigate: bool = False,
              constraint: str = "demographic_parity", data: DataBundle | None = None) -> dict:
    """Audit the run in `run_dir` over the `sensitive` columns (default: its data.sensitive); write and
    return audit.json's record. `data` (the run's bundle, if at hand) saves loading the dataset again."""
    run_dir = Path(run_dir)
    predictor = Predictor.load(run_dir)
    columns = list(sensitive) or list(predictor.cfg.data.sensitive)
    _check_auditable(predictor, run_dir, columns)
    if data is None or any(c not in data.sensitive.get("test", {}) for c in columns):
        from modelladder.verbs.build import load_run_data

        data = load_run_data(with_sensitive(predictor.cfg, columns))
    X, y = data.split("test")
    groups = data.sensitive["test"][columns]
    record = {"split": "test", "n": len(y), "positive": predictor.classes[1], "sensitive": columns,
              **group_metrics(y, predictor.scores(X).argmax(axis=1), groups)}
    if mitigate:
        record["mitigation"] = _mitigate(predictor, data, columns, constraint)
    write_json(run_dir / "audit.json", record)
    return record


def _check_auditable(predictor: Predictor, run_dir: Path, columns: list[str]) -> None:
    if not columns:
        raise InputError(f"audit of {run_dir} needs sensitive columns: pass --sensitive COLUMN[,COLUMN...] "
                         "(e.g. --sensitive sex,race) or set data.sensitive in the run's config")
    if predictor.preprocess.get("kind") != "tabular":
        raise InputError(f"audit needs a run trained on a table (csv, parquet, adult) whose columns hold the "
                         f"groups; {run_dir} was trained on {predictor.preprocess.get('kind')} data")
    if len(predictor.classes) != 2:
        raise InputError(f"audit needs a binary classification run (selection rate, TPR and FPR need one "
                         f"positive class); {run_dir} has classes {predictor.classes}")


def _mitigate(predictor: Predictor, data: DataBundle, columns: list[str], constraint: str) -> dict:
    """One ThresholdOptimizer per sensitive column (their combinations would leave groups too small to
    fit), each judged on the test split by the metrics of its own column."""
    X_val, y_val = data.split("val")
    if len(y_val) == 0:
        raise InputError("--mitigate fits the thresholds on the validation split, and this run has none: "
                         "train it with data.split.val > 0")
    X, y = data.split("test")
    after = {}
    for column in columns:
        try:
            optimizer = threshold_optimizer(predictor.scores, X_val, y_val, data.sensitive["val"][[column]],
                                            constraint=constraint)
            y_fair = optimizer.predict(X, sensitive_features=data.sensitive["test"][[column]],
                                       random_state=predictor.cfg.seed)
        except ValueError as err:  # a group with one label only in validation, or missing there
            raise InputError(f"--mitigate on '{column}': {err}; every group needs both labels in the validation "
                             "split: raise data.split.val or leave that column out") from None
        metrics = group_metrics(y, y_fair, data.sensitive["test"][[column]])
        after[column] = {"overall": metrics["overall"], **metrics["attributes"][column]}
    return {"method": "fairlearn ThresholdOptimizer", "constraint": constraint, "fitted_on": "val",
            "n_fit": len(y_val), "attributes": after}


def audited_rungs(ladder: LadderConfig, rungs: list[RunConfig]) -> list[RunConfig]:
    """The rungs of a ladder with an audit section, each carrying the audit's columns in data.sensitive."""
    if ladder.protocol.kind != "holdout":
        raise InputError("audit runs on the test split of a holdout ladder; protocol.kind is "
                         f"'{ladder.protocol.kind}': drop the audit section or use protocol.kind holdout")
    return [with_sensitive(cfg, ladder.audit.sensitive) for cfg in rungs]


def audit_rung(run_dir: Path, cfg: AuditConfig, data: DataBundle) -> dict:
    """A ladder rung's audit: audit.json in its folder, the headline gaps for its leaderboard row."""
    record = audit_run(run_dir, cfg.sensitive, mitigate=cfg.mitigate, constraint=cfg.constraint, data=data)
    return {k: None if v is None else round(v, 4) for k, v in headline_gaps(record).items()}


def audit_table(record: dict, title: str) -> Table:
    """The groups of every sensitive column with their metrics; the gaps (and after mitigation) in the caption."""
    table = Table(title=title)
    for name in ("column", "group", "n", *GROUP_METRICS):
        table.add_column(name, justify="left" if name in ("column", "group") else "right")
    for column, attribute in record["attributes"].items():
        for group, metrics in attribute["groups"].items():
            table.add_row(column, group, f"{metrics['n']:,}", *(_fmt(metrics[m]) for m in GROUP_METRICS))
    lines = [(f"positive class '{record['positive']}', {record['split']} split, n={record['n']:,}; "
              f"overall accuracy {_fmt(record['overall']['accuracy'])}")]
    lines += [_gaps_line(column, attribute, record.get("mitigation")) for column, attribute in
              record["attributes"].items()]
    table.caption = "\n".join(lines)
    return table


def _gaps_line(column: str, attribute: dict, mitigation: dict | None) -> str:
    line = (f"{column}: demographic parity difference {_fmt(attribute['demographic_parity_difference'])}, "
            f"equalized odds difference {_fmt(attribute['equalized_odds_difference'])}")
    if mitigation is None:
        return line
    after = mitigation["attributes"][column]
    return (line + f"; after ThresholdOptimizer ({mitigation['constraint']}): "
            f"{_fmt(after['demographic_parity_difference'])} / {_fmt(after['equalized_odds_difference'])}, "
            f"accuracy {_fmt(after['overall']['accuracy'])}")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(args) -> int:
    """`ladder audit RUN [--sensitive COLUMNS] [--mitigate] [--constraint]`."""
    from rich.console import Console

    from modelladder.verbs.report import report_for

    columns = [c.strip() for c in (args.sensitive or "").split(",") if c.strip()]
    record = audit_run(args.run, columns, mitigate=args.mitigate, constraint=args.constraint)
    Console(width=max(Console().width, 120)).print(audit_table(record, f"{args.run.name}: fairness audit"))
    print(f"written: {args.run / 'audit.json'}, {report_for(args.run)}")
    return 0
