"""``train --dataset`` / ``eval --dataset``: train, val and test splits of one fold of a dataset's protocol.

The dataset is opened with :func:`cilf.data.open.open_dataset` (its official layout, or a tree that
``cilf align`` wrote from it: the same relative paths, as ``.jpg``). Train and test are the fold's.
Validation is the fold's own when the protocol publishes one (CORAL's lists, APPA-REAL); otherwise it
is carved from the TRAIN split: a seeded fraction of the training subjects (of the training images
where the layout gives no subjects), so train and val share no subject and nothing is chosen on test.
Also here: the dataset's own metrics (Adience group accuracy, APPA-REAL epsilon-error) for any
predictions, and the label every number carries ("this run, <dataset> <protocol>[ fold K]").
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cilf.data.datasets import RecordDataset
from cilf.data.open import open_dataset
from cilf.data.protocols import Fold, holdout
from cilf.data.split_warnings import split_warnings
from cilf.data.synthage import SynthAgeSpec, generate
from cilf.metrics import age_group, epsilon_error, group_accuracy

VAL_RULE = "carved from train: {pct:g}% of the training subjects (images if none), seed {seed}, subject-disjoint"


@dataclass
class DatasetSplits:
    """The three splits of one fold, the label of their numbers and what was found on the way (``info``)."""

    splits: dict[str, RecordDataset]
    label: str
    info: dict = field(default_factory=dict)

    def warning_lines(self) -> list[str]:
        return list(self.info.get("warnings", []))


def split_label(title: str, protocol: str, fold: int, n_folds: int) -> str:
    """Where the numbers come from: "this run, <dataset> <protocol>" (+ " fold K" when it has several)."""
    return f"this run, {title} {protocol}" + (f" fold {fold}" if n_folds > 1 else "")


def carve_val(rows: list[dict], train: list[int], frac: float, seed: int) -> tuple[list[int], list[int]]:
    """Split training row indices into (train, val): ``frac`` of the training subjects, seeded, subject-disjoint.

    Rows without subjects are split image by image. Needs two or more subjects (or images).
    """
    sub = [rows[i] for i in train]
    try:
        (part,) = holdout(sub, test_frac=frac, seed=seed, by_subject=True, name="val")
    except ValueError:
        raise ValueError(
            f"cannot carve a validation split from a training split of {len(train)} image(s): "
            f"it needs two or more subjects"
        ) from None
    return [train[i] for i in part.train], [train[i] for i in part.test]


def _fold(ds, fold: int) -> tuple[Fold, int]:
    """Fold number ``fold`` of the dataset's protocol, looked up by its name (fold K is "foldK" where the folds
    are numbered; :meth:`cilf.data.sources.base.AgeDataset.fold`), and how many folds the protocol has."""
    try:
        return ds.fold(fold), len(ds.folds())
    except ValueError as e:
        raise ValueError(f"{e}; --fold {fold} asked for") from None


def open_splits(
    dataset: str,
    root: str | Path | None,
    protocol: str | None = None,
    fold: int = 0,
    val_frac: float = 0.1,
    seed: int = 0,
    transform: Callable | None = None,
    n_images: int | None = None,
) -> DatasetSplits:
    """Train/val/test datasets of fold ``fold`` of ``protocol`` (default: the dataset's own), with their label.

    ``info`` holds the dataset, root, protocol, fold, where val came from, the images used per split
    and the warnings of :mod:`cilf.data.split_warnings` for this fold. ``n_images``: SynthAge's size
    when ``dataset`` is synthage and no root is given.
    """
    if root is None and dataset.strip().lower() == "synthage" and n_images is not None:
        root = generate(SynthAgeSpec(n_images=n_images), progress=False)
    ds = open_dataset(dataset, root, protocol, transform=transform)
    f, n_folds = _fold(ds, fold)
    if f.val:
        train, val, val_rule = f.train, f.val, f"published with protocol {ds.protocol}"
    else:
        train, val = carve_val(ds.rows, f.train, val_frac, seed)
        val_rule = VAL_RULE.format(pct=100 * val_frac, seed=seed)
    label = split_label(ds.source.title, ds.protocol, fold, n_folds)
    name = f"{ds.source.title} {ds.protocol} {f.name}"
    splits = {s: ds.subset(idx, f"{name} {s}") for s, idx in (("train", train), ("val", val), ("test", f.test))}
    warn = split_warnings(ds.rows, [f], ds.protocol, subject_exclusive=ds.subject_exclusive)
    info = {
        "dataset": ds.source.name,
        "title": ds.source.title,
        "root": str(ds.root),
        "protocol": ds.protocol,
        "protocol_description": ds.source.protocols[ds.protocol],
        "fold": fold,
        "fold_name": f.name,
        "folds_in_protocol": n_folds,
        "val": val_rule,
        "images": {s: len(d) for s, d in splits.items()},
        "listed_but_missing": f.missing,
        "skipped_by_layout": len(ds.scan.skipped),
        "split_warnings": warn.as_dict(),
        "warnings": warn.lines(),
    }
    return DatasetSplits(splits, label, info)


def data_summary(d: DatasetSplits) -> str:
    """One line: the images each split uses (images no list names are not among them) and where val came from."""
    i, n = d.info, d.info["images"]
    extra = f"; {i['listed_but_missing']} file(s) the lists name are not on disk" if i["listed_but_missing"] else ""
    return f"{d.label}: train {n['train']}, val {n['val']}, test {n['test']} images used (val {i['val']}){extra}"


def print_data_notes(label: str, info: dict) -> None:
    """On stderr (also with --quiet): :func:`data_summary` and every warning of ``info``."""
    print(data_summary(DatasetSplits({}, label, info)), file=sys.stderr)
    for w in info.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def dataset_metrics(pred, rows: list[dict]) -> dict:
    """The dataset's own metrics for ages ``pred`` (m) of ``rows`` (m dicts, the test rows or their metas):
    Adience exact and 1-off group accuracy (rows with ``adience_group``), APPA-REAL epsilon-error (rows with
    ``apparent_mean`` and ``apparent_std``). Empty for other datasets."""
    pred = np.asarray(pred, dtype=np.float64)
    out: dict[str, float] = {}
    if rows and "adience_group" in rows[0]:
        out["group_exact"], out["group_1off"] = group_accuracy(
            [r["adience_group"] for r in rows], [age_group(p) for p in pred]
        )
    if rows and "apparent_mean" in rows[0]:
        out["epsilon_error"] = epsilon_error(
            pred, [r["apparent_mean"] for r in rows], [max(r["apparent_std"], 1e-3) for r in rows]
        )
    return out


def metric_text(m: dict) -> str:
    """The dataset metrics of :func:`dataset_metrics` as a short suffix ("" when there are none)."""
    text = ""
    if "group_exact" in m:
        text += f"   groups exact {m['group_exact']:.1f}% 1-off {m['group_1off']:.1f}%"
    if "epsilon_error" in m:
        text += f"   eps-error {m['epsilon_error']:.3f}"
    return text
