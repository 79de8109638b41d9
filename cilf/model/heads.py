"""Age head (docs/method.md, section 5): l_{b,k} = cos(f_b, T'_{b,k}) / tau_h, p = softmax(l), y0 = sum_k p_k a_k."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def age_index(y: torch.Tensor, age_min: int, num_classes: int) -> torch.Tensor:
    """Ages y (B, years) -> index (B, long) of the nearest age class a_k, clamped to 0..num_classes-1."""
    return (y.round() - age_min).clamp(0, num_classes - 1).long()


class AgeHead(nn.Module):
    def __init__(self, head_tau: float = 0.03):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / head_tau)))

    def forward(self, fused: torch.Tensor, text: torch.Tensor, ages: torch.Tensor):
        """f (B x D), T' (B x K x D) or (K x D), ages (K) -> logits (B x K), p (B x K), y0 (B)."""
        f = F.normalize(fused, dim=-1)
        t = F.normalize(text, dim=-1)
        cos = torch.einsum("bd,bkd->bk", f, t) if t.ndim == 3 else f @ t.t()
        logits = cos * self.logit_scale.exp().clamp(max=1000.0)
        probs = logits.softmax(dim=-1)
        return logits, probs, probs @ ages.to(probs.dtype)
