"""Differentially private training (DP-SGD) through opacus, for `train.privacy`.

The loop (train/loop.py) calls make_private once: opacus puts per-example gradient hooks on the
model and wraps the optimizer so that each step clips every example's gradient to max_grad_norm
and adds Gaussian noise, with the noise scale calibrated (RDP accountant) so that the planned
epochs spend target_epsilon. The loop keeps its own batching: shuffled batches of batch_size, the
sample rate 1 / steps_per_epoch, accounted as opacus does for poisson_sampling=False (the RDP
bound assumes Poisson sampling at that rate, the usual practice). The noise comes from a seeded
generator saved in checkpoints, so a resumed DP run ends with the same weights as an uninterrupted
one; the epsilon spent is a function of the steps taken (privacy_spent), so it survives resume too.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from modelladder.config import TrainConfig
from modelladder.errors import InputError

ACCOUNTANT = "rdp"


@dataclass
class PrivateTraining:
    """What the loop uses instead of its own: the DP optimizer, its noise generator, the gradient hooks."""

    optimizer: torch.optim.Optimizer  # opacus DPOptimizer around the loop's optimizer
    generator: torch.Generator  # the noise's random stream
    hooks: object  # opacus GradSampleHooks: per-example gradients on the model's own layers

    def step(self) -> None:
        """Clip, add noise, update; then clear the per-example gradients, which opacus would accumulate."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def on_fit_end(self, result) -> None:
        self.hooks.cleanup()  # the trained model goes on without per-example gradient hooks


def check_private(model, model_name: str) -> None:
    """InputError unless opacus can compute `model`'s per-example gradients (called before a run is written)."""
    from opacus.validators import ModuleValidator

    if not isinstance(model, nn.Module):
        raise InputError(f"train.privacy (DP-SGD) trains networks; model.name '{model_name}' is a scikit-learn "
                         "rung: drop train.privacy for it")
    problems = ModuleValidator.validate(model, strict=False)
    if problems:
        raise InputError(_refusal(model_name, problems))


def _refusal(model_name: str, problems: list[Exception]) -> str:
    reasons = "; ".join(dict.fromkeys(str(p).split(". ")[0] for p in problems))  # opacus' first sentences
    return (f"train.privacy: model '{model_name}' cannot be trained with DP-SGD, opacus says: {reasons}. Turn "
            "batchnorm off (it mixes the examples of a batch), or use a model without such layers (mlp and "
            "cnn with batchnorm: false work)")


def sample_rate(cfg: TrainConfig, n_train: int) -> float:
    return 1 / math.ceil(n_train / cfg.batch_size)


def make_private(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, *, n_train: int,
                 generator: torch.Generator, model_name: str = "this model") -> PrivateTraining:
    """Per-example clipping and noise for `model` trained by `optimizer` over n_train examples."""
    from opacus import PrivacyEngine
    from opacus.validators.errors import UnsupportedModuleError
    from torch.utils.data import DataLoader

    privacy = cfg.privacy
    # opacus reads the sample rate and batch size off a loader; the loop's own batch source does the batching
    loader = DataLoader(range(n_train), batch_size=cfg.batch_size)
    try:
        with warnings.catch_warnings():
            _quiet_accountant()
            warnings.filterwarnings("ignore", message="Secure RNG turned off")  # seeded noise: resume is exact
            engine = PrivacyEngine(accountant=ACCOUNTANT)
            hooks, dp_optimizer, _ = engine.make_private_with_epsilon(
                module=model, optimizer=optimizer, data_loader=loader, target_epsilon=privacy.target_epsilon,
                target_delta=privacy.delta, epochs=cfg.epochs, max_grad_norm=privacy.max_grad_norm,
                poisson_sampling=False, noise_generator=generator, wrap_model=False)
    except UnsupportedModuleError as err:
        problems = err.args[0] if err.args and isinstance(err.args[0], list) else [err]
        raise InputError(_refusal(model_name, problems)) from None
    return PrivateTraining(dp_optimizer, generator, hooks)


def _quiet_accountant() -> None:
    # with few steps the best RDP order is the largest one tried: the epsilon is still a valid bound
    warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")


def privacy_spent(cfg: TrainConfig, *, n_train: int, steps: int) -> dict:
    """The (epsilon, delta) guarantee after `steps` DP-SGD steps of a run with train config `cfg`."""
    from opacus.accountants import RDPAccountant
    from opacus.accountants.utils import get_noise_multiplier

    privacy, rate = cfg.privacy, sample_rate(cfg, n_train)
    # the same call make_private_with_epsilon makes, so the same noise multiplier
    with warnings.catch_warnings():
        _quiet_accountant()
        sigma = get_noise_multiplier(target_epsilon=privacy.target_epsilon, target_delta=privacy.delta,
                                     sample_rate=rate, epochs=cfg.epochs, accountant=ACCOUNTANT)
        accountant = RDPAccountant()
        accountant.history = [(sigma, rate, steps)]  # every step used the same noise and sample rate
        epsilon = float(accountant.get_epsilon(privacy.delta))
    return {"dp_epsilon": epsilon, "dp_delta": privacy.delta,
            "dp_target_epsilon": privacy.target_epsilon, "dp_noise_multiplier": float(sigma),
            "dp_max_grad_norm": privacy.max_grad_norm, "dp_sample_rate": rate}
