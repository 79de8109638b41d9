"""``open_dataset``: the one entry point to every dataset layout and its protocols."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .datasets import RecordDataset
from .images import NoImagesFound
from .sources import AgeDataset, get_source
from .synthage import SynthAgeSpec, generate


def default_root(name: str) -> Path:
    """Where a dataset is looked for when no root is given: ``$CILF_DATASETS/<name>`` (default ~/datasets)."""
    return Path(os.environ.get("CILF_DATASETS", Path.home() / "datasets")) / get_source(name).name


def open_dataset(
    name: str,
    root: str | Path | None = None,
    protocol: str | None = None,
    split: str | None = None,
    fold: int = 0,
    transform: Callable | None = None,
) -> AgeDataset | RecordDataset:
    """Open dataset ``name`` from ``root`` in its official layout.

    Without ``split``: the whole dataset (an :class:`AgeDataset`; ``.folds(protocol)`` lists the splits).
    With ``split`` ("train", "val" or "test"): that split of fold ``fold`` of ``protocol``.
    ``name="synthage"`` with no root generates the default SynthAge set offline.
    Raises DatasetNotFound (a FileNotFoundError) naming the path, the layout expected and how to get it.
    """
    source = get_source(name)
    if root is None and source.name == "synthage":
        root = generate(SynthAgeSpec(), progress=False)
    root = Path(root) if root is not None else default_root(name)
    source.check_root(root)
    if protocol is not None and protocol not in source.protocols:
        raise ValueError(f"{source.title} has no protocol {protocol!r}; choose one of {sorted(source.protocols)}")
    ds = AgeDataset(source, root, source.scan(root), protocol, transform)
    if not ds.rows:
        counts = ds.scan.skip_counts()
        why = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6]) or "nothing found"
        eg = f"; e.g. {ds.scan.skipped[0][0]}: {ds.scan.skipped[0][1]}" if ds.scan.skipped else ""
        raise NoImagesFound(
            f"{source.title} at {root}: no usable image found ({len(ds.scan.skipped)} passed over: "
            f"{why}{eg}). Expected layout: {source.layout}"
        )
    return ds if split is None else ds.split(split, fold)
