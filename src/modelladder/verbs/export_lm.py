"""`ladder export --format hf` for an hf_causal_lm run of `ladder pretrain`: a folder that
`transformers.AutoModelForCausalLM.from_pretrained(DIR)` loads (the LoRA adapters merged into the base weights),
or with --adapters-only the adapters in PEFT's format for `peft.PeftModel.from_pretrained(base, DIR)`; the
tokenizer's files beside, its model_max_length the run's max_length.

The check loads the folder with transformers (and peft) and compares its next-token probabilities with the
run's own model on the run's held-out windows (at most WINDOWS of them): every position of every window, max
|diff| within the tolerance of verbs/export.py and the same most likely next token everywhere.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch

from modelladder.errors import InputError
from modelladder.verbs.export_check import Comparison, hf_runtime

WINDOWS = 16


def write_language_model(run_dir: Path, folder: Path, *, adapters_only: bool = False) -> dict:
    from transformers import AutoTokenizer

    from modelladder.models.hf import no_progress_bars
    from modelladder.models.hf_causal import base_source
    from modelladder.verbs.export_hf import quiet_loading
    from modelladder.verbs.pretrain import load_language_model, prepare_data

    cfg, model, _ = load_language_model(run_dir)
    if adapters_only and cfg.model.mode != "lora":
        raise InputError(f"--adapters-only needs a LoRA run (model.mode lora), this run's model.mode is "
                         f"{cfg.model.mode}")
    held_out = prepare_data(cfg).val
    if not len(held_out):
        raise InputError(f"run {run_dir} has no held-out text (data.split.val is 0): nothing to check the export on")
    count = min(WINDOWS, len(held_out))
    ids = held_out.take(torch.arange(count) * held_out.context)[0]
    source, gguf = base_source(cfg.model.path)
    lm = copy.deepcopy(model.lm)
    with no_progress_bars(), quiet_loading(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft and transformers deprecation notices
        if cfg.model.mode == "lora" and not adapters_only:
            lm = lm.merge_and_unload()
        lm.save_pretrained(folder, safe_serialization=True)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf, local_files_only=Path(source).exists())
        tokenizer.model_max_length = model.max_length
        tokenizer.save_pretrained(folder)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers 5 renames past_key_values (models/hf_causal.py passes None)
        ours = model(ids).float().softmax(-1).flatten(0, 1).numpy()
    theirs = _their_probabilities(folder, ids, adapters_only, cfg.model.path)
    runtime = hf_runtime(adapters_only)
    return {"exporter": f"save_pretrained ({'PEFT adapters' if adapters_only else 'merged weights'})",
            "load_with": ("peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), DIR)"
                          if adapters_only else "transformers.AutoModelForCausalLM.from_pretrained(DIR)"),
            "base": f"{source}/{gguf}" if gguf else source,
            "runtime": {"runtime": runtime},
            "checked_on": {"split": "val", "n": count, "n_split": len(held_out),
                           "what": f"{count} held-out windows of {held_out.context} tokens, every position"},
            "comparison": Comparison("probabilities", ours, theirs)}


def _their_probabilities(folder: Path, ids: torch.Tensor, adapters_only: bool, path: str | None) -> np.ndarray:
    """Next-token probabilities (windows x positions, vocab) of the folder as transformers (and peft) load it."""
    from transformers import AutoModelForCausalLM

    from modelladder.models.hf import no_progress_bars
    from modelladder.models.hf_causal import base_source, load_base
    from modelladder.verbs.export_hf import quiet_loading

    with no_progress_bars(), quiet_loading(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if adapters_only:
            from peft import PeftModel

            lm = PeftModel.from_pretrained(load_base(*base_source(path)), str(folder))
        else:
            lm = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                                      dtype=torch.float32)
    lm.eval()
    with torch.inference_mode():
        return lm(input_ids=ids).logits.float().softmax(-1).flatten(0, 1).numpy()
