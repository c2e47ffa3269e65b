"""The model contract: what the run layer (verbs/), the loop and the Predictor may ask of a registered model.

Every registered model subclasses Rung: a network through Network (a plain nn.Module), a scikit-learn rung
through models/classic.py's ClassicRung. An optional capability is a class attribute or classmethod with a
default here, so callers read it directly and never probe with hasattr. Adding a model family is one file
(a Config and a class that subclasses Network or ClassicRung) plus one line in registry.MODELS.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from modelladder.errors import InputError
from modelladder.schema import Strict


class Rung:
    Config: ClassVar[type[Strict]]  # the model's typed config, `name: Literal["<registry name>"]` first
    family: ClassVar[str]  # "neural" or "classic"
    # what the model reads: "text" (strings, tokenised by make_encoder), or arrays: "pixels" (images in [0, 1]),
    # "captioned" (images with captions) or "features" (any image or tabular features); the shared model suite
    # picks its problem from it, and the run layer checks text against the data
    input_kind: ClassVar[str] = "features"
    # the tasks (registry.TASKS names) this model trains with: compatibility is declared here and nowhere else
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")
    # the model fields a fine-tuned model sets for itself (every other one is the pretrained architecture);
    # empty: the family cannot start from a `ladder pretrain` run
    finetune_fields: ClassVar[frozenset[str]] = frozenset()
    # a tree ensemble that SHAP's TreeExplainer explains exactly: what its trees output ("probability" or
    # "log-odds"); None: explained model-agnostically (ladder explain)
    tree_output: ClassVar[str | None] = None
    # a classifier whose scores are margins, not probabilities (a linear SVM): its runs are always calibrated
    # on the validation split (eval.calibrate, 'platt' by default), so no margin is ever shown as a probability
    outputs_margins: ClassVar[bool] = False
    # what `ladder tune` searches (models/space.py): dotted run-config path -> {"low", "high", "log"} (float),
    # {"low", "high", "int": True, "log"} (int) or {"choices": [...]}; {}: this model has nothing to tune
    search_space: ClassVar[dict[str, dict]] = {}

    @classmethod
    def search_space_for(cls, cfg) -> dict[str, dict]:
        """The search space for model config `cfg`: search_space, unless the family's depends on the config
        (an autoencoder's kind, a LoRA mode)."""
        return dict(cls.search_space)

    @classmethod
    def problems(cls, cfg) -> list[str]:
        """What in run config `cfg` (its task, train or model fields) this model cannot train with, one sentence
        each naming the field; the run layer collects every component's problems into one InputError."""
        return []


# the training fields worth tuning for every network, which each network's search_space starts from
NETWORK_SPACE: dict[str, dict] = {
    "train.optimizer.lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.optimizer.weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
}
DROPOUT = {"low": 0.0, "high": 0.5}
# a pretrained backbone: a smaller learning rate; with mode lora, the adapters' rank and dropout too
PRETRAINED_SPACE: dict[str, dict] = {"train.optimizer.lr": {"low": 1e-5, "high": 1e-3, "log": True},
                                     "train.optimizer.weight_decay": {"low": 1e-6, "high": 1e-1, "log": True}}
LORA_SPACE: dict[str, dict] = {"model.lora.r": {"choices": [4, 8, 16, 32]},
                               "model.lora.dropout": {"low": 0.0, "high": 0.3}}


class Network(Rung, nn.Module):
    """A network rung: forward takes and returns tensors; no loss, logging or device code inside."""

    family = "neural"
    # the submodules a fine-tuned model copies from a pretrained run of the same family (finetune.from)
    backbone_parts: ClassVar[tuple[str, ...]] = ()
    frozen: bool = False  # finetune mode 'frozen': the backbone stays in eval mode
    # a network whose encode(x) gives an input's code (an autoencoder's, a VAE's mean, SimCLR's features): what
    # `ladder export` writes for a run that makes no predictions
    encodes: ClassVar[bool] = False

    @classmethod
    def make_encoder(cls, cfg, texts):
        """A text model's tokenizer (data/tokenize.py TextEncoder), trained on `texts` or its own pretrained one."""
        raise InputError(f"model.name '{cfg.name}' reads no text: it has no tokenizer")

    @classmethod
    def language_model(cls, cfg, base: nn.Module | None = None) -> nn.Module:
        """The language model `ladder pretrain` trains for this family (tasks causal_lm / masked_lm), built from the
        model config `cfg`; `base`: a pretrained model already loaded, copied instead of loaded again."""
        raise InputError(f"model.name '{cfg.name}' has no language model to pretrain")

    def input_embeddings(self) -> nn.Embedding:
        """A text network's token embedding, which ladder explain attributes through."""
        raise TypeError(f"{type(self).__name__} has no token embedding layer")

    @classmethod
    def corpus_encoder(cls, cfg) -> Any:
        """The tokenizer a language model brings for pretraining; None: train one on the corpus (make_encoder)."""
        return None
