"""`ladder pretrain`: a language model pretrained on a text corpus, written into a run folder.

The config is a RunConfig: data.dataset names a corpus (registry.CORPORA), task.name is causal_lm or
masked_lm, model is a transformer (model.causal true for causal_lm, false for masked_lm; model.max_length
is the context) or, for causal_lm, a unidirectional rnn (RNNLanguageModel). The tokenizer is trained on
the corpus's training text; both parts of the corpus are tokenised once into memory-mapped token files
(data/corpus.py) and the one training loop (train/loop.py) trains on random windows of them, with held-out
loss, perplexity and bits per character at the end of every epoch and of the run, checkpoints and bitwise
resume as for every run.

The run folder describes itself: config.yaml, tokenizer.json, model.safetensors (the language model's
weights under the names the classifier of its family has: `backbone.*` for the Transformer, `embed.*` and
`rnn.*` for the RNN, so fine-tuning (verbs/transfer.py) can start from them), preprocess.json (kind "corpus": source, split, token and character counts), metrics.jsonl,
checkpoints/, env.json, summary.json.

Image encoders pretrain too (the tasks whose pretrains_encoder is set, tasks/base.py): with task.name
reconstruction (model autoencoder), vae
(model vae) or contrastive (model simclr, head projection: SimCLR), data.dataset is an image dataset whose
labels go unused by the objective, and the run is an ordinary training run (verbs/train.py's train_run) with
preprocess.json of kind "image" and no tokenizer; its encoder is what finetune.from reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.config import RunConfig, load_run_config, to_yaml
from modelladder.data.batches import TokenWindows
from modelladder.data.bundle import DataBundle
from modelladder.data.corpus import Corpus, CorpusTokens, corpus_encoder, corpus_tokens
from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.registry import CORPORA, MODELS, PRETRAIN_TASKS, TASKS, lookup
from modelladder.runs import claim, environment, run_path, write_json, write_text
from modelladder.verbs.build import make_task, trained_by
from modelladder.verbs.transfer import image_objectives, pretrained_config


@dataclass
class PretrainData:
    corpus: Corpus
    encoder: TextEncoder
    tokens: CorpusTokens
    train: TokenWindows
    val: TokenWindows | np.ndarray  # an empty array when data.split.val is 0


def check_pretrain_config(cfg: RunConfig) -> None:
    """What `ladder pretrain` supports, checked before any data is read."""
    if pretrains_images(cfg):
        return check_image_pretrain(cfg)
    if cfg.task.name not in PRETRAIN_TASKS:
        raise InputError(f"ladder pretrain needs task.name "
                         f"{' or '.join(map(repr, (*PRETRAIN_TASKS, *image_objectives())))}, got '{cfg.task.name}'")
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    if cfg.task.name not in model_cls.tasks:
        allowed = trained_by(cfg.task.name)
        raise InputError(f"ladder pretrain with task.name '{cfg.task.name}' trains model.name "
                         f"{' or '.join(map(repr, allowed))}, got '{cfg.model.name}'")
    problems = model_cls.problems(cfg)
    if problems:
        raise InputError(problems)


def prepare_data(cfg: RunConfig) -> PretrainData:
    """The corpus, its tokenizer and token files (made once, then read from the cache) and the windows; for an
    image objective, the image DataBundle."""
    check_pretrain_config(cfg)
    if pretrains_images(cfg):
        from modelladder.verbs.build import load_run_data

        return load_run_data(cfg)
    corpus = lookup(CORPORA, "data.dataset", cfg.data.dataset)(cfg.data)
    val = cfg.data.split.val
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    encoder = model_cls.corpus_encoder(cfg.model)  # a pretrained model's own tokenizer, or None
    if encoder is None:
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


def build_language_model(cfg: RunConfig, base: nn.Module | None = None) -> nn.Module:
    """The language model of cfg.model's family (models/base.py Network.language_model); its initial weights
    depend only on cfg.seed. `base`: a pretrained model already loaded (copied, not loaded again)."""
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return model_cls.language_model(cfg.model, base)


def pretrain_run(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: PretrainData | None = None,
                 callbacks: Sequence = (), base: nn.Module | None = None) -> dict:
    """Pretrain the language model `cfg` describes into `run_dir` (prepared by the caller); `callbacks`
    go to fit; `base` as for build_language_model."""
    from modelladder.train.loop import fit

    if pretrains_images(cfg):
        return pretrain_images(cfg, run_dir, resume=resume, data=data)
    data = data if data is not None else prepare_data(cfg)
    write_text(run_dir / "config.yaml", to_yaml(cfg))
    data.encoder.save(run_dir / "tokenizer.json")
    meta = data.tokens.meta
    write_json(run_dir / "preprocess.json", {
        "kind": "corpus", "corpus": cfg.data.dataset, "source": data.corpus.source,
        "val_fraction": meta["val_fraction"], "dtype": meta["dtype"],
        "train": meta["train"], "val": meta["val"], "chars_per_token": data.tokens.chars_per_token,
    })
    write_json(run_dir / "env.json", environment(cfg.seed, country=cfg.cost.country))
    model = build_language_model(cfg, base)
    bundle = DataBundle(X_train=data.train, y_train=np.zeros(0, np.int64), X_val=data.val,
                        y_val=np.zeros(0, np.int64), X_test=np.zeros(0), y_test=np.zeros(0, np.int64),
                        kind="corpus", input_shape=(), source=data.corpus.source)
    result = fit(model, make_task(cfg, data), bundle, cfg.train, seed=cfg.seed, run_dir=run_dir, resume=resume,
                 callbacks=callbacks)
    tokens_seen = result.steps * cfg.train.batch_size * cfg.model.max_length
    summary = {"model": cfg.model.name, "task": cfg.task.name, "family": "neural",
               "params": sum(p.numel() for p in model.parameters()),
               "trained_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
               "train_seconds": result.train_seconds,
               "steps": result.steps, "epochs": result.epochs, "tokens_seen": tokens_seen,
               "tokens_per_s": tokens_seen / max(result.train_seconds, 1e-9)}
    val = {k.removeprefix("val_"): v for k, v in result.history[-1].items() if k.startswith("val_")} \
        if result.history else {}
    write_json(run_dir / "summary.json", {**summary, "val": val})
    return {**summary, "split": "val", "n": int(meta["val"]["tokens"]), "metrics": val}


def load_language_model(run_dir: str | Path, base: nn.Module | None = None
                        ) -> tuple[RunConfig, nn.Module, TextEncoder]:
    """(config, model with its trained weights, tokenizer) of a `ladder pretrain` run folder; `base` as for
    build_language_model."""
    from modelladder.train.checkpoint import load_weights

    cfg = pretrained_config(run_dir)
    model = build_language_model(cfg, base)
    load_weights(Path(run_dir) / "model.safetensors", model)
    return cfg, model.eval(), TextEncoder.load(Path(run_dir) / "tokenizer.json")


# ---------------------------------------------------------------- image encoders


def pretrains_images(cfg: RunConfig) -> bool:
    """Whether task.name is an image objective whose encoder a classifier reuses (tasks/base.py)."""
    return lookup(TASKS, "task.name", cfg.task.name).pretrains_encoder


def check_image_pretrain(cfg: RunConfig) -> None:
    """An image objective trains its own model, with the head that objective needs."""
    model_cls = lookup(MODELS, "model.name", cfg.model.name)
    if cfg.task.name not in model_cls.tasks:
        wanted = " or ".join(map(repr, trained_by(cfg.task.name)))
        raise InputError(f"ladder pretrain with task.name '{cfg.task.name}' trains model.name {wanted}, "
                         f"got '{cfg.model.name}'")
    problems = model_cls.problems(cfg)
    if problems:
        raise InputError(problems)


def pretrain_images(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: DataBundle | None = None) -> dict:
    """An image encoder pretrained with task reconstruction, vae or contrastive: an ordinary training run
    (verbs/train.py's train_run: config.yaml, preprocess.json of kind image, model.safetensors, the task's own
    evaluation and pictures) that finetune.from can name."""
    from modelladder.verbs.train import train_run

    check_image_pretrain(cfg)
    return train_run(cfg, run_dir, resume=resume, data=data)


def main(args) -> int:
    """`ladder pretrain CONFIG [--set ...] [--name] [--runs-dir] [--resume | --overwrite]`."""
    from modelladder.verbs.report import print_result

    cfg = load_run_config(args.config, args.overrides)
    path = run_path(args.runs_dir, args.name or cfg.name or Path(args.config).stem)
    data, run_dir = claim(path, overwrite=args.overwrite, resume=args.resume, load=lambda: prepare_data(cfg))
    result = pretrain_run(cfg, run_dir, resume=args.resume, data=data)
    print_result(run_dir, result)
    speed = f", {result['tokens_per_s']:,.0f} tokens/s" if "tokens_per_s" in result else ""  # image runs: no tokens
    print(f"{result['steps']} steps{speed}, {result['train_seconds']:.1f} s")
    return 0
