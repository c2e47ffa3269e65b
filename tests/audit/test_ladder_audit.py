"""The audit in a ladder (fairness columns, audit.json per rung), the DP rung's epsilon column, the model card
and audit tables in report.html, and `ladder audit` from the command line."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from modelladder.cli import main
from modelladder.config import validate_ladder
from modelladder.errors import InputError
from modelladder.report import write_report
from modelladder.report.leaderboard import leaderboard_table
from modelladder.verbs.ladder import run_ladder
from tests.audit.helpers import group_table


def ladder_config(csv, **extra) -> dict:
    return {"name": "fair", "data": {"dataset": "csv", "path": str(csv), "label": "label", "split": {"val": 0.25}},
            "audit": {"sensitive": ["group"], "mitigate": True},
            "card": {"intended_use": "Testing the model card."},
            "train": {"epochs": 3, "batch_size": 64, "progress": False, "threads": 1},
            "rungs": [{"name": "logreg", "model": {"name": "logreg"}},
                      {"name": "mlp_dp", "model": {"name": "mlp", "hidden": [16]},
                       "train": {"privacy": {"target_epsilon": 2.0, "delta": 1e-4}}}], **extra}


@pytest.fixture(scope="module")
def ladder_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair")
    ladder = validate_ladder(ladder_config(group_table(tmp / "t.csv", unfair=True)))
    rows = run_ladder(ladder, tmp / "runs", console=Console(file=io.StringIO()))
    write_report(tmp / "runs" / "fair")
    return tmp / "runs" / "fair", rows


def test_the_leaderboard_has_the_fairness_gaps_and_the_epsilon(ladder_dir):
    folder, rows = ladder_dir
    logreg, dp = rows
    assert logreg["parity_gap_group"] > 0.55 and logreg["odds_gap_group"] >= 0
    assert "dp_epsilon" not in logreg and 0 < dp["dp_epsilon"] <= 2.0
    audit = json.loads((folder / "logreg" / "audit.json").read_text())
    assert round(audit["attributes"]["group"]["demographic_parity_difference"], 4) == logreg["parity_gap_group"]
    assert audit["mitigation"]["attributes"]["group"]["demographic_parity_difference"] < 0.1
    out = io.StringIO()
    Console(file=out, width=160).print(leaderboard_table(rows, "fair"))
    assert "parity gap group" in out.getvalue() and "dp epsilon" in out.getvalue()


def test_the_report_shows_the_audit_and_a_model_card_per_rung(ladder_dir):
    folder, _ = ladder_dir
    html = (folder / "report.html").read_text()
    assert html.count('<table class="audit" data-attribute="group">') == 2
    assert html.count('<table class="mitigation">') == 2
    assert html.count('<div class="model-card">') == 2
    assert "Testing the model card." in html
    assert "DP-SGD (opacus): epsilon" in html and "none: the model was trained without differential privacy" in html
    assert "demographic parity difference" in html and "<th>parity_gap_group</th>" in html


def test_an_audit_needs_a_holdout_ladder(tmp_path):
    ladder = validate_ladder(ladder_config(tmp_path / "t.csv", protocol={"kind": "kfold", "folds": 3}))
    with pytest.raises(InputError, match="audit runs on the test split of a holdout ladder; protocol.kind is "
                                         "'kfold'"):
        run_ladder(ladder, tmp_path / "runs", console=Console(file=io.StringIO()))


def test_the_audit_command_writes_audit_json_and_the_report(ladder_dir, capsys):
    folder, _ = ladder_dir
    assert main(["audit", str(folder / "logreg"), "--sensitive", "group"]) == 0
    out = capsys.readouterr().out
    assert "demographic parity difference" in out and "written:" in out
    assert "mitigation" not in json.loads((folder / "logreg" / "audit.json").read_text())
    assert '<table class="audit" data-attribute="group">' in (folder / "logreg" / "report.html").read_text()
    assert main(["audit", str(folder / "logreg"), "--sensitive", "gruop"]) == 2
    assert "data.sensitive 'gruop' is not a column" in capsys.readouterr().err
