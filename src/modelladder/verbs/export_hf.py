"""`ladder export --format hf` (the hf rung as a Hugging Face folder; hf_causal_lm runs: verbs/export_lm.py) and `--format torch` (any network's state
dict as safetensors with the config that rebuilds it), each checked by loading it back the way its users will.

hf: the backbone is a folder `transformers.AutoModel.from_pretrained(DIR)` loads (config.json,
model.safetensors, the tokenizer's files, its model_max_length the run's max_length); a LoRA run's adapters are
merged into it, or with --adapters-only saved in PEFT's format (adapter_config.json, adapter_model.safetensors)
for `peft.PeftModel.from_pretrained(AutoModel.from_pretrained(base), DIR)`. The rung's own pooling and head
are not a transformers architecture: head.safetensors (`weight`, `bias` of the Linear layer) and
modelladder_head.json (pooling 'mean' over real tokens or 'cls', the classes) hold them. The check loads the
folder with transformers (and peft), tokenizes the test texts with AutoTokenizer, pools, applies the head,
and compares with our Predictor.

torch: model.safetensors (the state dict under the names of models/<family>.py) and config.json (the model's
config, input shape, outputs, task, classes): `build_model` + `load_state_dict(strict=True)` rebuild it; the
check does exactly that with safetensors.torch.load_file.
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from modelladder.errors import InputError
from modelladder.models.build import build_model
from modelladder.registry import MODELS, PRETRAIN_TASKS, TASKS, lookup
from modelladder.runs import write_json
from modelladder.verbs.export_check import Comparison, SequenceComparison, copy_beside, hf_runtime

BATCH = 64


def hf_refusal(cfg) -> str | None:
    """Why a run with config `cfg` has no Hugging Face export; None when it has one."""
    if cfg.model.name == "hf_causal_lm":
        return None  # verbs/export_lm.py
    if cfg.task.name in PRETRAIN_TASKS:
        return (f"--format hf exports the hf and hf_causal_lm rungs; model {cfg.model.name} (a `ladder pretrain` run "
                f"with task {cfg.task.name}) has no transformers architecture: use --format torch on the classifier "
                "fine-tuned from it")
    if cfg.model.name != "hf":
        return (f"--format hf exports the hf rung (a transformers backbone); model {cfg.model.name} has no "
                "transformers architecture: use --format onnx or --format torch")
    return None


def torch_refusal(cfg) -> str | None:
    """Why a run with config `cfg` has no torch export; None when it has one."""
    if lookup(MODELS, "model.name", cfg.model.name).family == "classic":
        from modelladder.verbs.export_onnx import refusal as onnx_refusal

        return (f"model {cfg.model.name} is a scikit-learn rung: it has no state dict (its run's model.skops is its "
                "file)" + ("; use --format onnx" if onnx_refusal(cfg) is None else ""))
    if cfg.task.name in PRETRAIN_TASKS:
        return (f"a `ladder pretrain` run (task {cfg.task.name}) is not supported by --format torch yet: its "
                "model.safetensors is already the state dict")
    return None


def write_hf(predictor, folder: Path, X, *, adapters_only: bool = False) -> dict:
    """The hf rung's backbone as a Hugging Face folder plus its head; the record, checked with transformers."""
    cfg = predictor.cfg.model
    if adapters_only and cfg.mode != "lora":
        raise InputError(f"--adapters-only needs a LoRA run (model.mode lora), this run's model.mode is {cfg.mode}")
    from transformers import AutoTokenizer

    from modelladder.models.hf import model_source, no_progress_bars

    model = predictor.model
    backbone = copy.deepcopy(model.backbone)
    with no_progress_bars():
        if cfg.mode == "lora" and not adapters_only:
            backbone = backbone.merge_and_unload()
        with warnings.catch_warnings():  # peft 0.21 calls an API transformers 5 deprecates (as models/modes.py)
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            backbone.save_pretrained(folder, safe_serialization=True)
        tokenizer = AutoTokenizer.from_pretrained(model_source(cfg), local_files_only=Path(model_source(cfg)).exists())
        tokenizer.model_max_length = cfg.max_length
        tokenizer.save_pretrained(folder)
    from safetensors.torch import save_file

    save_file({"weight": model.head.weight.detach().contiguous(), "bias": model.head.bias.detach().contiguous()},
              str(folder / "head.safetensors"))
    write_json(folder / "modelladder_head.json", {"pooling": model.pooling, "classes": predictor.classes,
                                                  "max_length": cfg.max_length,
                                                  "base": model_source(cfg) if adapters_only else None})
    shutil.copyfile(predictor.run_dir / "preprocess.json", folder / "preprocess.json")
    versions = hf_runtime(adapters_only)
    return {"exporter": f"save_pretrained ({'PEFT adapters' if adapters_only else 'merged weights' if cfg.mode == 'lora' else 'weights'})",
            "load_with": ("peft.PeftModel.from_pretrained(transformers.AutoModel.from_pretrained(base), DIR)"
                          if adapters_only else "transformers.AutoModel.from_pretrained(DIR)"),
            "head": "head.safetensors on the pooled last hidden state (modelladder_head.json)",
            "runtime": {"runtime": versions}, "comparison": _check_hf(predictor, folder, X, adapters_only)}


def _check_hf(predictor, folder: Path, X, adapters_only: bool) -> Comparison:
    """Load `folder` with transformers (and peft), tokenize X with its AutoTokenizer, pool, apply the head."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from modelladder.models.hf import model_source, no_progress_bars

    with no_progress_bars(), quiet_loading():
        if adapters_only:
            from peft import PeftModel

            base = AutoModel.from_pretrained(model_source(predictor.cfg.model), local_files_only=True)
            backbone = PeftModel.from_pretrained(base, str(folder))
        else:
            backbone = AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    head = load_file(str(folder / "head.safetensors"))
    pooling = json.loads((folder / "modelladder_head.json").read_text())["pooling"]
    backbone.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(X), BATCH):
            batch = tokenizer(list(X[i:i + BATCH]), truncation=True, padding=True, return_tensors="pt")
            h = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            if pooling == "cls":
                pooled = h[:, 0]
            else:
                real = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
                pooled = (h * real).sum(dim=1) / real.sum(dim=1)
            outs.append(pooled @ head["weight"].T + head["bias"])
    theirs = torch.cat(outs).numpy() if outs else np.zeros((0, len(predictor.classes) or 1), np.float32)
    return _compare_outputs(predictor, X, theirs)


@contextmanager
def quiet_loading():
    """transformers reports the backbone's pooler, dropped by the hf rung (models/hf.py), as newly initialised on
    every load: true, and unused here (the head reads the pooled last hidden state). peft 0.21 calls an API
    transformers 5 deprecates (as models/modes.py notes)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            yield
    finally:
        logging.set_verbosity(level)


def _compare_outputs(predictor, X, theirs: np.ndarray) -> Comparison:
    """Predictor's outputs against a loaded copy's raw network outputs `theirs` (logits, or standardised values)."""
    from modelladder.verbs.export_onnx import _softmax

    if predictor.classes:
        logits = predictor.logits(X)
        return Comparison("probabilities", _softmax(logits), _softmax(theirs),
                          {"logits_max_abs_diff": float(np.abs(logits - theirs).max()) if len(X) else 0.0})
    target = predictor.target or {"mean": 0.0, "std": 1.0}
    return Comparison("values", predictor.uncalibrated_scores(X),
                      theirs[:, 0].astype(np.float64) * target["std"] + target["mean"])


def write_torch(predictor, folder: Path, X, *, adapters_only: bool = False) -> dict:
    """model.safetensors + config.json (+ preprocess.json, tokenizer.json); the record, checked by rebuilding."""
    from safetensors.torch import load_file, save_file

    state = {k: v.detach().contiguous() for k, v in predictor.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    config = {"model": predictor.cfg.model.model_dump(mode="json"), "input_shape": predictor.preprocess["input_shape"],
              "n_outputs": _n_outputs(predictor), "task": predictor.cfg.task.name, "classes": predictor.classes,
              "seed": predictor.cfg.seed}
    if predictor.preprocess["kind"] == "seq2seq":  # what models/seq2seq_decode.py translate needs besides the model
        from modelladder.data.seq2seq import decoding_length

        transform = predictor.preprocess["transform"]
        config.update(target_vocab=transform["target_vocab"],
                      decoding={"beam": predictor.cfg.eval.beam, "length_penalty": predictor.cfg.eval.length_penalty,
                                "max_length": decoding_length(transform)})
    write_json(folder / "config.json", config)
    beside = copy_beside(predictor, folder)
    # the check: what a torch user does with these two files
    loaded = json.loads((folder / "config.json").read_text())
    model_cfg = lookup(MODELS, "model.name", loaded["model"]["name"]).Config.model_validate(loaded["model"])
    rebuilt = build_model(model_cfg, tuple(loaded["input_shape"]), loaded["n_outputs"], seed=loaded["seed"],
                          task=loaded["task"])
    rebuilt.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    rebuilt.eval()
    comparison = _compare_rebuilt(predictor, rebuilt, X)
    return {"exporter": f"safetensors state dict (torch {torch.__version__})", "beside": beside,
            "load_with": "build_model(Config(**config['model']), config['input_shape'], config['n_outputs']) then "
                         "load_state_dict(safetensors.torch.load_file('model.safetensors'), strict=True)",
            "runtime": {"runtime": f"torch {torch.__version__} + safetensors"}, "comparison": comparison}


def _n_outputs(predictor) -> int:
    """The network's output width: its classes, a seq2seq run's target vocabulary (preprocess.json), or 1."""
    return len(predictor.classes) or len(predictor.preprocess["transform"].get("target_vocab", ())) or 1


def _compare_rebuilt(predictor, rebuilt, X) -> Comparison:
    from modelladder.serve.predictor import Predictor

    if predictor.preprocess["kind"] == "seq2seq":  # the tensors, and the decoded outputs (the run's eval.beam)
        copy_ = Predictor(predictor.cfg, rebuilt, predictor.preprocess, predictor.run_dir, predictor.encoder)
        ours, theirs = predictor.sequences(X), copy_.sequences(X)
        same = np.array([a == b for a, b in zip(ours, theirs)])
        return SequenceComparison("values", *_flat_states(predictor.model, rebuilt),
                                  {"compared_what": "every tensor of the state dict, and the decoded outputs",
                                   "decoding": f"beam {predictor.cfg.eval.beam}",
                                   "sequence_agreement": float(same.mean()) if len(same) else 1.0,
                                   "sequences_differing": int((~same).sum())})
    if lookup(TASKS, "task.name", predictor.cfg.task.name).predicts:
        copy_ = Predictor(predictor.cfg, rebuilt, predictor.preprocess, predictor.run_dir, predictor.encoder)
        return _compare_outputs(predictor, X, copy_.logits(X) if predictor.classes else _standardised(copy_, X))
    # a model that makes no predictions (autoencoder, VAE, GAN): every tensor must come back as it was
    return Comparison("values", *_flat_states(predictor.model, rebuilt), {"compared_what": "every tensor of the state dict"})


def _flat_states(model, rebuilt) -> list[np.ndarray]:
    """Both models' state dicts, every tensor flattened into one row (1, N) each."""
    return [torch.cat([t.flatten().double() for t in m.state_dict().values()]).numpy()[None] for m in (model, rebuilt)]


def _standardised(predictor, X) -> np.ndarray:
    """A regression network's raw (standardised) outputs, (N, 1)."""
    values = predictor.uncalibrated_scores(X).astype(np.float64)
    target = predictor.target or {"mean": 0.0, "std": 1.0}
    return ((values - target["mean"]) / target["std"])[:, None]
