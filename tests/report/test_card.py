"""The model card in report.html: intended use from the config, explanation pictures, privacy and cost."""

from __future__ import annotations

import numpy as np
from PIL import Image

from modelladder.config import validate_run
from modelladder.report import write_report
from modelladder.verbs.train import train_run


def test_a_card_shows_the_configured_use_the_explanations_and_the_cost(tmp_path):
    cfg = validate_run({"data": {"dataset": "digits", "limit": 200}, "model": {"name": "logreg"},
                        "card": {"intended_use": "Reading digits in a demo.", "contact": "ml@example.org"}})
    run = tmp_path / "run"
    run.mkdir()
    train_run(cfg, run)
    (run / "attributions").mkdir()
    Image.fromarray(np.eye(8, dtype=np.uint8) * 255).save(run / "attributions" / "digit-0.png")
    html = write_report(run).read_text()
    card = html[html.index('<div class="model-card">'):]
    assert "Model card: logreg (classic)" in card
    assert "<td>intended use</td><td>Reading digits in a demo.</td>" in card
    assert "<td>contact</td><td>ml@example.org</td>" in card
    assert "<td>source</td><td>sklearn.datasets.load_digits</td>" in card
    assert 'class="explanation"' in card and "attributions/digit-0.png" in card
    assert "not audited: run `ladder audit RUN --sensitive COLUMNS`" in card
    assert "<td>training time (s)</td>" in card and "<td>parameters</td><td>650</td>" in card  # 64 x 10 + 10


def test_a_text_card_reports_the_redacted_personal_data(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\n" + "".join(f"write to a{i}@example.com,pos\nsee http://x{i}.org now,neg\n"
                                           for i in range(20)))
    cfg = validate_run({"data": {"dataset": "text", "path": str(csv), "clean": {"pii": True}},
                        "model": {"name": "tfidf_logreg"}})
    run = tmp_path / "run"
    run.mkdir()
    train_run(cfg, run)
    html = write_report(run).read_text()
    row = html[html.index("<td>PII redaction</td>"):]
    row = row[:row.index("</tr>")]
    assert "personal data replaced by placeholders before training" in row
    assert "EMAIL" in row and "URL" in row and "test: EMAIL" in row
