"""Integrated Gradients and saliency through captum. Integrated Gradients explains the softmax probability
of the explained class; saliency, |d logit / d input|, its logit (as Simonyan et al.), since a confident
softmax has almost no gradient left.

Images and table rows are attributed feature by feature. Text networks take token ids, which have no
gradient: Integrated Gradients runs on the output of the token embedding layer (LayerIntegratedGradients)
from a baseline where every token but the special ones ([CLS], [SEP]) is the padding token, and a
token's score is its attribution summed over the embedding dimensions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

IG_STEPS = (64, 256, 1024)  # tried in turn until the completeness gap is small: a confident network's
GAP = 0.01  # probability can jump within a few percent of the path, which 64 steps may step over
BATCH = 64  # interpolated inputs per forward pass


def _forward(model: nn.Module):
    def probabilities(x):
        return model(x).softmax(-1)

    return probabilities


def tensor_attribution(model: nn.Module, method: str, x: np.ndarray, baseline: np.ndarray,
                       target: int) -> tuple[np.ndarray, dict]:
    """Attributions shaped like `x` (one input's features) and details (IG: the completeness gap,
    sum of attributions minus (f(x) - f(baseline)))."""
    from captum.attr import IntegratedGradients, Saliency

    device = next(model.parameters()).device
    inputs = torch.as_tensor(x[None], dtype=torch.float32, device=device)
    if method == "saliency":
        attr = Saliency(model).attribute(inputs.requires_grad_(), target=target)
        return attr[0].detach().cpu().numpy(), {}
    base = torch.as_tensor(baseline[None], dtype=torch.float32, device=device)
    attr, details = _integrate(IntegratedGradients(_forward(model)), inputs, base, target)
    return attr[0].detach().cpu().numpy(), details


def _integrate(method, inputs, baselines, target: int):
    """Integrated Gradients with more steps until the completeness gap, |sum of attributions -
    (f(x) - f(baseline))|, is below GAP; the attributions and {completeness_gap, steps}."""
    for steps in IG_STEPS:
        attr, gap = method.attribute(inputs, baselines=baselines, target=target, n_steps=steps,
                                     internal_batch_size=BATCH, return_convergence_delta=True)
        gap = float(gap.abs().max())
        if gap < GAP:
            break
    return attr, {"completeness_gap": round(gap, 6), "steps": steps}




def token_attribution(model: nn.Module, encoder, text: str, target: int) -> tuple[dict, dict]:
    """Tokens of `text` as the run's tokenizer cuts it ({'tokens', 'offsets', 'special', 'scores'}) and
    details (the completeness gap)."""
    from captum.attr import LayerIntegratedGradients

    encoding = encoder.tokenizer.encode(text)
    device = next(model.parameters()).device
    ids = torch.tensor([encoding.ids], dtype=torch.long, device=device)
    special = torch.tensor([encoding.special_tokens_mask], dtype=torch.bool, device=device)
    baseline = torch.where(special, ids, torch.full_like(ids, encoder.pad_id))

    def probabilities(batch_ids):
        return model((batch_ids, torch.ones_like(batch_ids, dtype=torch.bool))).softmax(-1)

    attr, details = _integrate(LayerIntegratedGradients(probabilities, model.input_embeddings()), ids, baseline, target)
    tokens = {"tokens": list(encoding.tokens), "offsets": [tuple(o) for o in encoding.offsets],
              "special": [bool(s) for s in encoding.special_tokens_mask],
              "scores": attr[0].sum(-1).detach().cpu().numpy().astype(np.float64)}
    return tokens, details
