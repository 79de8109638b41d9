"""``python -m cilf data check``: what a dataset root holds, before any training touches it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .images import BadImageError, load_image
from .open import open_dataset
from .split_warnings import path_key, split_warnings


def check_dataset(
    name: str, root: str | Path | None, protocol: str | None = None, verify: bool = True, progress: bool = True
) -> dict:
    """Counts, age histogram, subjects, protocol fold sizes and every file passed over, with why.

    ``verify`` opens every image (the way training will) so unreadable ones are listed now. ``images``
    counts the readable images the protocol uses, each once however many rows name it; ``warnings``
    (cilf.data.split_warnings) counts subjects shared by train and test (a leak where the protocol is
    subject-exclusive), images in two splits of a fold, images named by several rows or with two ages,
    images no list names and file names found in several folders. ``skipped`` holds what the scan passed
    over (unreadable folders, other extensions, duplicates...) and the unreadable images.
    """
    ds = open_dataset(name, root, protocol)
    skipped = list(ds.scan.skipped)
    folds = ds.folds()
    warn = split_warnings(ds.rows, folds, ds.protocol, subject_exclusive=ds.subject_exclusive)
    used_rows = {i for f in folds for part in (f.train, f.val, f.test) for i in part}
    first: dict[str, int] = {}  # image -> its first row
    used_images: set[str] = set()
    for i, r in enumerate(ds.rows):
        key = path_key(r["path"])
        first.setdefault(key, i)
        if i in used_rows:
            used_images.add(key)
    unreadable = used_unreadable = 0
    if verify:
        for key, i in tqdm(first.items(), desc="open images", unit="img", disable=not progress, leave=False):
            try:
                load_image(ds.rows[i]["path"])
            except BadImageError as e:
                skipped.append((e.path, e.reason))
                unreadable += 1
                used_unreadable += key in used_images
    ages = np.array([r["age"] for r in ds.rows])
    edges = list(range(0, 101, 10)) + [121]
    hist, _ = np.histogram(ages, bins=edges)
    subjects = {str(r["subject"]) for r in ds.rows if str(r["subject"])}
    return {
        "dataset": ds.source.title,
        "root": str(ds.root),
        "images": warn.images_used - used_unreadable,
        "listed_rows": len(ds.rows),
        "distinct_images": len(first),
        "unreadable": unreadable,
        "subjects": len(subjects) or None,
        "age": {"min": float(ages.min()), "max": float(ages.max()), "mean": float(ages.mean())},
        "histogram": {f"{lo}-{hi - 1}": int(n) for lo, hi, n in zip(edges[:-1], edges[1:], hist)},
        "protocol": ds.protocol,
        "protocol_description": ds.source.protocols[ds.protocol],
        "subject_exclusive": ds.subject_exclusive,
        "folds": [
            {
                "name": f.name,
                "train": len(f.train),
                "val": len(f.val),
                "test": len(f.test),
                "listed_but_missing": f.missing,
                "shared_subjects": warn.shared[f.name],
                "images_in_several_splits": warn.in_several_splits[f.name],
            }
            for f in folds
        ],
        "split_warnings": warn.as_dict(),
        "warnings": warn.lines(),
        "notes": ds.scan.notes,
        "skipped": skipped,
        "skip_reasons": dict(Counter(reason.split(" (")[0] for _, reason in skipped)),
    }


def format_check(rep: dict, limit: int = 50) -> str:
    a = rep["age"]
    lines = [
        f"{rep['dataset']} at {rep['root']}",
        f"  images: {rep['images']} readable ones used by protocol {rep['protocol']} "
        f"({rep.get('distinct_images', rep['listed_rows'])} found"
        + (
            f" in {rep['listed_rows']} rows"
            if rep.get("distinct_images", rep["listed_rows"]) != rep["listed_rows"]
            else ""
        )
        + (f", {rep['unreadable']} unreadable" if rep["unreadable"] else "")
        + ")",
        f"  subjects: {rep['subjects'] if rep['subjects'] else 'not given by this layout'}",
        f"  age: {a['min']:g}-{a['max']:g}, mean {a['mean']:.1f}",
        "  age histogram:",
    ]
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
        lines.append(
            f"  skipped {len(rep['skipped'])} file(s): " + ", ".join(f"{n} {r}" for r, n in rep["skip_reasons"].items())
        )
        lines += [f"    {p}: {r}" for p, r in rep["skipped"][:limit]]
        if len(rep["skipped"]) > limit:
            lines.append(f"    ... and {len(rep['skipped']) - limit} more (--json lists all)")
    else:
        lines.append("  skipped: none")
    return "\n".join(lines)
