"""The train, val and test splits of one training run, from its settings: SynthAge, a manifest, or a dataset's
protocol fold (:mod:`cilf.data.splits`)."""

from __future__ import annotations

from pathlib import Path

from cilf.app.params import TrainConfig
from cilf.data.datasets import ManifestDataset, ManifestError, RecordDataset, SynthAge, read_manifest
from cilf.data.splits import open_splits
from cilf.io import NAME_MAX, overlong_part
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
        check_manifest_paths(tcfg.data)
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


def data_warnings(splits: dict[str, RecordDataset]) -> list[str]:
    """The leaks a manifest's splits carry (``ManifestDataset.warnings()``: an image in two splits or with two
    ages, a repeated row, a subject in two splits where that matters), one line each with its count; [] else.
    Every split of one manifest holds the same report (it is made over the whole manifest), so it is read once."""
    seen: set[str] = set()
    out: list[str] = []
    for ds in splits.values():
        if isinstance(ds, ManifestDataset) and str(ds.csv_path) not in seen:
            seen.add(str(ds.csv_path))
            out += ds.warnings()
    return out


def check_manifest_paths(csv_path: str | Path) -> None:
    """ManifestError naming the manifest and line of the first image path with a file or folder name over
    NAME_MAX (255) bytes: no such file can exist, and looking it up would fail with ENAMETOOLONG mid-run."""
    for line, row in enumerate(read_manifest(csv_path), start=2):
        long = overlong_part(row["path"])
        if long:
            shown, n = long
            raise ManifestError(
                f"{csv_path}, line {line}: the path names {shown!r}, {n} bytes, more than the {NAME_MAX} a "
                f"file system allows for one name (no such file can exist); fix the path in the manifest"
            )
