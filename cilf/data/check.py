"""``python -m cilf data check``: what a dataset root holds, before any training touches it."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .images import BadImageError, load_image
from .open import open_dataset
from .split_warnings import split_warnings, unlisted_rows


def check_dataset(name: str, root: str | Path | None, protocol: str | None = None, verify: bool = True,
                  progress: bool = True) -> dict:
    """Counts, age histogram, subjects, protocol fold sizes and every file passed over, with why.

    ``verify`` opens every image (the way training will) so unreadable ones are listed now. ``images``
    counts the readable images the protocol uses; ``warnings`` (cilf.data.split_warnings) counts
    subjects shared by train and test, images no list names and file names found in several folders.
    """
    ds = open_dataset(name, root, protocol)
    skipped = list(ds.scan.skipped)
    unreadable = 0
    folds = ds.folds()
    warn = split_warnings(ds.rows, folds, ds.protocol)
    unused = set(unlisted_rows(ds.rows, folds))
    used_unreadable = 0
    if verify:
        for i, r in enumerate(tqdm(ds.rows, desc="open images", unit="img", disable=not progress, leave=False)):
            try:
                load_image(r["path"])
            except BadImageError as e:
                skipped.append((e.path, e.reason))
                unreadable += 1
                used_unreadable += i not in unused
    ages = np.array([r["age"] for r in ds.rows])
    edges = list(range(0, 101, 10)) + [121]
    hist, _ = np.histogram(ages, bins=edges)
    subjects = {str(r["subject"]) for r in ds.rows if str(r["subject"])}
    return {
        "dataset": ds.source.title, "root": str(ds.root), "images": warn.images_used - used_unreadable,
        "listed_rows": len(ds.rows), "unreadable": unreadable, "subjects": len(subjects) or None,
        "age": {"min": float(ages.min()), "max": float(ages.max()), "mean": float(ages.mean())},
        "histogram": {f"{lo}-{hi - 1}": int(n) for lo, hi, n in zip(edges[:-1], edges[1:], hist)},
        "protocol": ds.protocol, "protocol_description": ds.source.protocols[ds.protocol],
        "folds": [{"name": f.name, "train": len(f.train), "val": len(f.val), "test": len(f.test),
                   "listed_but_missing": f.missing, "shared_subjects": warn.shared[f.name]} for f in folds],
        "split_warnings": warn.as_dict(), "warnings": warn.lines(),
        "notes": ds.scan.notes, "skipped": skipped,
        "skip_reasons": dict(Counter(reason.split(" (")[0] for _, reason in skipped)),
    }


def format_check(rep: dict, limit: int = 50) -> str:
    a = rep["age"]
    lines = [f"{rep['dataset']} at {rep['root']}",
             f"  images: {rep['images']} readable ones used by protocol {rep['protocol']} ({rep['listed_rows']} found"
             + (f", {rep['unreadable']} unreadable" if rep["unreadable"] else "") + ")",
             f"  subjects: {rep['subjects'] if rep['subjects'] else 'not given by this layout'}",
             f"  age: {a['min']:g}-{a['max']:g}, mean {a['mean']:.1f}", "  age histogram:"]
    top = max(rep["histogram"].values()) or 1
    lines += [f"    {k:>7}  {n:6d} {'#' * round(30 * n / top)}" for k, n in rep["histogram"].items()]
    lines.append(f"  protocol {rep['protocol']}: {rep['protocol_description']}")
    folds = rep["folds"]
    for f in folds[:10]:
        miss = f", {f['listed_but_missing']} listed but not on disk" if f["listed_but_missing"] else ""
        lines.append(f"    {f['name']}: train {f['train']}, val {f['val']}, test {f['test']}{miss}")
    if len(folds) > 10:
        lines.append(f"    ... {len(folds)} folds in all")
    lines += [f"  warning: {w}" for w in rep.get("warnings", [])]
    lines += [f"  note: {n}" for n in rep["notes"]]
    if rep["skipped"]:
        lines.append(f"  skipped {len(rep['skipped'])} file(s): " +
                     ", ".join(f"{n} {r}" for r, n in rep["skip_reasons"].items()))
        lines += [f"    {p}: {r}" for p, r in rep["skipped"][:limit]]
        if len(rep["skipped"]) > limit:
            lines.append(f"    ... and {len(rep['skipped']) - limit} more (--json lists all)")
    else:
        lines.append("  skipped: none")
    return "\n".join(lines)
