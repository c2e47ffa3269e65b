"""Weights folders a user hands in are loaded from safetensors (or GGUF) only, never unpickled.

A Hugging Face folder from before safetensors holds `pytorch_model.bin`, a pickle: loading it would run
whatever code the file names (torch's weights-only unpickler refuses most of it, with a raw traceback).
`refuse_pickled_weights` turns such a folder into one InputError that says what to do before any loader
sees it; the loaders also pass `use_safetensors=True`, so that transformers never falls back to a pickle.
"""

from __future__ import annotations

from pathlib import Path

from modelladder.errors import InputError

PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
SAFE_SUFFIXES = (".safetensors", ".gguf")


def pickled_weights_problem(folder: str | Path) -> str | None:
    """"'...' holds its weights only as a pickle (...), ...: provide safetensors ..." when `folder` holds
    pickled weights (.bin, .pt, ...) and no safetensors or GGUF file; None for anything else (a missing folder
    or a hub id is the loader's to report)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    pickled = [name for name in names if name.endswith(PICKLED_SUFFIXES)]
    if not pickled or any(name.endswith(SAFE_SUFFIXES) for name in names):
        return None
    shown = ", ".join(pickled[:3]) + (", ..." if len(pickled) > 3 else "")
    return (f"'{folder}' holds its weights only as a pickle ({shown}), and ModelLadder never unpickles a "
            "file it is given (a pickle can run any code): provide the weights as safetensors (model.safetensors; "
            "most Hugging Face models publish one), or, if you trust where the file came from, convert it once "
            "outside ModelLadder, e.g. with transformers: "
            "AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)")


def refuse_pickled_weights(folder: str | Path, field: str) -> None:
    """An InputError "`field` folder '...' holds its weights only as a pickle ..." (pickled_weights_problem)."""
    problem = pickled_weights_problem(folder)
    if problem is not None:
        raise InputError(f"{field} {problem}" if field.endswith("folder") else f"{field} folder {problem}")


def safetensors_folder(value: str | None) -> str | None:
    """A config field validator: a model folder holding only pickled weights is refused when the config is read,
    before a run folder is made (pydantic names the field)."""
    problem = None if value is None else pickled_weights_problem(value)
    if problem is not None:
        raise ValueError(f"folder {problem}")
    return value
