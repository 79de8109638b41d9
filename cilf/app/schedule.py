"""What every trainer shares: the optimiser and its schedule, and the resume bookkeeping.

- ``build_optimizer``: AdamW over the trainable weights (:func:`param_groups`) with :func:`warmup_cosine`;
- ``warmup_cosine``: linear warm-up, then cosine decay to zero (one LR per optimiser step).
- ``session_epochs``: which epochs this session runs (``--stop-after`` ends it early).
- ``check_resume_settings``: a resumed run keeps the settings it was started with.
- ``NonFiniteLoss``: what both raise when the loss becomes NaN or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch


def warmup_cosine(opt: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Scale the LR by ``min(1, (s+1)/warmup) * (1 + cos(pi * min(s, total)/total)) / 2`` at step ``s``."""

    def factor(s: int) -> float:
        return min(1.0, (s + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def param_groups(model: torch.nn.Module, lr: float, backbone_lr_scale: float) -> list[dict]:
    """AdamW groups of the trainable weights: the heads at ``lr``, trainable CLIP weights (fine-tuned blocks)
    at ``lr * backbone_lr_scale``; a group without weights is left out."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    head = [p for n, p in named if not n.startswith("clip.model.")]
    backbone = [p for n, p in named if n.startswith("clip.model.")]
    return [g for g in ({"params": head, "lr": lr}, {"params": backbone, "lr": lr * backbone_lr_scale}) if g["params"]]


def build_optimizer(
    model: torch.nn.Module,
    *,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    total_steps: int,
    backbone_lr_scale: float = 0.2,
    groups: list[dict] | None = None,
):
    """(AdamW, warm-up cosine schedule) over ``model``'s trainable weights, the one set-up every CILF trainer uses.

    ``groups``: parameter groups to use instead of :func:`param_groups` (CLIP pretraining's decay groups)."""
    opt = torch.optim.AdamW(
        groups if groups is not None else param_groups(model, lr, backbone_lr_scale), lr=lr, weight_decay=weight_decay
    )
    return opt, warmup_cosine(opt, warmup_steps, max(1, total_steps))


def session_epochs(start: int, epochs: int, stop_after: int | None) -> range:
    """The 0-based epochs this session runs: from ``start`` to ``epochs``, at most ``stop_after`` of them.

    The run is complete when the range's ``stop == epochs``; otherwise it continues with resume.
    """
    return range(start, epochs if stop_after is None else min(epochs, start + stop_after))


class NonFiniteLoss(RuntimeError):
    """The training loss (or the weights) became NaN or infinite; the message names the epoch and step."""


class ResumeMismatch(ValueError):
    """A resume asked for settings other than those the run was started with."""


def check_resume_settings(
    source: str | Path, saved: dict, now: dict, fields: Iterable[str], same: dict[str, Any] | None = None
) -> None:
    """Refuse (one line naming the field) when a field in ``fields`` differs between ``saved`` and ``now``.

    ``saved``: the settings stored when the run started (a field missing there, from an older
    version, is not checked); ``same``: per-field comparison functions (default ``==``).
    """
    same = same or {}
    for f in fields:
        if f not in saved:
            continue
        equal = same.get(f, lambda a, b: a == b)
        if not equal(saved[f], now[f]):
            raise ResumeMismatch(
                f"{source}: the run was started with {f}={saved[f]!r}, not {f}={now[f]!r}; "
                f"resume with the same {f}, or start a new run with another --out"
            )
