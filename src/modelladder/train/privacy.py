"""Differentially private training (DP-SGD) through opacus, for `train.privacy`.

The loop (train/loop.py) calls make_private once: opacus puts per-example gradient hooks on the
model and wraps the optimizer so that each step clips every example's gradient to max_grad_norm
and adds Gaussian noise, with the noise scale calibrated (RDP accountant) so that the planned
epochs spend target_epsilon.

Batches are Poisson samples, as the RDP accountant assumes: each step takes every training example
independently with probability q = 1 / steps_per_epoch (opacus' UniformWithReplacementSampler, what its
DPDataLoader uses), so batch sizes vary around batch_size and a batch may be empty (it still takes a
noised step, which the accounting counts). The epsilon reported is therefore exact for what ran, and a
function of the steps taken (privacy_spent), so it survives resume too.

`train.privacy.secure: false` (the default here): the noise and the sampling come from seeded generators
saved in checkpoints, so a resumed DP run ends with the same weights as an uninterrupted one; anyone with
the seed can replay the noise, so such a model is for experiments. `secure: true`, for a model meant for
release: opacus' secure_mode (a cryptographically secure generator, torchcsprng) when installed; otherwise
the generators are seeded from os.urandom and never stored (torch's generator is not itself
cryptographically secure: install torchcsprng for that). Either way a secure run cannot resume bitwise.

Not covered by the accounting: preprocessing statistics fitted on the private rows (normalisation means,
vocabularies, TF-IDF weights) ship with the model outside the guarantee; the model card says so.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modelladder.config import TrainConfig
from modelladder.errors import InputError

ACCOUNTANT = "rdp"
SAMPLING = "poisson"


@dataclass
class PrivateTraining:
    """What the loop uses instead of its own: the DP optimizer, its noise generator (stored in checkpoints
    unless the run is secure), the gradient hooks and the Poisson batch sampler."""

    optimizer: torch.optim.Optimizer  # opacus DPOptimizer around the loop's optimizer
    generator: torch.Generator | None  # the noise's random stream; None when secret (secure)
    hooks: object  # opacus GradSampleHooks: per-example gradients on the model's own layers
    sampler_generator: torch.Generator | None = None  # secure: the sampling's secret stream

    def step(self) -> None:
        """Clip, add noise, update; then clear the per-example gradients, which opacus would accumulate."""
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def on_fit_end(self, result) -> None:
        self.hooks.cleanup()  # the trained model goes on without per-example gradient hooks

    def poisson(self, source) -> PoissonSource:
        return PoissonSource(source, self.sampler_generator)

    def loss(self, loss_fn):
        """loss_fn, but an empty Poisson batch gives loss 0 (not the NaN of a mean over nothing): its step still
        adds the noise, with no example's gradient in it."""
        def loss(model, x, y):
            value, outputs = loss_fn(model, x, y)
            return (torch.nan_to_num(value, nan=0.0) if _rows(x) == 0 else value), outputs

        return loss


class PoissonSource:
    """A batch source whose epoch is steps_per_epoch Poisson samples of the wrapped source's examples."""

    def __init__(self, source, secret: torch.Generator | None = None):
        self.source, self.secret = source, secret

    def __len__(self) -> int:
        return len(self.source)

    def epoch(self, generator: torch.Generator, batch_size: int) -> list[Tensor]:
        """One epoch's batches: each takes every example with probability 1 / steps (steps = ceil(n / batch_size)),
        drawn from `generator` (seed and epoch: a resumed run draws the same) or, when secure, the secret one."""
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        steps = math.ceil(len(self.source) / batch_size)
        sampler = UniformWithReplacementSampler(num_samples=len(self.source), sample_rate=1 / steps,
                                                generator=self.secret or generator, steps=steps)
        return [torch.tensor(indices, dtype=torch.long) for indices in sampler]

    def take(self, idx: Tensor):
        return self.source.take(idx)

    def padded_length(self, idx: Tensor) -> int | None:
        return self.source.padded_length(idx)

    def in_order(self, batch_size: int) -> list[Tensor]:
        return self.source.in_order(batch_size)


def _rows(x) -> int:
    return len(x[0] if isinstance(x, tuple) else x)


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
    """Per-example clipping and noise for `model` trained by `optimizer` over n_train examples, Poisson-sampled.
    `generator`: the seeded noise stream, used unless train.privacy.secure."""
    from opacus import PrivacyEngine
    from opacus.validators.errors import UnsupportedModuleError
    from torch.utils.data import DataLoader, TensorDataset

    privacy = cfg.privacy
    secure_mode, generator, sampler_generator = _noise_source(privacy.secure, generator)
    # opacus reads the sample rate and dataset size off a loader; the loop's PoissonSource does the sampling
    loader = DataLoader(TensorDataset(torch.arange(n_train)), batch_size=cfg.batch_size)
    try:
        with warnings.catch_warnings():
            _quiet_accountant()
            warnings.filterwarnings("ignore", message="Secure RNG turned off")  # said in the docs and the card
            engine = PrivacyEngine(accountant=ACCOUNTANT, secure_mode=secure_mode)
            hooks, dp_optimizer, _ = engine.make_private_with_epsilon(
                module=model, optimizer=optimizer, data_loader=loader, target_epsilon=privacy.target_epsilon,
                target_delta=privacy.delta, epochs=cfg.epochs, max_grad_norm=privacy.max_grad_norm,
                poisson_sampling=True, noise_generator=generator, wrap_model=False)
    except UnsupportedModuleError as err:
        problems = err.args[0] if err.args and isinstance(err.args[0], list) else [err]
        raise InputError(_refusal(model_name, problems)) from None
    return PrivateTraining(dp_optimizer, generator, hooks, sampler_generator)


def secure_mode_available() -> bool:
    """Whether opacus can use a cryptographically secure generator (torchcsprng is installed)."""
    try:
        import torchcsprng  # noqa: F401
    except ImportError:
        return False
    return True


def _noise_source(secure: bool, seeded: torch.Generator):
    """(opacus secure_mode, the noise generator, the sampling generator) for train.privacy.secure."""
    if not secure:
        return False, seeded, None
    if secure_mode_available():
        return True, None, _urandom_generator()  # opacus draws the noise from torchcsprng
    warnings.warn("train.privacy.secure: torchcsprng is not installed, so opacus' secure_mode is off; the DP noise "
                  "and the Poisson sampling are seeded from os.urandom and never stored (this run cannot resume "
                  "bitwise). Install torchcsprng for a cryptographically secure generator.", stacklevel=3)
    return False, _urandom_generator(), _urandom_generator()


def _urandom_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)


def noise_source(cfg: TrainConfig) -> str:
    """What the noise of a run with `cfg` came from, in words (summary.json's dp_noise, the model card)."""
    if not cfg.privacy.secure:
        return "seeded generator (reproducible, stored in checkpoints)"
    if secure_mode_available():
        return "cryptographically secure generator (opacus secure_mode, torchcsprng)"
    return "generator seeded from os.urandom, not stored (torchcsprng not installed)"


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
    return {"dp_epsilon": epsilon, "dp_delta": privacy.delta, "dp_sampling": SAMPLING, "dp_secure": privacy.secure,
            "dp_noise": noise_source(cfg), "dp_target_epsilon": privacy.target_epsilon,
            "dp_noise_multiplier": float(sigma), "dp_max_grad_norm": privacy.max_grad_norm, "dp_sample_rate": rate}
