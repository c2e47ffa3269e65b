"""GPU benchmark: fine-tuning MiniLM-L6 on SST-2 on CUDA, ours vs transformers' Trainer (benchmarks/finetune.py's
two contenders, moved to the GPU and both in bf16 autocast: Trainer's bf16=True, our train.precision bf16).

One untimed warm-up of each, then --rounds alternating rounds on `sentences` training sentences (default 8,000:
250 steps of batch 32 each), one epoch; samples/s is over the training call only, as on the CPU.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from benchmarks.common import alternate, median
from benchmarks.finetune import run_ours, run_trainer, sst2_sentences
from modelladder.models.hf import HFConfig, model_source


def tiny_bert(folder: Path) -> str:
    """A two-layer, 32-wide BERT with MiniLM's tokenizer and random weights, saved in `folder` (--dry-run)."""
    from transformers import BertConfig, BertModel

    source = Path(model_source(HFConfig()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(source / name, folder / name)
    return str(folder)


def main(dry_run: bool = False, sentences: int = 8000, rounds: int = 1) -> dict:
    device, precision = ("cpu", "fp32") if dry_run else ("cuda", "bf16")
    sentences = 8 if dry_run else sentences  # --dry-run: one batch
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)"
    hf_logging.set_verbosity_error()
    train_x, train_y, dev_x, dev_y = sst2_sentences(sentences, 0)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = tiny_bert(Path(folder)) if dry_run else None
        if dry_run:
            dev_x, dev_y = dev_x[:8], dev_y[:8]
        print(f"finetune: {card}, {'a tiny BERT' if dry_run else 'MiniLM-L6'} on {len(train_x)} SST-2 sentences "
              f"({len(dev_x)} dev), {precision}, {rounds} round(s)", flush=True)
        return _compare(train_x, train_y, dev_x, dev_y, device, precision, model_dir, rounds, card, dry_run)


def _compare(train_x, train_y, dev_x, dev_y, device, precision, model_dir, rounds, card, dry_run) -> dict:
    if not dry_run:  # untimed, on 64 sentences: the first CUDA kernels, cuBLAS handles and allocator growth
        run_ours(train_x[:64], train_y[:64], dev_x[:32], dev_y[:32], 0, device, precision, model_dir)
        run_trainer(train_x[:64], train_y[:64], dev_x[:32], dev_y[:32], 0, device, precision, model_dir)
    contenders = {"ours": lambda: run_ours(train_x, train_y, dev_x, dev_y, 0, device, precision, model_dir),
                  "hf-trainer": lambda: run_trainer(train_x, train_y, dev_x, dev_y, 0, device, precision, model_dir)}
    results = alternate(contenders, rounds, warmup=False)
    ours, theirs = (median(results[n], "samples_per_s") for n in ("ours", "hf-trainer"))
    accuracy = {n: median(results[n], "dev_accuracy") for n in results}
    print(f"finetune: ours {ours:,.0f} vs hf-trainer {theirs:,.0f} samples/s: {ours / theirs:.2f}x (dev accuracy "
          f"{accuracy['ours']:.4f} vs {accuracy['hf-trainer']:.4f})", flush=True)
    return {"card": card, "precision": precision, "sentences": len(train_x), "rounds": rounds, "dry_run": dry_run,
            "ours_samples_per_s": ours, "theirs_samples_per_s": theirs, "ratio": ours / theirs,
            "ours_dev_accuracy": accuracy["ours"], "theirs_dev_accuracy": accuracy["hf-trainer"]}
