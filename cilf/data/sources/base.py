"""What every dataset source provides: a scan of its official layout and its named protocols."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets import RecordDataset
from ..images import ImageWalk, walk_images
from ..protocols import Fold, find_fold


class DatasetNotFound(FileNotFoundError):
    pass


@dataclass
class Scan:
    """Rows found on disk, files passed over (with the reason) and notes for the user."""

    rows: list[dict]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip_counts(self) -> dict[str, int]:
        """{reason: count} of ``skipped`` (the reason's text before " (")."""
        return ImageWalk(skipped=self.skipped).counts()


class Source:
    """A dataset's on-disk layout. Subclasses set the class attributes and implement scan/folds."""

    name = ""
    title = ""
    aliases: tuple[str, ...] = ()
    layout = ""  # what ROOT must contain
    get = ""  # where the dataset comes from (licensed: we never download it)
    protocols: dict[str, str] = {}  # name -> description (say "published" or "ours")
    default_protocol = "80-20"
    marker: str | None = None  # a file or folder under ROOT that shows the layout is there
    # protocols whose splits must share no subject (a shared one is then a leak that ``data check`` reports)
    subject_exclusive: tuple[str, ...] = ()

    def check_root(self, root: Path) -> None:
        if not root.is_dir() or (self.marker and not list(root.glob(self.marker))):
            what = f"{root}/{self.marker}" if root.is_dir() and self.marker else str(root)
            raise DatasetNotFound(
                f"{self.title} not found at {what}. Expected layout: {self.layout}. How to get it: {self.get}"
            )

    def scan(self, root: Path) -> Scan:
        raise NotImplementedError

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        raise NotImplementedError


def image_files(root: Path, under: str | None = None) -> list[Path]:
    """Image files below ``root`` (or ``root/under``), sorted, hidden files excluded; what was passed over is
    dropped: prefer :func:`walk_layout`, which keeps it."""
    return walk_layout(root, under).files


def walk_layout(root: Path, under: str | None = None, ignore: tuple[str, ...] = ()) -> ImageWalk:
    """:func:`cilf.data.images.walk_images` of ``root`` (or ``root/under``): the image files, sorted, and every
    file or folder passed over with its reason; ``ignore``: the layout's own annotation file names."""
    return walk_images(root / under if under else root, ignore=ignore)


def scan_names(
    root: Path,
    pattern: re.Pattern,
    to_row: Callable[[Path, re.Match], dict],
    under: str | None = None,
    describe: str = "",
    ignore: tuple[str, ...] = (),
) -> Scan:
    """Rows from file names matching ``pattern``; other image files, and whatever the walk passed over
    (unreadable folders, other extensions, duplicates...), are listed as skipped with the reason."""
    walk = walk_layout(root, under, ignore)
    scan = Scan([], skipped=list(walk.skipped))
    for p in walk.files:
        m = pattern.match(p.name)
        if m is None:
            scan.skipped.append((str(p), f"file name does not match {describe or pattern.pattern}"))
            continue
        try:
            row = to_row(p, m)
        except ValueError as e:
            scan.skipped.append((str(p), str(e)))
            continue
        row.setdefault("path", str(p))
        scan.rows.append(row)
    return scan


class AgeDataset(RecordDataset):
    """A dataset opened from its official layout, knowing its protocols.

    ``folds(protocol)`` gives the protocol's train/test splits; ``split("test", fold=0)`` one of them
    as a dataset. ``scan`` keeps the files passed over while reading the layout.
    """

    def __init__(
        self, source: Source, root: Path, scan: Scan, protocol: str | None = None, transform: Callable | None = None
    ):
        super().__init__(scan.rows, transform, source.title)
        self.source, self.root, self.scan = source, root, scan
        self.protocol = protocol or source.default_protocol
        self._folds: dict[str, list[Fold]] = {}

    @property
    def protocols(self) -> dict[str, str]:
        return self.source.protocols

    def folds(self, protocol: str | None = None) -> list[Fold]:
        protocol = protocol or self.protocol
        if protocol not in self.source.protocols:
            raise ValueError(
                f"{self.source.title} has no protocol {protocol!r}; choose one of {sorted(self.source.protocols)}"
            )
        if protocol not in self._folds:
            self._folds[protocol] = self.source.folds(protocol, self.rows, self.root)
        return self._folds[protocol]

    @property
    def subject_exclusive(self) -> bool:
        """Whether this protocol's splits promise to share no subject."""
        return self.protocol in self.source.subject_exclusive

    def fold(self, key: int | str = 0, protocol: str | None = None) -> Fold:
        """One fold of ``protocol``, looked up by name ("fold1", "S2->rest") or number (1: the fold named
        "fold1" where folds are numbered; otherwise the k-th, e.g. FG-NET's subjects), never by the position
        of a fold in a list that lacks some. ValueError naming the folds there are."""
        return find_fold(self.folds(protocol), key, f"{self.source.title} protocol {protocol or self.protocol}")

    def split(self, split: str, fold: int | str = 0, protocol: str | None = None) -> RecordDataset:
        """Rows of one split ("train", "val" or "test") of one fold (by name or number) as a dataset."""
        f = self.fold(fold, protocol)
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        idx = getattr(f, split)
        if not idx:
            raise ValueError(f"{self.source.title} {protocol or self.protocol} {f.name} has no {split} split")
        return self.subset(idx, f"{self.source.title} {protocol or self.protocol} {f.name} {split}")
