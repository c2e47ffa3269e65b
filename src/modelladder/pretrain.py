"""`ladder pretrain`: a language model pretrained on a text corpus, written into a run folder.

The config is a RunConfig: data.dataset names a corpus (registry.CORPORA), task.name is causal_lm or
masked_lm, model is a transformer (model.causal true for causal_lm, false for masked_lm; model.max_length
is the context). The tokenizer is trained on the corpus's training text; both parts of the corpus are
tokenised once into memory-mapped token files (data/corpus.py) and the one training loop (train/loop.py)
trains on random windows of them, with held-out loss, perplexity and bits per character at the end of
every epoch and of the run, checkpoints and bitwise resume as for every run.

The run folder describes itself: config.yaml, tokenizer.json, model.safetensors (the LanguageModel's
weights, all named `backbone.*` as in the Transformer classifier, so fine-tuning can start from them),
preprocess.json (kind "corpus": source, split, token and character counts), metrics.jsonl,
checkpoints/, env.json, summary.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modelladder.config import RunConfig, to_yaml
from modelladder.data.bundle import DataBundle
from modelladder.data.corpus import Corpus, CorpusTokens, corpus_encoder, corpus_tokens
from modelladder.data.tokenize import MASK_ID, SPECIAL, TextEncoder
from modelladder.errors import InputError
from modelladder.models.transformer import LanguageModel
from modelladder.registry import CORPORA, MODELS, PRETRAIN_TASKS, TASKS, lookup
from modelladder.runs import environment, read_json, write_json, write_text
from modelladder.train.batches import TokenWindows


@dataclass
class PretrainData:
    corpus: Corpus
    encoder: TextEncoder
    tokens: CorpusTokens
    train: TokenWindows
    val: TokenWindows | np.ndarray  # an empty array when data.split.val is 0


def check_pretrain_config(cfg: RunConfig) -> None:
    """What `ladder pretrain` supports, checked before any data is read."""
    if cfg.task.name not in PRETRAIN_TASKS:
        raise InputError(f"ladder pretrain needs task.name {' or '.join(map(repr, PRETRAIN_TASKS))}, "
                         f"got '{cfg.task.name}'")
    if cfg.model.name != "transformer":
        raise InputError(f"ladder pretrain trains model.name 'transformer', got '{cfg.model.name}'")
    causal = cfg.task.name == "causal_lm"
    if cfg.model.causal != causal:
        raise InputError(f"task.name '{cfg.task.name}' needs model.causal {str(causal).lower()}, "
                         f"got {str(cfg.model.causal).lower()}")


def prepare_data(cfg: RunConfig) -> PretrainData:
    """The corpus, its tokenizer and token files (made once, then read from the cache) and the windows."""
    check_pretrain_config(cfg)
    corpus = lookup(CORPORA, "data.dataset", cfg.data.dataset)(cfg.data)
    val = cfg.data.split.val
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    recipe = {"model": cfg.model.name, "tokenizer": cfg.model.tokenizer.model_dump(mode="json"),
              "vocab_size": cfg.model.vocab_size, "max_length": cfg.model.max_length}
    encoder = corpus_encoder(corpus, val, recipe, lambda texts: model_cls.make_encoder(cfg.model, texts))
    tokens = corpus_tokens(corpus, val, encoder)
    context = cfg.model.max_length
    train = _windows(tokens.train, context, f"the training text of corpus {corpus.source}")
    held_out = _windows(tokens.val, context, f"the held-out text of corpus {corpus.source}") if len(tokens.val) else \
        np.zeros(0, np.int64)
    return PretrainData(corpus, encoder, tokens, train, held_out)


def _windows(ids: np.ndarray, context: int, what: str) -> TokenWindows:
    if len(ids) < context + 1:
        raise InputError(f"{what} is {len(ids):,} tokens long, shorter than one window of model.max_length + 1 "
                         f"= {context + 1} tokens: use a larger corpus, a smaller model.max_length "
                         "or another data.split.val")
    return TokenWindows(ids, context)


def build_language_model(cfg: RunConfig) -> LanguageModel:
    """The LanguageModel for cfg.model; its initial weights depend only on cfg.seed."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return LanguageModel(cfg.model)


def make_lm_task(cfg: RunConfig, data: PretrainData):
    task_cls = lookup(TASKS, "task.name", cfg.task.name)
    if cfg.task.name == "causal_lm":
        return task_cls(chars_per_token=data.tokens.chars_per_token)
    return task_cls(mask_id=MASK_ID, first_token=len(SPECIAL), vocab_size=data.encoder.vocab_size, seed=cfg.seed)


def pretrain_run(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: PretrainData | None = None,
                 callbacks: Sequence = ()) -> dict:
    """Pretrain the language model `cfg` describes into `run_dir` (prepared by the caller); `callbacks`
    go to fit."""
    from modelladder.train.loop import fit

    data = data if data is not None else prepare_data(cfg)
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    data.encoder.save(run_dir / "tokenizer.json")
    meta = data.tokens.meta
    write_json(run_dir / "preprocess.json", {
        "kind": "corpus", "corpus": cfg.data.dataset, "source": data.corpus.source,
        "val_fraction": meta["val_fraction"], "dtype": meta["dtype"],
        "train": meta["train"], "val": meta["val"], "chars_per_token": data.tokens.chars_per_token,
    })
    write_json(run_dir / "env.json", environment(cfg.seed))
    model = build_language_model(cfg)
    bundle = DataBundle(X_train=data.train, y_train=np.zeros(0, np.int64), X_val=data.val,
                        y_val=np.zeros(0, np.int64), X_test=np.zeros(0), y_test=np.zeros(0, np.int64),
                        kind="corpus", input_shape=(), source=data.corpus.source)
    result = fit(model, make_lm_task(cfg, data), bundle, cfg.train, seed=cfg.seed, run_dir=run_dir, resume=resume,
                 callbacks=callbacks)
    tokens_seen = result.steps * cfg.train.batch_size * cfg.model.max_length
    summary = {"model": cfg.model.name, "task": cfg.task.name, "family": "neural",
               "params": sum(p.numel() for p in model.parameters()), "train_seconds": result.train_seconds,
               "steps": result.steps, "epochs": result.epochs, "tokens_seen": tokens_seen,
               "tokens_per_s": tokens_seen / max(result.train_seconds, 1e-9)}
    val = {k.removeprefix("val_"): v for k, v in result.history[-1].items() if k.startswith("val_")} \
        if result.history else {}
    write_json(run_dir / "summary.json", {**summary, "val": val})
    return {**summary, "split": "val", "n": int(meta["val"]["tokens"]), "metrics": val}


def load_language_model(run_dir: str | Path) -> tuple[RunConfig, LanguageModel, TextEncoder]:
    """(config, model with its trained weights, tokenizer) of a `ladder pretrain` run folder."""
    from modelladder.config import read_yaml, validate_run
    from modelladder.train.checkpoint import load_weights

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run folder {run_dir} does not exist")
    cfg = validate_run(read_yaml(run_dir / "config.yaml"))
    if read_json(run_dir / "preprocess.json").get("kind") != "corpus":
        raise InputError(f"{run_dir} is not a `ladder pretrain` run (its preprocess.json kind is not 'corpus')")
    model = build_language_model(cfg)
    weights = run_dir / "model.safetensors"
    if not weights.is_file():
        raise InputError(f"{weights} is missing: the run folder has no trained model (did pretraining finish?)")
    load_weights(weights, model)
    return cfg, model.eval(), TextEncoder.load(run_dir / "tokenizer.json")
