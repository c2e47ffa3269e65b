"""What every `ladder export` format shares: the comparison of our outputs with the runtime's (and its tolerances),
the test inputs it runs on, and the files copied beside an export (verbs/export.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SAMPLE = 2000  # test examples compared at most: the check stays seconds long on large test splits
PROBABILITY_TOLERANCE = 1e-4  # max |p_ours - p_runtime| over every class of every compared example
VALUE_TOLERANCE = 1e-4  # regression values, codes and logits: max |ours - runtime| / max(1, max |ours|)


class ExportMismatch(Exception):
    """The runtime's outputs differ from ours beyond the tolerance: the export is not written (exit 1)."""


@dataclass
class Comparison:
    """Our outputs and the runtime's on the same inputs; `kind` says what they are: 'probabilities' (compared
    with PROBABILITY_TOLERANCE, argmax must agree everywhere), 'values' or 'codes' (VALUE_TOLERANCE)."""

    kind: str
    ours: np.ndarray
    theirs: np.ndarray
    extra: dict = field(default_factory=dict)  # e.g. the logits' own difference, for the record

    def record(self) -> dict:
        ours, theirs = np.asarray(self.ours, np.float64), np.asarray(self.theirs, np.float64)
        if ours.shape != theirs.shape:
            raise ExportMismatch(f"the runtime's outputs are shaped {theirs.shape}, ours {ours.shape}")
        diff = float(np.abs(ours - theirs).max()) if ours.size else 0.0
        if self.kind == "probabilities":
            tolerance, scale = PROBABILITY_TOLERANCE, 1.0
        else:
            tolerance, scale = VALUE_TOLERANCE, max(1.0, float(np.abs(ours).max()) if ours.size else 1.0)
        record = {"compared": self.kind, "max_abs_diff": diff, "tolerance": tolerance * scale, **self.extra}
        if self.kind == "probabilities":
            record["argmax_agreement"] = float((ours.argmax(1) == theirs.argmax(1)).mean()) if len(ours) else 1.0
        record["passed"] = bool(diff <= tolerance * scale and record.get("argmax_agreement", 1.0) == 1.0)
        return record


class SequenceComparison(Comparison):
    """A seq2seq export: values compared as Comparison does (step logits, or the state dict's tensors), and every
    output sequence, whose agreement (extra "sequence_agreement") must be 1."""

    def record(self) -> dict:
        record = super().record()
        record["passed"] = bool(record["passed"] and record["sequence_agreement"] == 1.0)
        return record


def check_inputs(predictor) -> tuple[np.ndarray, str, int]:
    """The run's test split as the model sees it (preprocessed features, cleaned texts), at most SAMPLE of them
    (a seeded sample); the split's name and full size."""
    from modelladder.verbs.build import load_run_data

    data = load_run_data(predictor.cfg)
    split = "test" if len(data.split("test")[1]) else "val"
    X, _ = data.split(split)
    if len(X) > SAMPLE:
        keep = np.sort(np.random.default_rng(predictor.cfg.seed).choice(len(X), SAMPLE, replace=False))
        return X[keep], split, len(X)
    return X, split, len(X)


def copy_beside(predictor, folder: Path) -> list[str]:
    """The run's preprocess.json (what raw inputs go through before the model) and, for text runs, its
    tokenizer.json, copied into `folder`; their names."""
    names = ["preprocess.json"] + (["tokenizer.json"] if (predictor.run_dir / "tokenizer.json").is_file() else [])
    for name in names:
        shutil.copyfile(predictor.run_dir / name, folder / name)
    return names


def hf_runtime(adapters_only: bool) -> str:
    """The consumer that checked a Hugging Face export, as export.json records it: transformers (+ peft)."""
    import transformers

    runtime = f"transformers {transformers.__version__}"
    if adapters_only:
        import peft

        runtime += f" + peft {peft.__version__}"
    return runtime
