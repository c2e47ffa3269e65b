"""The language-model objectives: BERT's 15% with 80/10/10 masking, fixed masks for evaluation, and
per-window outputs that stay small."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modelladder.models.transformer import LanguageModel, TransformerConfig
from modelladder.tasks.language_model import IGNORE, CausalLM, MaskedLM


def test_masking_chooses_15_percent_and_replaces_80_10_10():
    task = MaskedLM(mask_id=3, first_token=4, vocab_size=50)
    x = torch.randint(4, 50, (200, 500), generator=torch.Generator().manual_seed(0))
    inputs, targets = task.mask(x, torch.Generator().manual_seed(1))
    chosen = targets != IGNORE
    assert torch.equal(targets[chosen], x[chosen]) and torch.equal(inputs[~chosen], x[~chosen])
    n = chosen.sum().item()
    assert abs(n / x.numel() - 0.15) < 0.005
    masked = (inputs == 3) & chosen
    kept = (inputs == x) & chosen
    replaced = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    # a random replacement can draw the original token (1 in 46): it then counts as kept
    assert abs(kept.sum().item() / n - 0.1 - 0.1 / 46) < 0.01 and abs(replaced.sum().item() / n - 0.1) < 0.01
    assert int(inputs[replaced].min()) >= 4  # never a special token


def tiny_lm(causal: bool) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(TransformerConfig(vocab_size=20, max_length=16, dim=16, depth=1, heads=2, dropout=0.0,
                                           causal=causal, tokenizer={"kind": "char"}))


def test_evaluation_masks_the_same_way_every_time_training_does_not():
    task, lm = MaskedLM(mask_id=3, first_token=4, vocab_size=20, seed=5), tiny_lm(causal=False)
    x = torch.randint(4, 20, (8, 16))
    lm.eval()
    assert torch.equal(task.loss(lm, x, x)[1], task.loss(lm, x, x)[1])
    lm.train()
    assert not torch.equal(task.loss(lm, x, x)[1], task.loss(lm, x, x)[1])


def test_masked_lm_outputs_sum_loss_count_and_hits_per_window():
    task, lm = MaskedLM(mask_id=3, first_token=4, vocab_size=20), tiny_lm(causal=False).eval()
    x = torch.randint(4, 20, (32, 16))
    loss, outputs = task.loss(lm, x, x)
    assert outputs.shape == (32, 3)
    metrics = task.metrics(None, task.scores(outputs).numpy())
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(loss.item()), rel=1e-5)
    assert 0 <= metrics["accuracy"] <= 1


def test_causal_lm_reports_bits_per_character_through_tokens_per_character():
    task, lm = CausalLM(chars_per_token=2.5), tiny_lm(causal=True)
    x = torch.randint(4, 20, (6, 16))
    loss, outputs = task.loss(lm, x[:, :-1], x[:, 1:])
    assert outputs.shape == (6,)  # one number per window, not (B, L, vocab) logits
    metrics = task.metrics(None, task.scores(outputs).numpy())
    assert metrics["loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert metrics["bits_per_char"] == pytest.approx(loss.item() / math.log(2) / 2.5, rel=1e-5)
    assert np.isclose(metrics["perplexity"], math.exp(loss.item()))
