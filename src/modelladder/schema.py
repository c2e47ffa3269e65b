"""Base class for every typed config (unknown keys are errors, values are validated on assignment) and the
config types several components share."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# how much of a pretrained backbone trains (models/modes.py applies it): every weight, none, or LoRA adapters
Mode = Literal["full", "frozen", "lora"]


class LoraSettings(Strict):
    r: int = Field(8, gt=0)  # rank of each adapter
    alpha: int = Field(16, gt=0)  # the adapter's output is scaled by alpha / r
    dropout: float = Field(0.1, ge=0, lt=1)  # on the adapter's input
    # names of the Linear modules to adapt; null: peft's default for a Hugging Face architecture (query, value
    # for BERT), every Linear layer of the backbone for ModelLadder's own models
    target_modules: list[str] | None = None
