"""Batch sources: token sequences pad per batch, bucketing covers every example once and pads less."""

import math

import numpy as np
import pytest
import torch

from modelladder.config import DataConfig
from modelladder.data.batches import TokenSequences, TokenWindows, make_source, unsort
from modelladder.data.splits import train_val


def _sequences(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 50, size=rng.integers(1, 200)) for _ in range(n)]


def test_take_pads_to_the_longest_in_the_batch_and_masks_padding():
    seqs = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    ids, mask = TokenSequences(seqs, pad_id=0).take(torch.tensor([1, 2]))
    assert ids.tolist() == [[8, 0], [9, 10]]
    assert mask.tolist() == [[True, False], [True, True]]


def test_empty_sequences_are_refused():
    with pytest.raises(ValueError, match="at least one token"):
        TokenSequences([np.array([1]), np.array([], dtype=np.int64)], pad_id=0)


def test_bucketed_epoch_covers_every_example_once_and_pads_less_than_random():
    seqs = _sequences(3000)
    source = make_source(TokenSequences(seqs, 0), np.zeros(3000), torch.long, torch.device("cpu"))
    batches = source.epoch(torch.Generator().manual_seed(1), 32)
    assert len(batches) == math.ceil(3000 / 32)
    assert sorted(torch.cat(batches).tolist()) == list(range(3000))
    lengths = source.X.lengths
    padded = sum(int(lengths[b].max()) * len(b) for b in batches)
    random_batches = torch.randperm(3000, generator=torch.Generator().manual_seed(1)).split(32)
    padded_random = sum(int(lengths[b].max()) * len(b) for b in random_batches)
    assert padded < 0.6 * padded_random


def test_epochs_are_a_function_of_the_generator_seed():
    source = make_source(TokenSequences(_sequences(500), 0), None, torch.long, torch.device("cpu"))
    first = source.epoch(torch.Generator().manual_seed(7), 16)
    again = source.epoch(torch.Generator().manual_seed(7), 16)
    other = source.epoch(torch.Generator().manual_seed(8), 16)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_in_order_outputs_come_back_in_example_order():
    source = make_source(TokenSequences(_sequences(100), 0), None, torch.long, torch.device("cpu"))
    batches = source.in_order(16)
    outputs = [source.X.lengths[b].float() for b in batches]
    assert torch.equal(unsort(batches, outputs), source.X.lengths.float())


def test_cv_folds_are_disjoint_and_cover_the_training_data():
    y = np.repeat(np.arange(3), 20)
    scored_folds = []
    for fold in range(4):
        cfg = DataConfig.model_validate({"split": {"folds": 4, "fold": fold, "val": 0.2}})
        train, val, scored = train_val(y, cfg, seed=0, task="classification")
        assert not set(train) & set(val) and not (set(train) | set(val)) & set(scored)
        assert (len(train), len(val), len(scored)) == (36, 9, 15)  # validation: 20% of the other folds
        scored_folds.append(scored)
    assert sorted(np.concatenate(scored_folds).tolist()) == list(range(60))


def test_token_windows_give_next_token_targets_and_cover_the_stream_in_order():
    tokens = np.arange(1000, dtype=np.uint16)
    source = make_source(TokenWindows(tokens, context=16), None, torch.long, torch.device("cpu"))
    assert len(source) == 999 // 16
    batches = source.in_order(8)
    x, y = source.take(batches[0])
    assert x.shape == (8, 16) and x.dtype == torch.long
    assert torch.equal(y, x + 1) and x[1, 0] == 16
    starts = torch.cat(source.epoch(torch.Generator().manual_seed(0), 8))
    assert len(starts) == len(source) and int(starts.max()) + 16 < 1000


def test_a_stream_shorter_than_one_window_is_refused():
    with pytest.raises(ValueError, match="shorter than one window"):
        TokenWindows(np.arange(10), context=16)
