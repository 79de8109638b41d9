"""What a protocol's split lists do to the files on disk, counted: subjects shared by train and test,
images no list names, file names that occur in more than one folder, and leaks (:func:`leakage_report`):
one image in two splits, one image with two different ages, a subject on both sides of a split that
promises none.

Published lists name files, not paths (``cilf.data.protocols.FileIndex`` matches them by name in any
folder), and some put the same subject in train and test (MORPH-II setting B: its subsets S1, S2
and S3 share about 2,200 subjects pairwise). Nothing here changes a split; it says what it holds.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .protocols import Fold


def shared_subjects(rows: list[dict], fold: Fold) -> int:
    """How many subjects have images in both the train and the test split of ``fold`` (0 without subjects)."""

    def subjects(idx: list[int]) -> set[str]:
        return {str(rows[i].get("subject", "")) for i in idx} - {""}

    return len(subjects(fold.train) & subjects(fold.test))


def unlisted_rows(rows: list[dict], folds: list[Fold]) -> list[int]:
    """Indices of the rows (images found on disk) that no split of any of ``folds`` uses."""
    used = {i for f in folds for part in (f.train, f.val, f.test) for i in part}
    return [i for i in range(len(rows)) if i not in used]


@functools.lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def path_key(path: str | Path) -> str:
    """The identity of an image path: its folder with symbolic links resolved, plus its name ("a/./b.jpg",
    "a/b.jpg" and "link-to-a/b.jpg" are one image)."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return os.path.normcase(os.path.join(_real_folder(folder), name))


def duplicate_names(rows: list[dict]) -> dict[str, list[int]]:
    """File names (case-insensitive) carried by rows of more than one path (one image listed twice is not a
    duplicate name: :func:`leakage_report` counts it): {NAME: [row indices]}."""
    by_name: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_name.setdefault(Path(r["path"]).name.upper(), []).append(i)
    return {n: idx for n, idx in by_name.items() if len(idx) > 1 and len({path_key(rows[i]["path"]) for i in idx}) > 1}


def leakage_report(
    rows_by_split: Mapping[str, list[dict]], subject_exclusive: bool | None = None, examples: int = 5
) -> dict:
    """Leaks between splits, counted. ``rows_by_split``: {split name: rows (dicts with ``path``, ``age`` and
    optionally ``subject``)}, e.g. {"train": [...], "val": [...], "test": [...]}; ``subject_exclusive``:
    whether the protocol promises that no subject is in two splits (None: unknown).

    Returns a dict (JSON-ready):
    ``images_in_several_splits``: images (one path, symbolic links resolved) found in two or more splits;
    ``split_pairs``: {"train+test": images in both, ...};
    ``repeated_rows``: extra rows naming an image already listed in the same split;
    ``age_conflicts``: images labelled with two or more different ages (anywhere);
    ``subjects_in_several_splits``: subjects with images in two or more splits; ``subject_pairs`` likewise per
    pair; ``subject_exclusive``: as given; ``subject_leak``: subjects_in_several_splits when the protocol
    promises exclusivity, else 0; ``examples``: a few of each {kind: [...]}.
    """
    splits = {name: list(rows) for name, rows in rows_by_split.items()}
    where: dict[str, dict[str, int]] = {}  # image -> {split: rows}
    shown: dict[str, str] = {}
    ages: dict[str, set[float]] = {}
    subjects: dict[str, set[str]] = {}
    for name, rows in splits.items():
        for r in rows:
            key = path_key(r["path"])
            shown.setdefault(key, str(r["path"]))
            per = where.setdefault(key, {})
            per[name] = per.get(name, 0) + 1
            try:
                ages.setdefault(key, set()).add(float(r["age"]))
            except (KeyError, TypeError, ValueError):
                pass
            sid = str(r.get("subject", "") or "")
            if sid:
                subjects.setdefault(sid, set()).add(name)
    names = list(splits)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    several = [k for k, per in where.items() if len(per) > 1]
    conflicts = [k for k, a in ages.items() if len(a) > 1]
    shared = sorted(s for s, parts in subjects.items() if len(parts) > 1)
    return {
        "rows": {name: len(rows) for name, rows in splits.items()},
        "images": len(where),
        "images_in_several_splits": len(several),
        "split_pairs": {f"{a}+{b}": sum(a in per and b in per for per in where.values()) for a, b in pairs},
        "repeated_rows": sum(n - 1 for per in where.values() for n in per.values()),
        "age_conflicts": len(conflicts),
        "subjects_in_several_splits": len(shared),
        "subject_pairs": {f"{a}+{b}": sum(a in p and b in p for p in subjects.values()) for a, b in pairs},
        "subject_exclusive": subject_exclusive,
        "subject_leak": len(shared) if subject_exclusive else 0,
        "examples": {
            "images_in_several_splits": [f"{shown[k]} ({', '.join(where[k])})" for k in several[:examples]],
            "repeated_rows": [
                f"{shown[k]} ({n} rows in {s})" for k, per in where.items() for s, n in per.items() if n > 1
            ][:examples],
            "age_conflicts": [
                f"{shown[k]} (ages {', '.join(f'{a:g}' for a in sorted(ages[k]))})" for k in conflicts[:examples]
            ],
            "subjects_in_several_splits": [
                f"{s} ({', '.join(n for n in names if n in subjects[s])})" for s in shared[:examples]
            ],
        },
    }


def leakage_lines(report: dict, what: str = "") -> list[str]:
    """Warnings for a :func:`leakage_report` (one per finding, with its count and an example); [] when clean.
    ``what``: where the rows come from, e.g. "protocol official" or a manifest's path."""
    at = f" ({what})" if what else ""
    eg = report.get("examples", {})

    def first(kind: str) -> str:
        return f", e.g. {eg[kind][0]}" if eg.get(kind) else ""

    out = []
    if report["images_in_several_splits"]:
        pairs = ", ".join(f"{n} in {p}" for p, n in report["split_pairs"].items() if n)
        out.append(
            f"{report['images_in_several_splits']} image(s) are in more than one split{at}: {pairs}"
            f"{first('images_in_several_splits')}; a model tested on images it trained on scores too well"
        )
    if report["repeated_rows"]:
        out.append(
            f"{report['repeated_rows']} row(s) repeat an image already listed in the same split{at}"
            f"{first('repeated_rows')}; the image counts once per row"
        )
    if report["age_conflicts"]:
        out.append(
            f"{report['age_conflicts']} image(s) carry two or more different ages{at}"
            f"{first('age_conflicts')}; fix the labels"
        )
    if report["subject_leak"]:
        pairs = ", ".join(f"{n} in {p}" for p, n in report["subject_pairs"].items() if n)
        out.append(
            f"{report['subject_leak']} subject(s) have images in more than one split although the protocol "
            f"is subject-exclusive{at}: {pairs}{first('subjects_in_several_splits')}"
        )
    return out


def fold_rows(rows: list[dict], fold: Fold) -> dict[str, list[dict]]:
    """{"train": rows, "val": rows, "test": rows} of ``fold`` (val only when it has one)."""
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    return {name: [rows[i] for i in idx] for name, idx in parts.items() if idx or name != "val"}


@dataclass
class SplitWarnings:
    """The counts behind the warnings of ``data check`` and ``train --dataset`` for some folds of a protocol.

    Images are counted once however many rows name them (one path, symbolic links resolved)."""

    protocol: str
    images_on_disk: int  # images found (readable or not)
    images_used: int  # images some split uses
    shared: dict[str, int] = field(default_factory=dict)  # fold name -> subjects in both train and test
    unlisted: int = 0  # images no split uses
    unlisted_examples: list[str] = field(default_factory=list)
    duplicate_names: int = 0  # names carried by files in more than one folder
    duplicate_files: int = 0  # files that carry them
    duplicates_unused: int = 0  # of those files, how many no split uses
    duplicate_examples: dict[str, list[str]] = field(default_factory=dict)
    subject_exclusive: bool | None = None  # whether the protocol promises no subject on both sides
    in_several_splits: dict[str, int] = field(default_factory=dict)  # fold name -> images in two of its splits
    repeated_images: int = 0  # images named by more than one row
    repeated_rows: int = 0  # the extra rows
    age_conflicts: int = 0  # images labelled with two or more different ages
    leak_examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def _where(self, name: str, folds: dict) -> str:
        return f"protocol {self.protocol}" if len(folds) == 1 else f"protocol {self.protocol} {name}"

    def lines(self, limit: int = 10) -> list[str]:
        """One warning per finding, with its count; empty when there is nothing to say."""
        out = []
        for k, (name, n) in enumerate((f, n) for f, n in self.shared.items() if n):
            if k == limit:
                out.append("... and more folds share subjects between train and test")
                break
            where = self._where(name, self.shared)
            if self.subject_exclusive:
                out.append(
                    f"{n} subjects appear in both train and test although {where} is subject-exclusive "
                    f"(check the subject ids: one person under two ids, or two under one)"
                )
            else:
                out.append(f"{n} subjects appear in both train and test ({where}: its lists are not subject-exclusive)")
        eg = self.leak_examples
        for k, (name, n) in enumerate((f, n) for f, n in self.in_several_splits.items() if n):
            if k == limit:
                out.append("... and more folds hold one image in two splits")
                break
            e = f", e.g. {eg['in_several_splits'][0]}" if eg.get("in_several_splits") else ""
            out.append(
                f"{n} image(s) are in more than one split ({self._where(name, self.in_several_splits)}: "
                f"the same file listed twice){e}; a model tested on images it trained on scores too well"
            )
        if self.repeated_images:
            e = f", e.g. {eg['repeated'][0]}" if eg.get("repeated") else ""
            out.append(
                f"{self.repeated_images} image(s) are listed by more than one row ({self.repeated_rows} extra "
                f"row(s)){e}; each is counted once"
            )
        if self.age_conflicts:
            e = f", e.g. {eg['age_conflicts'][0]}" if eg.get("age_conflicts") else ""
            out.append(f"{self.age_conflicts} image(s) carry two or more different ages{e}; fix the labels")
        if self.unlisted:
            e = f", e.g. {self.unlisted_examples[0]}" if self.unlisted_examples else ""
            out.append(
                f"{self.unlisted} image(s) on disk are named by no list of protocol {self.protocol} and are not used{e}"
            )
        if self.duplicate_names:
            name, paths = next(iter(self.duplicate_examples.items()))
            out.append(
                f"{self.duplicate_files} files share {self.duplicate_names} file name(s) in different folders "
                f"(e.g. {name}: {', '.join(paths[:3])}); a list that names files cannot tell them apart: "
                f"{self.duplicates_unused} of these files are not used by protocol {self.protocol}"
            )
        return out


def split_warnings(
    rows: list[dict], folds: list[Fold], protocol: str, examples: int = 5, subject_exclusive: bool | None = None
) -> SplitWarnings:
    """Count, over ``folds`` of ``protocol``: shared subjects and images in two splits per fold, unused images,
    duplicate names, images named by several rows and images with two ages. ``subject_exclusive``: whether
    the protocol promises no subject on both sides (the wording of the shared-subject warning)."""
    keys = [path_key(r["path"]) for r in rows]
    used_rows = {i for f in folds for part in (f.train, f.val, f.test) for i in part}
    by_key: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    used = {k for k, idx in by_key.items() if any(i in used_rows for i in idx)}
    unused = [idx[0] for k, idx in by_key.items() if k not in used]
    dups = duplicate_names(rows)
    dup_files = {keys[i] for v in dups.values() for i in v}
    several: dict[str, int] = {}
    several_eg: list[str] = []
    for f in folds:
        parts = [{keys[i] for i in part} for part in (f.train, f.val, f.test)]
        both = (parts[0] & parts[1]) | (parts[0] & parts[2]) | (parts[1] & parts[2])
        several[f.name] = len(both)
        several_eg += [rows[by_key[k][0]]["path"] for k in sorted(both)[: examples - len(several_eg)]]
    ages: dict[str, set] = {}
    for k, r in zip(keys, rows):
        if r.get("age") is not None:
            ages.setdefault(k, set()).add(float(r["age"]))
    conflicts = [k for k, a in ages.items() if len(a) > 1]
    repeated = [k for k, idx in by_key.items() if len(idx) > 1]
    return SplitWarnings(
        protocol=protocol,
        images_on_disk=len(by_key),
        images_used=len(used),
        shared={f.name: shared_subjects(rows, f) for f in folds},
        unlisted=len(unused),
        unlisted_examples=[rows[i]["path"] for i in unused[:examples]],
        duplicate_names=len(dups),
        duplicate_files=len(dup_files),
        duplicates_unused=len(dup_files - used),
        duplicate_examples={
            n: list(dict.fromkeys(rows[i]["path"] for i in v)) for n, v in list(dups.items())[:examples]
        },
        subject_exclusive=subject_exclusive,
        in_several_splits=several,
        repeated_images=len(repeated),
        repeated_rows=sum(len(by_key[k]) - 1 for k in repeated),
        age_conflicts=len(conflicts),
        leak_examples={
            "in_several_splits": several_eg,
            "repeated": [f"{rows[by_key[k][0]]['path']} ({len(by_key[k])} rows)" for k in repeated[:examples]],
            "age_conflicts": [
                f"{rows[by_key[k][0]]['path']} (ages {', '.join(f'{a:g}' for a in sorted(ages[k], key=float))})"
                for k in conflicts[:examples]
            ],
        },
    )
