"""`ladder scale` end to end on the shipped CI config (configs/scale/tiny_chars.yaml) over a small text corpus:
2 budgets x 2 sizes, scale.json, runs.csv and the plots; then --resume refits without training again, and
--predict --verify trains the one compute-optimal run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import ladder
from tests.pretrain.helpers import write_corpus

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "scale" / "tiny_chars.yaml"


@pytest.mark.slow
def test_scale_fits_resumes_and_verifies(tmp_path):
    corpus = write_corpus(tmp_path)
    data = ["--set", "data.dataset=text", "--set", f"data.path={corpus}", "--set", "data.limit=null",
            "--set", "scale.bootstrap=4"]
    first = ladder("scale", CONFIG, "--runs-dir", tmp_path / "runs", *data, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    root = tmp_path / "runs" / "tiny_chars_scale"
    result = json.loads((root / "scale.json").read_text())
    assert len(result["runs"]) == 4 and all(r["loss"] > 0 and r["error"] is None for r in result["runs"])
    assert result["flops_per_token"]["formula"].startswith("6 N + 12 L d T")
    assert set(result["law"]) >= {"E", "A", "B", "alpha", "beta"} and "alpha" in result["intervals"]
    for run in result["runs"]:  # a normal pretrain run folder per (budget, size)
        folder = Path(run["folder"])
        assert folder.parent.parent == root / "scale" and (folder / "model.safetensors").is_file()
        assert run["flops"] == pytest.approx(run["budget"], rel=0.2)
    assert (root / "runs.csv").is_file() and (root / "scale.yaml").is_file()
    assert all((root / name).is_file() for name in ("loss_vs_compute.png", "isoflop.png", "law.png"))
    stamps = {r["folder"]: (Path(r["folder"]) / "summary.json").stat().st_mtime_ns for r in result["runs"]}

    again = ladder("scale", CONFIG, "--runs-dir", tmp_path / "runs", *data, "--resume", "--predict", "2e9",
                   "--verify", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("to train:") == 1 and "verify" in again.stdout  # only the --verify run trains
    assert {f: (Path(f) / "summary.json").stat().st_mtime_ns for f in stamps} == stamps
    result = json.loads((root / "scale.json").read_text())
    assert result["prediction"]["flops"] == 2e9 and result["prediction"]["n_opt"] > 0
    check = result["verify"]
    assert Path(check["folder"]).parent.parent == root / "verify" and check["loss"] > 0
    assert check["relative_error"] == pytest.approx((check["loss"] - check["predicted_loss"]) / check["predicted_loss"])
