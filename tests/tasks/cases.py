"""The shared task suite's cases: for every task in registry.TASKS, a model that trains with it, a tiny problem
(the shared model suite's, tests/models/test_model_suite.py), what its metrics are documented to report, and one
input the task refuses.

A case is built as a run builds its task: a RunConfig and a DataBundle (verbs/build.py: check_model_fits_data,
make_task, build_model) or, for the language-model tasks, a RunConfig and a corpus (verbs/pretrain.py:
prepare_data, build_language_model). The bundles wrap the model suite's arrays in memory, so
nothing is downloaded and everything builds in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelladder.config import RunConfig, deep_merge, validate_run
from modelladder.data.bundle import DataBundle
from modelladder.models.build import build_model
from modelladder.verbs.build import check_model_fits_data, make_task
from tests.models.problems import seq2seq_problem, text_problem
from tests.models.test_model_suite import CAPTIONS, LM_TEXT, float_problem, pixel_problem

CONTEXT = 16  # the language models' window: LM_TEXT gives about thirty of them
QUIET_TRAIN = {"progress": False, "threads": 1}
# a second caption per class, so that the clip task's draw of one caption per image has a choice
MORE_CAPTIONS = [c.replace("a picture of", "an image showing") for c in CAPTIONS]


@dataclass(frozen=True)
class Refusal:
    """Data or a config the task cannot train on, and the field its InputError must name."""

    what: str  # in words, for the failure message
    make: Callable[[], tuple[RunConfig, Any]]  # -> (cfg, data)
    field: str
    stage: str = "problems"  # "problems": the task's problems() name it; "from_config": building the task refuses


@dataclass(frozen=True)
class Case:
    task: str
    model: dict  # the run's model section: a registered model whose `tasks` include this task
    problem: str  # "classes", "targets", "pixels", "captioned", "seq2seq" (bundles of the model suite's arrays), "corpus"
    metrics: frozenset[str]  # the keys metrics() documents
    loss_metric: str = "loss"  # the metric that is the batch's mean loss: what the run's val_loss reports
    # loss_metric / loss for the built task: 1, except a regression network's, trained on the standardised target
    # (tasks/regression.py), whose mse is its loss times std^2
    loss_scale: Callable[[Any], float] = lambda task: 1.0
    # predicts=True: "class" (an index) or "value" (a real number) per example, or "strings": decoded outputs, which
    # decode() passes through (tasks/seq2seq.py; its training scores are token statistics)
    decodes: str | None = None
    options: dict = field(default_factory=dict)  # the run's task section beyond its name
    refusal: Refusal | None = None
    steps: int = 30  # Adam steps on one fixed batch
    lr: float = 3e-3
    fall: float = 0.7  # those steps take the loss below this fraction of where it starts


@dataclass
class Built:
    cfg: RunConfig
    data: Any  # a DataBundle, or verbs/pretrain.py's PretrainData for the language models
    task: Any
    model: torch.nn.Module
    x: Any  # one batch: the whole tiny problem
    y: torch.Tensor  # its labels as the loop hands them over: in the task's target_dtype
    y_np: np.ndarray


def run_config(case: Case, **sections) -> RunConfig:
    raw = {"data": {"dataset": "digits"}, "model": case.model, "task": {"name": case.task, **case.options},
           "train": QUIET_TRAIN}
    return validate_run(deep_merge(raw, sections))


# ---------------------------------------------------------------- bundles of the model suite's problems

PIXEL_STATS = {"mean": [0.0], "std": [1.0]}  # the features already are pixels: to_pixels leaves them as they are


def bundle(X: np.ndarray, y: np.ndarray, *, kind: str = "image", classes: list[str] | None = None,
           preprocess: dict | None = None) -> DataBundle:
    """Every example in the training split (the suite trains and scores one batch); the last 24 as val too."""
    classes = ["first", "second", "third"] if classes is None else classes
    return DataBundle(X_train=X, y_train=y, X_val=X[-24:], y_val=y[-24:], X_test=X[:0], y_test=y[:0], kind=kind,
                      input_shape=tuple(X.shape[1:]), classes=classes, preprocess=dict(preprocess or PIXEL_STATS))


def classes_bundle() -> DataBundle:
    X, y, _, _ = float_problem()
    return bundle(X, y)


def targets_bundle() -> DataBundle:
    """The float problem's images with a real-valued target: a fixed linear function of the pixels."""
    X, _, _, _ = float_problem()
    w = np.random.default_rng(1).normal(size=X[0].size) / np.sqrt(X[0].size)
    return bundle(X, (X.reshape(len(X), -1) @ w).astype(np.float32), kind="tabular", classes=[])


def pixels_bundle() -> DataBundle:
    X, y, _, _ = pixel_problem()
    return bundle(X, y)


def captioned_bundle() -> DataBundle:
    """The float problem's images, each with its class's two captions (rows class, caption, caption), as
    data/captions.py lays them out; CAPTIONS are the zero-shot prompts too, one per class."""
    X, y, _, _ = float_problem()
    rows = np.stack([y, y, y + len(CAPTIONS)], axis=1).astype(np.int64)
    return bundle(X, rows, preprocess={**PIXEL_STATS, "captions": CAPTIONS + MORE_CAPTIONS, "prompts": CAPTIONS,
                                       "synthetic_captions": True})


def text_bundle() -> DataBundle:
    X, y, _, _ = text_problem()
    return bundle(X, y, kind="text", preprocess={})


def seq2seq_bundle() -> DataBundle:
    """Words -> their letters upper-cased (tests/models/problems.py), with the target vocabulary fitted on them."""
    from modelladder.data.seq2seq import with_target_vocabulary

    X, y, _, _ = seq2seq_problem()
    data = bundle(X, y, kind="seq2seq", classes=[], preprocess={"kind": "seq2seq"})
    data.input_shape = ()
    data.preprocess = with_target_vocabulary(data.preprocess, y)
    return data


BUNDLES: dict[str, Callable[[], DataBundle]] = {"classes": classes_bundle, "targets": targets_bundle,
                                                "pixels": pixels_bundle, "captioned": captioned_bundle,
                                                "seq2seq": seq2seq_bundle}


# ---------------------------------------------------------------- building a case as a run does


def build(case: Case, tmp_path: Path, seed: int = 0) -> Built:
    if case.problem == "corpus":
        return build_language_model_case(case, tmp_path, seed)
    data = BUNDLES[case.problem]()
    cfg = run_config(case, seed=seed)
    check_model_fits_data(cfg, data)  # the run's own check: the model trains with this task on this data
    task = make_task(cfg, data)
    model = build_model(cfg.model, data.input_shape, data.n_outputs, seed=seed, task=case.task)
    if data.kind == "seq2seq":  # sources as token sequences and targets as symbol ids, as the run encodes them
        from modelladder.verbs.build import encoded, text_encoder

        train = encoded(data, text_encoder(cfg, data, tmp_path))
        x = train.X_train.take(torch.arange(len(train.X_train)))
        return Built(cfg, data, task, model, x, torch.from_numpy(train.y_train), train.y_train)
    y = torch.from_numpy(data.y_train).to(task.target_dtype)
    return Built(cfg, data, task, model, torch.from_numpy(data.X_train), y, data.y_train)


def corpus_config(case: Case, tmp_path: Path, seed: int = 0) -> RunConfig:
    """`ladder pretrain` on LM_TEXT written to a file: corpus 'text', a character tokenizer."""
    path = tmp_path / "corpus.txt"
    path.write_text(LM_TEXT, encoding="utf-8")
    return run_config(case, seed=seed, data={"dataset": "text", "path": str(path)})


def build_language_model_case(case: Case, tmp_path: Path, seed: int) -> Built:
    from modelladder.verbs.pretrain import build_language_model, prepare_data

    cfg = corpus_config(case, tmp_path, seed)
    data = prepare_data(cfg)  # checks the config as `ladder pretrain` does, then tokenises the corpus
    task = make_task(cfg, data)
    starts = torch.arange(len(data.train)) * CONTEXT  # every non-overlapping window of the training text
    x, y = data.train.take(starts)
    return Built(cfg, data, task, build_language_model(cfg), x, y.to(task.target_dtype), y.numpy())


# ---------------------------------------------------------------- the cases

TINY_TRANSFORMER = {"name": "transformer", "vocab_size": 40, "max_length": CONTEXT, "dim": 32, "depth": 1,
                    "heads": 2, "dropout": 0.0, "tokenizer": {"kind": "char"}}


def on_text(case: Case) -> Callable[[], tuple[RunConfig, Any]]:
    return lambda: (run_config(case, data={"dataset": "sst2"}), text_bundle())


def _cases() -> dict[str, Case]:
    cases = [
        Case("classification", {"name": "mlp", "hidden": [32]}, "classes",
             frozenset({"accuracy", "precision_macro", "recall_macro", "f1_macro", "log_loss", "ece", "roc_auc"}),
             loss_metric="log_loss", decodes="class", fall=0.5),
        Case("regression", {"name": "mlp", "hidden": [32]}, "targets", frozenset({"rmse", "mse", "mae", "r2"}),
             loss_metric="mse", loss_scale=lambda task: task.std**2, decodes="value", fall=0.5),
        Case("causal_lm", {**TINY_TRANSFORMER, "causal": True}, "corpus",
             frozenset({"loss", "perplexity", "bits_per_char"}), lr=1e-2, fall=0.7),
        Case("masked_lm", {**TINY_TRANSFORMER, "causal": False}, "corpus",
             frozenset({"loss", "perplexity", "accuracy"}), lr=1e-2, fall=0.85),
        # task.loss mse: bce cannot fall below the grey pixels' entropy (0.56 nats a pixel), which hides its fall
        Case("reconstruction", {"name": "autoencoder", "hidden": [32], "latent": 8}, "pixels",
             frozenset({"bce", "mse", "loss"}), options={"loss": "mse"}, lr=1e-2, fall=0.6),
        Case("vae", {"name": "vae", "hidden": [32], "latent": 4}, "pixels",
             frozenset({"recon", "kl", "neg_elbo", "bce", "mse", "loss"}), options={"loss": "mse"}, lr=1e-2,
             fall=0.9),
        Case("gan", {"name": "gan", "latent": 8, "width": 8}, "pixels",
             frozenset({"d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake", "loss"})),
        Case("contrastive", {"name": "simclr", "channels": [8, 16], "features": 32, "projection": 16,
                             "head": "projection"}, "pixels", frozenset({"loss"}), lr=1e-2, fall=0.95),
        Case("clip", {"name": "clip", "embed_dim": 16, "image": {"channels": [8, 16], "hidden": 32},
                      "text": {"dim": 16, "depth": 1, "heads": 2, "vocab_size": 60, "dropout": 0.0}}, "captioned",
             frozenset({"loss"}), fall=0.9),
        Case("seq2seq", {"name": "seq2seq_rnn", "attention": "luong", "embed_dim": 16, "hidden": 32, "dropout": 0.0},
             "seq2seq", frozenset({"token_loss", "token_accuracy", "wer", "per", "exact_match"}),
             loss_metric="token_loss", decodes="strings", lr=1e-2, fall=0.5),
    ]
    by_name = {c.task: c for c in cases}
    refusals = {
        "classification": Refusal("data without classes", lambda: (run_config(by_name["classification"]),
                                                                    targets_bundle()), "task.name", "from_config"),
        "reconstruction": Refusal("text data", on_text(by_name["reconstruction"]), "data.dataset"),
        "vae": Refusal("text data", on_text(by_name["vae"]), "data.dataset"),
        "contrastive": Refusal("text data", on_text(by_name["contrastive"]), "data.dataset"),
        "gan": Refusal("bf16 precision", lambda: (run_config(by_name["gan"], train={"precision": "bf16"}),
                                                   pixels_bundle()), "train.precision"),
        "seq2seq": Refusal("text classification data", on_text(by_name["seq2seq"]), "data.dataset"),
        "clip": Refusal("images without captions", lambda: (run_config(by_name["clip"]), pixels_bundle()),
                        "data.dataset"),
    }
    return {name: replace(c, refusal=refusals.get(name)) for name, c in by_name.items()}


CASES = _cases()
