"""PII redaction: each kind is caught in its usual spellings, near misses are left alone, and a text run
trains on, reports and predicts from the redacted text."""

from __future__ import annotations

import json

import pytest

from modelladder.config import validate_run
from modelladder.data.load import load_data
from modelladder.data.pii import find_pii, luhn_ok, redact, scan
from modelladder.serve.predictor import Predictor
from modelladder.verbs.train import train_run

CAUGHT = [
    ("write to jane.doe+news@example.co.uk today", "write to [EMAIL] today"),
    ("MAIL Bob_99@mail-server.example.org.", "MAIL [EMAIL]."),
    ("see https://example.com/a?b=1&c=2, then", "see [URL], then"),
    ("(www.example.org/path)", "([URL])"),
    ("ftp://files.example.net/x.tar.gz", "[URL]"),
    ("server 192.168.0.1 is up", "server [IP] is up"),
    ("from 8.8.8.8.", "from [IP]."),
    ("v6 2001:db8::8a2e:370:7334 here", "v6 [IP] here"),
    ("loopback ::1 and fe80::1.", "loopback [IP] and [IP]."),
    ("card 4111 1111 1111 1111 ok", "card [CREDIT_CARD] ok"),
    ("card 4539-5787-6362-1486 ok", "card [CREDIT_CARD] ok"),
    ("amex 378282246310005", "amex [CREDIT_CARD]"),
    ("call (212) 555-0142 now", "call [PHONE] now"),
    ("ring +44 20 7946 0958.", "ring [PHONE]."),
    ("tel 415.555.2671", "tel [PHONE]"),
    ("+1-202-555-0173", "[PHONE]"),
]

LEFT_ALONE = [
    "On 2023-01-15 at 10:30:45 I paid $1,299.99 for 12345 items.",  # date, time, price, plain number
    "Dates 15/01/2023 and 08/31/95, the years 1999-2020, zip 94105-1234.",
    "Order 4111 1111 1111 1112 failed.",  # 16 digits that fail the Luhn check
    "Version 3.11.2, ratio 2:1, and 999.1.1.1 or 1.2.3.4.5 are no addresses.",
    "The ISBN 978-3-16-148410-0, the e.g. and the file.txt, a @handle, user@localhost.",
    "It scored 7 out of 10, call it 5.5; room 101.",
]


@pytest.mark.parametrize("text, expected", CAUGHT)
def test_each_kind_is_replaced_by_its_placeholder(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_ordinary_text_is_left_alone(text):
    assert find_pii(text) == []
    assert redact(text) == text


def test_an_email_domain_is_no_url_and_a_url_host_is_no_ip():
    assert [kind for kind, _, _ in find_pii("bob@www.example.com and http://10.0.0.1/admin")] == ["EMAIL", "URL"]


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112") and not luhn_ok("79927398710")


def test_scan_counts_every_kind():
    counts = scan(["a@b.org and c@d.org", "http://x.org 10.0.0.1", "nothing"])
    assert counts == {"EMAIL": 2, "URL": 1, "IP": 1, "CREDIT_CARD": 0, "PHONE": 0}


POSITIVE = ["great film, mail me at fan{}@example.com", "loved it, call (212) 555-01{:02d}", "wonderful and great"]
NEGATIVE = ["awful film, see http://bad{}.example.com", "terrible, boring", "bad acting, my card 4111 1111 1111 1111"]


@pytest.fixture
def reviews(tmp_path):
    lines = ["text,label"]
    for i in range(30):
        lines.append(f"\"{POSITIVE[i % 3].format(i)}\",pos")
        lines.append(f"\"{NEGATIVE[i % 3].format(i)}\",neg")
    path = tmp_path / "reviews.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_text_run_sees_reports_and_predicts_redacted_text(tmp_path, reviews):
    cfg = validate_run({"data": {"dataset": "text", "path": str(reviews), "clean": {"pii": True, "lower": True},
                                 "split": {"test": 0.25, "val": 0.0}},
                        "model": {"name": "tfidf_logreg"}})
    data = load_data(cfg.data, seed=0, task="classification")
    texts = " ".join(data.X_train) + " ".join(data.X_test)
    assert "@" not in texts and "http" not in texts and "4111" not in texts and "555" not in texts
    assert "[EMAIL]" in texts and "[PHONE]" in texts and "[URL]" in texts and "[CREDIT_CARD]" in texts
    counts = data.preprocess["pii_counts"]
    assert sum(sum(c.values()) for c in counts.values()) == 40  # 10 of each kind in the 60 rows
    assert sum(c["EMAIL"] for c in counts.values()) == 10

    (tmp_path / "run").mkdir()
    train_run(cfg, tmp_path / "run", data=data)
    saved = json.loads((tmp_path / "run" / "preprocess.json").read_text())
    assert saved["transform"]["pii_counts"] == counts
    predictor = Predictor.load(tmp_path / "run")
    assert list(predictor.features(["Mail X@Y.com or +1 415 555 2671"])) == ["mail [EMAIL] or [PHONE]"]


def test_without_the_setting_nothing_is_redacted(tmp_path, reviews):
    cfg = validate_run({"data": {"dataset": "text", "path": str(reviews)}, "model": {"name": "tfidf_logreg"}})
    data = load_data(cfg.data, seed=0, task="classification")
    assert "pii_counts" not in data.preprocess
    assert any("@example.com" in t for t in data.X_train)
