"""A tiny randomly initialised BERT with a word-level tokenizer, saved as a local model folder: the export tests'
stand-in for a pretrained encoder (the hf rung's model.model), built in well under a second."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.models.problems import FILLER, TOPICS

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A 1-layer BERT (hidden 16, 2 heads) over the words of problems.py, and its fast tokenizer, in `folder`."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from modelladder.models.hf import no_progress_bars

    words = SPECIAL + sorted({w for topic in TOPICS for w in topic} | set(FILLER))
    vocab = {word: i for i, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                           special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, max_position_embeddings=64, pad_token_id=0)
    with torch.random.fork_rng(devices=[]), no_progress_bars():
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
