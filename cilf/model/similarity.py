"""Pixel-text similarity (docs/method.md, section 2).

Global scores ``S = softmax(cos(v, T) / tau)`` (the paper's
``S_i = exp(sim(T_i, I)/tau) / sum_j exp(sim(T_j, I)/tau)``) and dense score maps
``M = cos(P, T)`` reshaped to B x K x H x W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of a (... x D) with b (K x D) -> ... x K."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


def global_scores(pooled: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """v (B x D), T (K x D) -> S (B x K), rows sum to 1."""
    return torch.softmax(cosine(pooled, text) / tau, dim=-1)


def global_log_scores(pooled: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """v (B x D), T (K x D) -> log S (B x K), computed stably (log-softmax)."""
    return torch.log_softmax(cosine(pooled, text) / tau, dim=-1)


def dense_score_maps(tokens: torch.Tensor, text: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """P (B x N x D), T (K x D) -> M (B x K x H x W) of cosine similarities, N = H * W."""
    b, n, _ = tokens.shape
    h, w = grid
    if n != h * w:
        raise ValueError(f"{n} tokens do not fill a {h} x {w} grid")
    return cosine(tokens, text).transpose(1, 2).reshape(b, -1, h, w)
