"""The train, val and test splits of one training run, from its settings: SynthAge, a manifest, or a dataset's
protocol fold (:mod:`cilf.data.splits`)."""

from __future__ import annotations

from pathlib import Path

from cilf.app.params import TrainConfig
from cilf.data.datasets import ManifestDataset, RecordDataset, SynthAge
from cilf.data.splits import open_splits
from cilf.labels import SYNTHAGE


def load_splits(tcfg: TrainConfig, transform) -> tuple[dict[str, RecordDataset], str, dict]:
    """train/val/test datasets, the label saying where the numbers come from and, for ``tcfg.dataset``,
    what :func:`cilf.data.splits.open_splits` found (fold, val rule, warnings; else {})."""
    if tcfg.dataset:
        d = open_splits(
            tcfg.dataset,
            tcfg.root,
            tcfg.protocol,
            tcfg.fold,
            tcfg.val_frac,
            tcfg.data_seed,
            transform,
            n_images=tcfg.n_images,
        )
        return d.splits, d.label, d.info
    if tcfg.data:
        splits = {s: ManifestDataset(tcfg.data, split=s, transform=transform) for s in ("train", "val", "test")}
        empty = [s for s, d in splits.items() if len(d) == 0]
        if empty:
            raise ValueError(f"{tcfg.data}: no rows in split(s) {empty}; the split column needs train, val and test")
        return splits, f"this run, {Path(tcfg.data).name}", {}
    splits = {
        s: SynthAge(split=s, n_images=tcfg.n_images, seed=tcfg.data_seed, transform=transform, progress=tcfg.progress)
        for s in ("train", "val", "test")
    }
    return splits, f"this run, {SYNTHAGE}", {}
