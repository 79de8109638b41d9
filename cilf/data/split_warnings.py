"""What a protocol's split lists do to the files on disk, counted: subjects shared by train and test,
images no list names, and file names that occur in more than one folder.

Published lists name files, not paths (``cilf.data.protocols.FileIndex`` matches them by name in any
folder), and some put the same subject in train and test (MORPH-II setting B: its subsets S1, S2
and S3 share about 2,200 subjects pairwise). Nothing here changes a split; it says what it holds.
"""
from __future__ import annotations

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


def duplicate_names(rows: list[dict]) -> dict[str, list[int]]:
    """File names (case-insensitive) carried by more than one row: {NAME: [row indices]}."""
    by_name: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_name.setdefault(Path(r["path"]).name.upper(), []).append(i)
    return {n: idx for n, idx in by_name.items() if len(idx) > 1}


@dataclass
class SplitWarnings:
    """The counts behind the warnings of ``data check`` and ``train --dataset`` for some folds of a protocol."""

    protocol: str
    images_on_disk: int  # rows found (readable or not)
    images_used: int  # rows some split uses
    shared: dict[str, int] = field(default_factory=dict)  # fold name -> subjects in both train and test
    unlisted: int = 0  # rows no split uses
    unlisted_examples: list[str] = field(default_factory=list)
    duplicate_names: int = 0  # names that occur more than once
    duplicate_files: int = 0  # files that carry them
    duplicates_unused: int = 0  # of those files, how many no split uses
    duplicate_examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self, limit: int = 10) -> list[str]:
        """One warning per finding, with its count; empty when there is nothing to say."""
        out = []
        for k, (name, n) in enumerate((f, n) for f, n in self.shared.items() if n):
            if k == limit:
                out.append("... and more folds share subjects between train and test")
                break
            where = f"protocol {self.protocol}" if len(self.shared) == 1 else f"protocol {self.protocol} {name}"
            out.append(f"{n} subjects appear in both train and test ({where}: its lists are not subject-exclusive)")
        if self.unlisted:
            eg = f", e.g. {self.unlisted_examples[0]}" if self.unlisted_examples else ""
            out.append(f"{self.unlisted} image(s) on disk are named by no list of protocol {self.protocol} and are "
                       f"not used{eg}")
        if self.duplicate_names:
            name, paths = next(iter(self.duplicate_examples.items()))
            out.append(f"{self.duplicate_files} files share {self.duplicate_names} file name(s) in different folders "
                       f"(e.g. {name}: {', '.join(paths[:3])}); a list that names files cannot tell them apart: "
                       f"{self.duplicates_unused} of these files are not used by protocol {self.protocol}")
        return out


def split_warnings(rows: list[dict], folds: list[Fold], protocol: str, examples: int = 5) -> SplitWarnings:
    """Count shared subjects per fold, unused images and duplicate names over ``folds`` of ``protocol``."""
    unused = unlisted_rows(rows, folds)
    dups = duplicate_names(rows)
    unused_set = set(unused)
    return SplitWarnings(
        protocol=protocol, images_on_disk=len(rows), images_used=len(rows) - len(unused),
        shared={f.name: shared_subjects(rows, f) for f in folds},
        unlisted=len(unused), unlisted_examples=[rows[i]["path"] for i in unused[:examples]],
        duplicate_names=len(dups), duplicate_files=sum(len(v) for v in dups.values()),
        duplicates_unused=sum(i in unused_set for v in dups.values() for i in v),
        duplicate_examples={n: [rows[i]["path"] for i in v] for n, v in list(dups.items())[:examples]})
