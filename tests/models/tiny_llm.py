"""A tiny randomly initialised Hugging Face Llama with a word-level tokenizer, saved as a local model folder:
the suite's stand-in for a pretrained causal language model (hf_causal_lm's model.path), built in a second."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.models.problems import FILLER, TOPICS

SPECIAL = ["<pad>", "<unk>", "</s>"]


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 32, 2 heads) over the words of problems.py, and its fast tokenizer, in `folder`.
    Its weights are drawn 10x wider than transformers' default (initializer_range 0.2), so that LoRA adapters
    on them learn a small text in a few dozen steps, as they do on a real pretrained model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from modelladder.models.hf import no_progress_bars

    words = SPECIAL + sorted({w for topic in TOPICS for w in topic} | set(FILLER))
    vocab = {word: i for i, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                        eos_token="</s>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2,
                         pad_token_id=vocab["<pad>"], eos_token_id=vocab["</s>"], bos_token_id=None)
    # the folder's weights are fixed by `seed`; the caller's random state is untouched
    with torch.random.fork_rng(devices=[]), no_progress_bars():
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
