"""Batched inference over encoded images: the one loop that runs the model on features in slices."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from cilf.model.cilf_model import CILF, CILFOutput
from cilf.model.clip import ImageFeatures


def forward_batches(
    model: CILF,
    features: ImageFeatures,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    correct: bool = True,
) -> Iterator[tuple[ImageFeatures, CILFOutput]]:
    """(features slice on ``device``, model output) per slice of at most ``batch_size`` of the n images, in
    order, in eval mode without gradients; ``correct=False``: no correction (age = y0)."""
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(features), batch_size):
            f = features[i : i + batch_size].to(device)
            yield f, model(features=f, correct=correct)


@torch.no_grad()
def zero_shot_ages(model: CILF, features: ImageFeatures) -> torch.Tensor:
    """CLIP prompts only: expectation of the ages under softmax(logit_scale * cos(v, T)). -> (B)"""
    return model.clip.zero_shot_ages(features.pooled)


def predict_features(
    model: CILF,
    features: ImageFeatures,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    correct: bool = True,
) -> dict[str, np.ndarray]:
    """Per-image arrays (n): age (final), y0, steps, accepted, spread (at x*), error0 and spread0 (E's
    predicted error and spread at y0), zero_shot. ``correct=False``: no correction (age = y0)."""
    cols: dict[str, list] = {
        k: [] for k in ("age", "y0", "steps", "accepted", "spread", "error0", "spread0", "zero_shot")
    }
    for f, out in forward_batches(model, features, batch_size=batch_size, device=device, correct=correct):
        cols["age"].append(out.age.cpu())
        cols["y0"].append(out.y0.cpu())
        c = out.correction
        n = out.y0.shape[0]
        cols["steps"].append(c.steps.cpu() if c is not None else torch.zeros(n, dtype=torch.long))
        cols["accepted"].append(c.accepted.cpu() if c is not None else torch.ones(n, dtype=torch.bool))
        for name in ("spread", "error0", "spread0"):
            cols[name].append(getattr(c, name).cpu() if c is not None else torch.zeros(n))
        cols["zero_shot"].append(zero_shot_ages(model, f).cpu())
    return {k: torch.cat(v).numpy() for k, v in cols.items()}
