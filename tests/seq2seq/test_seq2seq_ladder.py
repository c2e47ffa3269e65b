"""A seq2seq ladder compares its rungs on the same test words: exact McNemar on right / wrong for WER (the task's
monitor), a paired bootstrap for PER beside it, Holm-adjusted, in leaderboard.json and the printed table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from modelladder.evaluate.significance import compare_sequences, mcnemar_p

LADDER = {"name": "g2p", "seed": 0, "data": {"dataset": "cmudict", "limit": 600}, "task": {"name": "seq2seq"},
          "rungs": [{"name": "stump", "model": {"name": "letter_to_sound", "window": 0, "max_depth": 2}},
                    {"name": "window", "model": {"name": "letter_to_sound", "window": 2}}]}


def scores(wrong: list[int], edits: list[int]) -> dict[str, np.ndarray]:
    return {"word_error": np.array(wrong), "phoneme_errors": np.array(edits), "phoneme_count": np.full(len(wrong), 4)}


def test_wer_gets_mcnemar_and_per_a_paired_bootstrap_against_the_best():
    rows = [{"test_wer": 0.9}, {"test_wer": 0.1}, {"test_wer": 0.2}]
    a, b = scores([1] * 9 + [0], [3] * 9 + [0]), scores([0] * 9 + [1], [0] * 9 + [1])
    c = scores([0] * 8 + [1, 1], [0] * 8 + [1, 1])
    compare_sequences(rows, [a, b, c], "wer", "min", split="test", seed=0)
    assert rows[1]["best"] and rows[1]["per_p_adj"] is None and rows[0]["test"] == "mcnemar-exact"
    # Holm over two comparisons: the smaller raw p doubled
    assert rows[0]["p_value"] == pytest.approx(mcnemar_p(b["word_error"] == 0, a["word_error"] == 0), rel=1e-3)
    assert rows[0]["p_adj"] == pytest.approx(min(1.0, 2 * rows[0]["p_value"]), rel=1e-3)
    assert rows[2]["p_value"] == 1.0 and not rows[2]["significant"]
    assert rows[0]["per_p_adj"] < 0.05 < rows[2]["per_p_adj"]
    with pytest.raises(ValueError, match="no paired test for seq2seq metric 'bleu'"):
        compare_sequences([{"test_bleu": 1.0}, {"test_bleu": 2.0}], [a, b], "bleu", "max", split="test", seed=0)


@pytest.mark.slow  # ~12 s: reading CMUdict, two classic rungs and the report
def test_a_seq2seq_ladder_says_which_rung_is_better_with_a_p_value(tmp_path, capsys):
    from modelladder.cli import main

    (tmp_path / "g2p.yaml").write_text(yaml.safe_dump(LADDER))
    assert main(["run", str(tmp_path / "g2p.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 0
    rows = {row["rung"]: row for row in json.loads((tmp_path / "runs/g2p/leaderboard.json").read_text())}
    assert rows["window"]["best"] and rows["window"]["test_wer"] < rows["stump"]["test_wer"]
    assert rows["stump"]["test"] == "mcnemar-exact" and rows["stump"]["p_adj"] < 0.05 and rows["stump"]["significant"]
    assert 0 <= rows["stump"]["per_p_adj"] < 0.05
    out = capsys.readouterr().out
    assert "vs best" in out and "worse (" in out and "exact McNemar" in out and "test wer" in out


def test_the_leaderboard_shows_wer_with_per_bleu_chrf_beside_it_and_per_p(tmp_path):
    from rich.console import Console

    from modelladder.report.leaderboard import leaderboard_table

    def row(rung, wer, best, p=None, per_p=None):
        return {"rung": rung, "model": "seq2seq_rnn", "family": "neural", "status": "ok",
                "test_wer": wer, "test_wer_low": wer - 0.05, "test_wer_high": wer + 0.05, "test_per": wer / 4,
                "test_exact_match": 1 - wer, "test_bleu": 40.0, "test_chrf": 60.0, "test": None if best else
                "mcnemar-exact", "p_value": p, "p_adj": p, "significant": None if best else p < 0.05, "best": best,
                "per_p_adj": per_p, "train_seconds": 1.0}

    rows = [row("rnn", 0.6, False, 0.0004, 0.003), row("rnn_attention", 0.5, True)]
    console = Console(width=240, record=True)
    console.print(leaderboard_table(rows, "mt"))
    text = console.export_text()
    for column in ("test wer [95% CI]", "test per [95% CI]", "test bleu [95% CI]", "test chrf [95% CI]", "vs best",
                   "per p adj"):
        assert column in text
    assert "test exact match" not in text and "worse (<0.001)" in text and "0.003" in text
    assert "[95% Wilson interval]" in text and "per p adj: paired bootstrap" in text
