"""Age head (docs/method.md, section 5): l_{b,k} = cos(f_b, T'_{b,k}) / tau_h, p = softmax(l), y0 = sum_k p_k a_k.

With the similarity prior, the paper's global scores S enter the logits: l = alpha * prior + g * cos(f, T') / tau_h,
where prior = tau * s * log S (softmax(prior) is zero-shot CLIP's class distribution, s CLIP's logit scale);
the learned weights start at alpha = 1 and g = 0, so an untrained head gives zero-shot CLIP's estimate.
g is stored divided by a gain rate (``CILFConfig.head_gain_rate``): Adam moves a parameter by about lr per step
whatever its scale, so a gain starting at 0 would need ~500 steps to reach 1 and the head would learn slowly;
stored this way it moves that many times faster. How the default was chosen: docs/method.md, section 5.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def age_index(y: torch.Tensor, age_min: int, num_classes: int) -> torch.Tensor:
    """Ages y (B, years) -> index (B, long) of the nearest age class a_k, clamped to 0..num_classes-1."""
    return (y.round() - age_min).clamp(0, num_classes - 1).long()


class AgeHead(nn.Module):
    def __init__(self, head_tau: float = 0.03, similarity_prior: bool = False, gain_rate: float = 10.0):
        super().__init__()
        self.gain_rate = float(gain_rate)  # g = gain_rate * head_gain (see the module docstring)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / head_tau)))
        # alpha, g: the weights of the prior and of the head's own logits; 1 and 0 at the start (ReZero-style)
        self.prior_weight = nn.Parameter(torch.ones(())) if similarity_prior else None
        self.head_gain = nn.Parameter(torch.zeros(())) if similarity_prior else None

    def forward(self, fused: torch.Tensor, text: torch.Tensor, ages: torch.Tensor, prior: torch.Tensor | None = None):
        """f (B x D), T' (B x K x D) or (K x D), ages (K), prior logits (B x K; needed with the similarity
        prior) -> logits (B x K), p (B x K), y0 (B)."""
        f = F.normalize(fused, dim=-1)
        t = F.normalize(text, dim=-1)
        cos = torch.einsum("bd,bkd->bk", f, t) if t.ndim == 3 else f @ t.t()
        logits = cos * self.logit_scale.exp().clamp(max=1000.0)
        if self.head_gain is not None:
            if prior is None:
                raise ValueError("this age head was built with the similarity prior: pass the prior logits")
            logits = self.prior_weight * prior + (self.gain_rate * self.head_gain) * logits
        probs = logits.softmax(dim=-1)
        return logits, probs, probs @ ages.to(probs.dtype)
