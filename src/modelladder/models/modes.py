"""How much of a pretrained backbone trains, for every rung that starts from one (hf, fine-tuned runs).

- full: every weight;
- frozen: none of the backbone's (a linear probe): requires_grad is off and the backbone stays in eval
  mode, so dropout does not change the features the head learns from;
- lora: LoRA adapters added by `peft` to the backbone's Linear layers; only they (and the head) train.
"""

from __future__ import annotations

import warnings

from torch import nn

from modelladder.errors import InputError
from modelladder.schema import LoraSettings


def with_lora(backbone: nn.Module, lora: LoraSettings, field: str = "model.lora") -> nn.Module:
    """`backbone` wrapped by peft with LoRA adapters on `lora.target_modules`; only the adapters stay trainable.
    Errors name `field`, where the settings came from."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.target_modules)
    try:
        with warnings.catch_warnings():  # peft 0.21 calls an API transformers 5 deprecates: not the user's concern
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            return get_peft_model(backbone, config)
    except ValueError as err:
        raise InputError(f"{field}.target_modules {lora.target_modules}: {str(err).splitlines()[0]}") from None


def linear_names(module: nn.Module) -> list[str]:
    """The names of every nn.Linear inside `module`: LoRA's targets when none are given."""
    return [name for name, sub in module.named_modules() if isinstance(sub, nn.Linear)]
