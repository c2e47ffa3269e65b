"""Generation: the KV cache gives what recomputing gives, a seed fixes the text, sampling options do what
they say, and prompts the model cannot take are clear errors."""

from __future__ import annotations

import pytest
import torch

from modelladder.data.tokenize import TokenizerConfig, train_encoder
from modelladder.errors import InputError
from modelladder.models.transformer import LanguageModel, TransformerConfig
from modelladder.verbs.generate import check_sampling, encode_prompt, generate, sample


def model(positions: str = "learned", context: int = 16, seed: int = 0) -> LanguageModel:
    torch.manual_seed(seed)
    cfg = TransformerConfig(vocab_size=30, max_length=context, dim=32, depth=2, heads=4, dropout=0.0, causal=True,
                            tokenizer={"kind": "char"}, positions=positions, norm="rms" if positions == "rope" else "layer",
                            activation="relu2" if positions == "rope" else "gelu", bias=positions != "rope")
    return LanguageModel(cfg).eval()


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_cached_logits_equal_the_full_forward(positions):
    lm = model(positions)
    ids = torch.randint(0, 30, (2, 16))
    with torch.no_grad():
        full = lm(ids)
        cache = lm.new_cache(batch=2)
        first = lm(ids[:, :5], cache)  # a prompt, then one token at a time, then a chunk of three
        steps = [lm(ids[:, i : i + 1], cache) for i in range(5, 13)]
        last = lm(ids[:, 13:], cache)
    torch.testing.assert_close(torch.cat([first, *steps, last], dim=1), full, rtol=1e-5, atol=1e-5)
    assert cache.length == 16


@pytest.mark.parametrize("positions", ["learned", "rope"])
@pytest.mark.parametrize("options", [{"temperature": 1.0}, {"temperature": 0.8, "top_k": 5},
                                     {"temperature": 1.2, "top_p": 0.9}, {"temperature": 0.0}])
def test_generation_with_the_cache_equals_generation_without(positions, options):
    lm = model(positions)
    # 50 tokens from a 16-token context: the window slides three times
    cached = list(generate(lm, [1, 2, 3], 50, seed=7, **options))
    recomputed = list(generate(lm, [1, 2, 3], 50, seed=7, use_cache=False, **options))
    assert cached == recomputed and len(cached) == 50


def test_a_seed_fixes_the_output_and_another_seed_changes_it():
    lm = model()
    first = list(generate(lm, [4], 40, seed=1))
    assert list(generate(lm, [4], 40, seed=1)) == first
    assert list(generate(lm, [4], 40, seed=2)) != first


def test_banned_tokens_are_never_sampled():
    lm = model()
    banned = list(range(0, 30, 2))
    assert all(t % 2 for t in generate(lm, [1], 100, seed=0, temperature=2.0, banned=banned))


def test_top_k_and_top_p_keep_the_most_likely_tokens():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.9, -1.0])
    g = torch.Generator().manual_seed(0)
    assert sample(logits, 0.0, None, None, g) == 1
    assert {sample(logits, 5.0, 1, None, g) for _ in range(20)} == {1}
    assert {sample(logits, 5.0, 2, None, g) for _ in range(50)} == {1, 3}
    # probabilities at temperature 1: 0.46, 0.42, 0.06, ...: top_p 0.5 needs the first two
    assert {sample(logits, 1.0, None, 0.5, g) for _ in range(50)} == {1, 3}
    assert {sample(logits, 1.0, None, 0.3, g) for _ in range(20)} == {1}


def test_prompts_the_model_cannot_take_are_input_errors():
    encoder = train_encoder(TokenizerConfig(kind="char"), ["to be or not to be"], max_length=8)
    assert len(encode_prompt(encoder, "to be", 8)) == 5
    with pytest.raises(InputError, match=r"^--prompt holds 'x', 'é', which the run's tokenizer does not know "
                                         r"\(its vocabulary has 7 tokens\); leave them out$"):
        encode_prompt(encoder, "tex é", 8)
    with pytest.raises(InputError, match=r"^--prompt is 9 tokens long, more than the model's context of 8 tokens "
                                         r"\(model.max_length\): shorten it$"):
        encode_prompt(encoder, "to be or ", 8)
    with pytest.raises(InputError, match="--prompt is empty"):
        encode_prompt(encoder, "", 8)


def test_bad_sampling_options_are_all_reported():
    with pytest.raises(InputError) as err:
        check_sampling(0, -1.0, 0, 1.5)
    assert err.value.problems == ["--max-new-tokens must be >= 1, got 0",
                                  "--temperature must be >= 0 (0: always the most likely token), got -1.0",
                                  "--top-k must be >= 1, got 0", "--top-p must be in (0, 1], got 1.5"]
