"""The GPU check (benchmarks/gpu/run.sh) where there is no GPU: its CPU dry mode runs every part (the gpu tests
collect and skip, saying why; each benchmark trains tiny models for a few steps), and its pieces that need no
GPU: the card's peak and the small MiniLM copy it carries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~10-15 s of CPU: four parts, a pytest and a bash process
def test_the_dry_run_runs_every_part_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "MODELLADDER_GPU": "0"}
    done = subprocess.run(["bash", "benchmarks/gpu/run.sh", "--dry-run"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and not report["machine"]["missing_imports"]
    assert "shakespeare_char_gpu.yaml" in report["configs"]["validated"]
    tests = report["tests"]
    assert tests["ok"] and tests["counts"]["skipped"] >= 8 and set(tests["counts"]) == {"skipped"}
    assert all(reason.startswith("GPU TEST SKIPPED") for reason in tests["skip_reasons"]), tests["skip_reasons"]
    assert report["finetune"]["sentences"] == 8 and report["finetune"]["ours_samples_per_s"] > 0
    lm = report["lm"]
    assert lm["ours"]["steps"] == 2 and lm["nanogpt"]["steps"] == 3 and lm["ratio_to_target"] is None
    assert 3 < lm["ours"]["val_loss"] < 5 and 3 < lm["nanogpt"]["val_loss"] < 5  # ln 65 = 4.17: still untrained


def test_card_peaks():
    from benchmarks.gpu.lm import card_peak

    assert card_peak("NVIDIA H100 80GB HBM3") == card_peak("NVIDIA H200") == 989.0
    assert card_peak("NVIDIA H100 PCIe") == 756.0 and card_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert card_peak("Some Future Card") is None


def test_the_carried_minilm_copy_rebuilds_the_rows_the_sentences_use(tmp_path):
    from tokenizers import Tokenizer

    from benchmarks.gpu.finetune import tiny_bert
    from benchmarks.gpu.minilm import WORDS, pack, unpack

    model_dir = Path(tiny_bert(tmp_path / "bert"))
    texts = ["a gripping, funny film", "dull"]
    pack(model_dir, texts, tmp_path / "packed")
    rebuilt = load_file(unpack(tmp_path / "packed", tmp_path / "site") / "model.safetensors")
    original = load_file(model_dir / "model.safetensors")
    assert rebuilt.keys() == original.keys()
    ids = sorted({i for enc in Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode_batch(texts)
                  for i in enc.ids})
    torch.testing.assert_close(rebuilt[WORDS][ids], original[WORDS][ids].half().float(), rtol=0, atol=0)
    unused = torch.ones(len(original[WORDS]), dtype=torch.bool)
    unused[ids] = False
    unused[[0, 100, 101, 102, 103]] = False  # [PAD] [UNK] [CLS] [SEP] [MASK]
    assert rebuilt[WORDS][unused].abs().sum() == 0
    for key in original:
        if key != WORDS:
            torch.testing.assert_close(rebuilt[key], original[key].half().float() if original[key].is_floating_point()
                                       else original[key], rtol=0, atol=0)
