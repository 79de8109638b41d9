"""Losses (docs/method.md, sections 5, 6 and 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_label_distribution(y: torch.Tensor, ages: torch.Tensor, sigma: float) -> torch.Tensor:
    """True ages y (B) -> discretised Gaussian over the K classes (B x K), rows sum to 1."""
    d = (ages.to(y.dtype).unsqueeze(0) - y.unsqueeze(1)) / sigma
    return torch.softmax(-0.5 * d * d, dim=-1)


def age_loss(
    logits: torch.Tensor,
    y0: torch.Tensor,
    y: torch.Tensor,
    ages: torch.Tensor,
    sigma: float = 2.0,
    l1_weight: float = 0.1,
) -> torch.Tensor:
    """KL(q_y || softmax(logits)) + lambda * |y0 - y|; logits B x K, y0 and y (B) -> scalar."""
    q = gaussian_label_distribution(y, ages, sigma)
    kl = F.kl_div(F.log_softmax(logits, dim=-1), q, reduction="batchmean")
    return kl + l1_weight * (y0 - y).abs().mean()


def contrastive_loss(
    image: torch.Tensor, text: torch.Tensor, y: torch.Tensor, logit_scale: torch.Tensor, delta: float = 2.0
) -> torch.Tensor:
    """Symmetric InfoNCE between image (B x D) and matching text (B x D) embeddings.

    Pairs (i, j) whose ages differ by at most ``delta`` years count as positives: the targets
    of each row are uniform over them, so same-age samples in a batch are not pushed apart.
    """
    img = F.normalize(image, dim=-1)
    txt = F.normalize(text, dim=-1)
    logits = logit_scale.exp().clamp(max=100.0) * img @ txt.t()
    pos = ((y.unsqueeze(0) - y.unsqueeze(1)).abs() <= delta).to(logits.dtype)
    targets = pos / pos.sum(dim=1, keepdim=True)
    loss_i = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(targets * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i + loss_t)
