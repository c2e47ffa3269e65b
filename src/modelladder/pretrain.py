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
`rnn.*` for the RNN, so fine-tuning (finetune.py) can start from them), preprocess.json (kind "corpus": source, split, token and character counts), metrics.jsonl,
checkpoints/, env.json, summary.json.

Image encoders pretrain too (IMAGE_PRETRAIN_TASKS): with task.name reconstruction (model autoencoder), vae
(model vae) or contrastive (model simclr, head projection: SimCLR), data.dataset is an image dataset whose
labels go unused by the objective, and the run is an ordinary training run (pipeline.train_run) with
preprocess.json of kind "image" and no tokenizer; its encoder is what finetune.from reuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modelladder.config import RunConfig, to_yaml
from modelladder.data.bundle import DataBundle
from modelladder.data.corpus import Corpus, CorpusTokens, corpus_encoder, corpus_tokens
from modelladder.data.tokenize import MASK_ID, SPECIAL, TextEncoder
from modelladder.errors import InputError
from modelladder.models.hf_causal import HFCausalLM, hf_encoder
from modelladder.models.rnn import RNNLanguageModel
from modelladder.models.transformer import LanguageModel
from modelladder.registry import CORPORA, MODELS, PRETRAIN_TASKS, TASKS, lookup
from modelladder.runs import environment, read_json, write_json, write_text
from modelladder.train.batches import TokenWindows

# image objectives whose encoder a classifier reuses (trained by pipeline.train_run), and the model each trains
IMAGE_PRETRAIN_TASKS = {"reconstruction": "autoencoder", "vae": "vae", "contrastive": "simclr"}
LANGUAGE_MODELS = ["transformer", "rnn", "hf_causal_lm"]  # model.name values a causal_lm run trains; masked_lm: transformer


@dataclass
class PretrainData:
    corpus: Corpus
    encoder: TextEncoder
    tokens: CorpusTokens
    train: TokenWindows
    val: TokenWindows | np.ndarray  # an empty array when data.split.val is 0


def check_pretrain_config(cfg: RunConfig) -> None:
    """What `ladder pretrain` supports, checked before any data is read."""
    if cfg.task.name in IMAGE_PRETRAIN_TASKS:
        return check_image_pretrain(cfg)
    if cfg.task.name not in PRETRAIN_TASKS:
        raise InputError(f"ladder pretrain needs task.name "
                         f"{' or '.join(map(repr, (*PRETRAIN_TASKS, *IMAGE_PRETRAIN_TASKS)))}, got '{cfg.task.name}'")
    causal = cfg.task.name == "causal_lm"
    allowed = LANGUAGE_MODELS if causal else ["transformer"]
    if cfg.model.name not in allowed:
        raise InputError(f"ladder pretrain with task.name '{cfg.task.name}' trains model.name "
                         f"{' or '.join(map(repr, allowed))}, got '{cfg.model.name}'")
    if cfg.model.name == "rnn" and cfg.model.bidirectional:
        raise InputError("task.name 'causal_lm' predicts each token from the earlier ones: model.bidirectional "
                         "must be false, got true")
    if cfg.model.name == "hf_causal_lm" and cfg.model.mode == "frozen":
        raise InputError("model.mode 'frozen' trains nothing: pretrain hf_causal_lm with mode 'lora' or 'full' "
                         "(to generate with the model as it is, use ladder generate --base)")
    if cfg.model.name == "hf_causal_lm" and cfg.model.max_length is None:
        raise InputError("model.max_length is null: pretraining needs a window length, e.g. 256")
    if cfg.model.name == "transformer" and cfg.model.causal != causal:
        raise InputError(f"task.name '{cfg.task.name}' needs model.causal {str(causal).lower()}, "
                         f"got {str(cfg.model.causal).lower()}")


def prepare_data(cfg: RunConfig) -> PretrainData:
    """The corpus, its tokenizer and token files (made once, then read from the cache) and the windows; for an
    image objective, the image DataBundle."""
    check_pretrain_config(cfg)
    if cfg.task.name in IMAGE_PRETRAIN_TASKS:
        from modelladder.pipeline import load_run_data

        return load_run_data(cfg)
    corpus = lookup(CORPORA, "data.dataset", cfg.data.dataset)(cfg.data)
    val = cfg.data.split.val
    if cfg.model.name == "hf_causal_lm":  # the model's own tokenizer; corpus_tokens keys the token files by it
        encoder = hf_encoder(cfg.model.path, cfg.model.max_length)
    else:
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


def build_language_model(cfg: RunConfig, base: nn.Module | None = None) -> LanguageModel | RNNLanguageModel | HFCausalLM:
    """The language model for cfg.model; its initial weights depend only on cfg.seed. `base`: for
    hf_causal_lm, the model model.path names, already loaded (it is copied, not loaded again)."""
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        if cfg.model.name == "hf_causal_lm":
            return HFCausalLM(cfg.model, base)
        return LanguageModel(cfg.model) if cfg.model.name == "transformer" else RNNLanguageModel(cfg.model)


def make_lm_task(cfg: RunConfig, data: PretrainData):
    task_cls = lookup(TASKS, "task.name", cfg.task.name)
    if cfg.task.name == "causal_lm":
        return task_cls(chars_per_token=data.tokens.chars_per_token)
    return task_cls(mask_id=MASK_ID, first_token=len(SPECIAL), vocab_size=data.encoder.vocab_size, seed=cfg.seed)


def pretrain_run(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: PretrainData | None = None,
                 callbacks: Sequence = (), base: nn.Module | None = None) -> dict:
    """Pretrain the language model `cfg` describes into `run_dir` (prepared by the caller); `callbacks`
    go to fit; `base` as for build_language_model."""
    from modelladder.train.loop import fit

    if cfg.task.name in IMAGE_PRETRAIN_TASKS:
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
    write_json(run_dir / "env.json", environment(cfg.seed))
    model = build_language_model(cfg, base)
    bundle = DataBundle(X_train=data.train, y_train=np.zeros(0, np.int64), X_val=data.val,
                        y_val=np.zeros(0, np.int64), X_test=np.zeros(0), y_test=np.zeros(0, np.int64),
                        kind="corpus", input_shape=(), source=data.corpus.source)
    result = fit(model, make_lm_task(cfg, data), bundle, cfg.train, seed=cfg.seed, run_dir=run_dir, resume=resume,
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


def pretrained_config(run_dir: str | Path, field: str = "run folder") -> RunConfig:
    """The config of a finished `ladder pretrain` run folder; an InputError naming `field` and the file if
    `run_dir` is not one."""
    from modelladder.config import read_yaml, validate_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{field} {run_dir} does not exist")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "preprocess.json").is_file():
        raise InputError(f"{field} {run_dir} is not a ModelLadder run folder (it has no config.yaml and "
                         "preprocess.json)")
    kind = read_json(run_dir / "preprocess.json").get("kind")
    if kind not in ("corpus", "image"):
        raise InputError(f"{field} {run_dir} is not a `ladder pretrain` run (its preprocess.json kind is not "
                         "'corpus' or 'image')")
    try:
        cfg = validate_run(read_yaml(run_dir / "config.yaml"))
    except InputError as err:
        raise InputError([f"{run_dir / 'config.yaml'}: {problem}" for problem in err.problems]) from None
    if kind == "image" and cfg.task.name not in IMAGE_PRETRAIN_TASKS:
        raise InputError(f"{field} {run_dir} is an image run with task.name '{cfg.task.name}': a pretrained "
                         f"image encoder comes from task.name {' or '.join(map(repr, IMAGE_PRETRAIN_TASKS))}")
    for name in ("model.safetensors", "tokenizer.json") if kind == "corpus" else ("model.safetensors",):
        if not (run_dir / name).is_file():
            raise InputError(f"{run_dir / name} is missing: the run folder has no trained model "
                             "(did pretraining finish?)")
    return cfg


def load_language_model(run_dir: str | Path, base: nn.Module | None = None
                        ) -> tuple[RunConfig, LanguageModel | RNNLanguageModel | HFCausalLM, TextEncoder]:
    """(config, model with its trained weights, tokenizer) of a `ladder pretrain` run folder; `base` as for
    build_language_model."""
    from modelladder.train.checkpoint import load_weights

    cfg = pretrained_config(run_dir)
    model = build_language_model(cfg, base)
    load_weights(Path(run_dir) / "model.safetensors", model)
    return cfg, model.eval(), TextEncoder.load(Path(run_dir) / "tokenizer.json")


# ---------------------------------------------------------------- image encoders


def check_image_pretrain(cfg: RunConfig) -> None:
    """An image objective trains its own model, with the head that objective needs."""
    wanted = IMAGE_PRETRAIN_TASKS[cfg.task.name]
    if cfg.model.name != wanted:
        raise InputError(f"ladder pretrain with task.name '{cfg.task.name}' trains model.name '{wanted}', "
                         f"got '{cfg.model.name}'")
    lookup(MODELS, "model.name", wanted).check(cfg)


def pretrain_images(cfg: RunConfig, run_dir: Path, *, resume: bool = False, data: DataBundle | None = None) -> dict:
    """An image encoder pretrained with task reconstruction, vae or contrastive: an ordinary training run
    (pipeline.train_run: config.yaml, preprocess.json of kind image, model.safetensors, the task's own
    evaluation and pictures) that finetune.from can name."""
    from modelladder.pipeline import train_run

    check_image_pretrain(cfg)
    return train_run(cfg, run_dir, resume=resume, data=data)
