"""The peers' registry: what a peer method is given (:class:`PeerInputs`, :class:`PeerConfig`), what it is
(:class:`PeerSpec`), and :data:`PEERS` with :func:`register_peer` to add one (``cilf.bench.peers`` registers
the built-in ones)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cilf.app.params import Budget
from cilf.app.schedule import build_optimizer


@dataclass
class PeerConfig(Budget):
    """A trained peer's :class:`~cilf.app.params.Budget` (with the peers' own defaults; the seed and device come
    with :class:`PeerInputs`), the age range and the hidden width of the feature peers' MLP."""

    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 1  # 1: cosine decay from the first step (no warm-up)
    age_min: int = 0
    age_max: int = 100
    hidden: int = 256


@dataclass
class PeerInputs:
    """One fold x seed as a peer sees it (features: the frozen image tower's pooled embeddings v)."""

    x_train: torch.Tensor  # (n x D) training features
    y_train: torch.Tensor  # (n) training ages
    x_test: torch.Tensor  # (m x D) test features
    seed: int = 0
    cfg: PeerConfig = field(default_factory=PeerConfig)
    test_paths: list[str] = field(default_factory=list)  # (m) image files, for peers that read images
    encoder: nn.Module | None = None  # the CILF model whose image tower made the features (zero-shot prompts)
    train_rows: list[dict] = field(default_factory=list)  # (n) the training images' dataset rows (their metadata)
    test_rows: list[dict] = field(default_factory=list)  # (m) the test images' dataset rows


@dataclass(frozen=True)
class PeerSpec:
    """A peer method: ``fit_and_predict(PeerInputs) -> ages (m)``, or ``(ages, extras)`` whose dict
    ``extras`` is kept with the run's scores.

    ``seeded=False``: the method ignores seed and budget (one run per fold, shared by the seeds).
    ``needs_encoder``: its predictions depend on the CILF model config (saved with the run).
    ``available``: None when it can run, else the reason (reported as skipped).
    ``applies``: given the dataset's rows, None when the method applies to it, else the reason (skipped).
    ``key``: what else its saved runs depend on (a version of the method), added to their key.
    ``note``: given the model config (whose CLIP made the features), a caveat printed with its row, else None.
    ``default``: in a benchmark's peers unless others are named (False: only when asked for).
    """

    name: str
    title: str
    fit_and_predict: Callable[[PeerInputs], np.ndarray | tuple[np.ndarray, dict]]
    seeded: bool = True
    needs_encoder: bool = False
    available: Callable[[], str | None] = lambda: None
    applies: Callable[[list[dict]], str | None] = lambda rows: None
    key: dict = field(default_factory=dict, compare=False)
    note: Callable[[object], str | None] = lambda cfg: None
    default: bool = True


PEERS: dict[str, PeerSpec] = {}  # name -> spec, in the order benchmarks list them


def register_peer(
    name: str,
    title: str | None = None,
    *,
    seeded: bool = True,
    needs_encoder: bool = False,
    available: Callable[[], str | None] | None = None,
    applies: Callable[[list[dict]], str | None] | None = None,
    key: dict | None = None,
    note: Callable[[object], str | None] | None = None,
    default: bool = True,
):
    """Decorator adding ``fit_and_predict(PeerInputs) -> ages`` to :data:`PEERS` as peer ``name``.

    >>> @register_peer("train_median", "Training median")
    ... def train_median(inp):
    ...     return np.full(len(inp.x_test), float(inp.y_train.median()))
    """
    if name in PEERS:
        raise ValueError(f"peer {name!r} is already registered ({PEERS[name].title}); pick another name")

    def add(fn: Callable[[PeerInputs], np.ndarray | tuple[np.ndarray, dict]]):
        PEERS[name] = PeerSpec(
            name,
            title or name,
            fn,
            seeded=seeded,
            needs_encoder=needs_encoder,
            available=available or (lambda: None),
            applies=applies or (lambda rows: None),
            key=dict(key or {}),
            note=note or (lambda cfg: None),
            default=default,
        )
        return fn

    return add


def peer_optimizer(net: nn.Module, cfg: PeerConfig, total_steps: int):
    """(AdamW, schedule) of a trained peer: every weight of ``net`` at ``cfg.lr``, through the one optimiser set-up
    (:func:`cilf.app.schedule.build_optimizer`)."""
    groups = [{"params": [p for p in net.parameters() if p.requires_grad], "lr": cfg.lr}]
    return build_optimizer(
        net,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_steps,
        total_steps=total_steps,
        groups=groups,
    )
