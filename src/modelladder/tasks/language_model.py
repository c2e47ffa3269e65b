"""Language-model pretraining objectives on windows of a token stream: causal_lm and masked_lm.

Both take x, a batch of token windows (B, L), from the loop (y is x shifted by one token) and a
LanguageModel (models/transformer.py). Their per-batch outputs are a few numbers per window, never the
(B, L, vocab) logits, so evaluating a long held-out split keeps memory flat. Metrics: perplexity
(exp of the per-token loss) and, for causal_lm, bits per character: the loss in bits per token times
tokens per character of the held-out text, comparable across tokenizers.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modelladder.data.tokenize import MASK_ID, SPECIAL
from modelladder.tasks.base import Task

IGNORE = -100  # cross_entropy's ignore_index: positions without a target


class CausalLM(Task):
    """Next-token prediction: the logits at every position are scored against the following token."""

    target_dtype = torch.long
    monitor = ("loss", "min")  # the default validation metric and its better direction

    def __init__(self, chars_per_token: float = 1.0):
        self.chars_per_token = chars_per_token

    @classmethod
    def from_config(cls, cfg, data) -> CausalLM:
        """`data`: the corpus a `ladder pretrain` run prepared (verbs/pretrain.py PretrainData)."""
        return cls(chars_per_token=data.tokens.chars_per_token)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = model(x)
        losses = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none").view(y.shape)
        return losses.mean(), losses.detach().mean(dim=1)

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()  # the mean loss of each window (all windows have the same length)

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        loss = float(np.mean(scores, dtype=np.float64))
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
                "bits_per_char": loss / math.log(2) / self.chars_per_token}


class MaskedLM(Task):
    """BERT's masked-token prediction: `rate` of the tokens are chosen; of those, 80% become [MASK], 10% a
    random token and 10% stay, and the model predicts the original tokens at the chosen positions.

    Training draws the choices from torch's default generator, which the training loop seeds and saves in
    every checkpoint (as it does for dropout), so a resumed run masks exactly as the uninterrupted one.
    Evaluation masks with a generator seeded by `seed` for every batch, so held-out scores are comparable
    from one evaluation to the next.
    """

    target_dtype = torch.long
    monitor = ("loss", "min")

    def __init__(self, mask_id: int, first_token: int, vocab_size: int, rate: float = 0.15, seed: int = 0):
        self.mask_id, self.rate, self.seed = mask_id, rate, seed
        self.random_tokens = (first_token, vocab_size)  # random replacements: real tokens, not special ones

    @classmethod
    def from_config(cls, cfg, data) -> MaskedLM:
        """`data`: the corpus a `ladder pretrain` run prepared (verbs/pretrain.py PretrainData)."""
        return cls(mask_id=MASK_ID, first_token=len(SPECIAL), vocab_size=data.encoder.vocab_size, seed=cfg.seed)

    def mask(self, x: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(inputs, targets): x with the chosen tokens replaced, and x at the chosen positions (IGNORE elsewhere)."""
        draws = torch.rand((3, *x.shape), generator=generator, device=x.device)
        chosen = draws[0] < self.rate
        to_mask = chosen & (draws[1] < 0.8)
        to_random = chosen & ~to_mask & (draws[2] < 0.5)
        random = torch.randint(*self.random_tokens, x.shape, generator=generator, device=x.device)
        inputs = torch.where(to_mask, self.mask_id, torch.where(to_random, random, x))
        return inputs, torch.where(chosen, x, IGNORE)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        generator = None
        if not model.training:
            generator = torch.Generator(device=x.device).manual_seed(self.seed)
        inputs, targets = self.mask(x, generator)
        chosen = targets != IGNORE
        hidden = model.backbone(inputs)[chosen]  # only the chosen positions need the vocabulary projection
        logits = model.logits(hidden).float()
        losses = F.cross_entropy(logits, targets[chosen], reduction="none")
        loss = losses.sum() / chosen.sum().clamp(min=1)
        # per window: summed loss, chosen tokens, correct predictions
        window = chosen.nonzero()[:, 0]
        sums = torch.zeros(len(x), 3, device=x.device)
        sums.index_add_(0, window, torch.stack([losses.detach(), torch.ones_like(losses),
                                                (logits.argmax(dim=1) == targets[chosen]).float()], dim=1))
        return loss, sums

    def scores(self, outputs: Tensor) -> Tensor:
        return outputs.float()

    def metrics(self, y_true, scores: np.ndarray) -> dict[str, float]:
        loss_sum, chosen, correct = np.asarray(scores, np.float64).sum(axis=0).tolist()
        loss = loss_sum / max(chosen, 1.0)
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "accuracy": correct / max(chosen, 1.0)}
