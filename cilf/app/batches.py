"""Minibatches for training: cached frozen features, cached boundary tokens (fine-tuning the image tower's
last blocks) or images decoded every epoch, sharded by rank."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, DistributedSampler

from cilf.app.augment import Augment, epoch_generator, needs_pixels
from cilf.app.distributed import DistContext
from cilf.app.feature_cache import cached_boundary, cached_features
from cilf.app.features import extract_features
from cilf.data.datasets import RecordDataset, collate_skip


class FeatureBatches:
    """Shuffled minibatches of cached features: yields (ImageFeatures, None, ages) for one epoch."""

    cached = True

    def __init__(self, features, ages: torch.Tensor, batch_size: int, *, device, ctx: DistContext | None = None):
        self.features, self.ages, self.batch_size, self.device = features, ages, batch_size, device
        self.ctx = ctx or DistContext(device=torch.device(device))

    def __len__(self) -> int:
        return math.ceil(len(self.ages) // self.ctx.world_size / self.batch_size)

    def shard(self, perm: torch.Tensor) -> torch.Tensor:
        """This rank's equal share of a permutation (the same on every rank): rank, rank + W, ..."""
        w = self.ctx.world_size
        return perm if w == 1 else perm[: len(perm) - len(perm) % w][self.ctx.rank :: w]

    def epoch(self, generator: torch.Generator):
        perm = self.shard(torch.randperm(len(self.ages), generator=generator))
        for i in range(0, len(perm), self.batch_size):
            idx = perm[i : i + self.batch_size]
            if len(idx) < 2:
                continue
            yield self.features[idx].to(self.device), None, self.ages[idx].to(self.device)


class Batches(FeatureBatches):
    """Minibatches of a dataset: encoded once (``cached``) or images decoded every epoch, then (``augment``,
    images only) flipped and shifted with draws seeded by the epoch (:mod:`cilf.app.augment`)."""

    def __init__(
        self,
        model,
        ds: RecordDataset,
        batch_size: int,
        *,
        device,
        cached: bool,
        desc: str = "encode",
        ctx: DistContext | None = None,
        progress: bool = True,
        augment: Augment | None = None,
    ):
        if augment is not None and augment.active and cached:
            raise ValueError(needs_pixels(ds.name))
        self.ds, self.cached = ds, cached
        self.augment = augment if augment is not None and augment.active else None
        ctx = ctx or DistContext(device=torch.device(device))
        if cached:
            features, ages, self.metas = encode_split(model, ds, device, ctx, progress, desc)
        else:
            features, ages, self.metas = None, ds.ages, [{"path": r["path"]} for r in ds.rows]
        super().__init__(features, ages, batch_size, device=device, ctx=ctx)

    def epoch(self, generator: torch.Generator):
        """(features, images, ages) per step; (None, None, None) where this rank's batch is unusable."""
        if self.cached:
            yield from super().epoch(generator)
            return
        if self.ctx.active:
            sampler = DistributedSampler(
                self.ds,
                self.ctx.world_size,
                self.ctx.rank,
                shuffle=True,
                drop_last=True,
                seed=int(torch.randint(2**31 - 1, (1,), generator=generator)),
            )
            loader = DataLoader(self.ds, batch_size=self.batch_size, sampler=sampler, collate_fn=collate_skip)
        else:
            loader = DataLoader(
                self.ds, batch_size=self.batch_size, shuffle=True, generator=generator, collate_fn=collate_skip
            )
        draws = epoch_generator(generator, self.ctx.rank) if self.augment is not None else None
        for batch in loader:
            if batch is None or len(batch[1]) < 2:  # every image of it unreadable, or a single one left
                yield None, None, None
                continue
            images = batch[0] if self.augment is None else self.augment(batch[0], draws)
            yield None, images.to(self.device), batch[1].to(self.device)


class BoundaryBatches(FeatureBatches):
    """Minibatches of the tokens entering the first trainable image block (``model.clip.boundary``), read from
    the on-disk cache (:func:`cilf.app.feature_cache.cached_boundary`): the frozen part of the tower runs
    once per dataset, the trainable last blocks every step. Yields (BoundaryTokens, None, ages)."""

    cached = True

    def __init__(
        self,
        model,
        ds: RecordDataset,
        batch_size: int,
        *,
        device,
        desc: str = "encode",
        ctx: DistContext | None = None,
        progress: bool = True,
        cache_dir=None,
    ):

        ctx = ctx or DistContext(device=torch.device(device))
        with ctx.main_first():  # rank 0 writes the entry; the other ranks read it
            self.entry = cached_boundary(
                model, ds, cache_dir, device=device, progress=progress and ctx.is_main, desc=desc
            )
        self.ds = ds
        self.metas = [{"path": ds.rows[r]["path"]} for r in self.entry.rows]
        super().__init__(self.entry.features, self.entry.ages, batch_size, device=device, ctx=ctx)


def encode_split(model, ds: RecordDataset, device, ctx: DistContext, progress: bool, desc: str):
    """(features, ages, metas) of a dataset's readable images: kept in memory for one process; under
    torchrun through the on-disk feature cache, written by rank 0 and read by the other ranks."""
    if not ctx.active:
        return extract_features(model, ds, device=device, progress=progress, desc=desc)

    with ctx.main_first():
        cf = cached_features(model, ds, device=device, progress=progress and ctx.is_main, desc=desc)
    return cf.features, cf.ages, [{"path": ds.rows[r]["path"]} for r in cf.rows]
