"""Dataset interface: every dataset yields ``(image, age, subject_id, meta)``.

``ManifestDataset`` reads a generic CSV manifest (columns ``path, age`` and optionally
``subject, split`` plus any metadata); ``SynthAge`` generates its images on first use and is a
manifest dataset afterwards. Malformed rows raise a clear error naming file and line; an image
that cannot be read yields ``None`` (dropped by :func:`collate_skip`) and is counted in ``skips``.
Leaks in a manifest (one image in two splits or with two ages, a row repeated, a subject in two
splits) are counted by :func:`manifest_leakage` and kept as ``ManifestDataset.leakage`` for the
caller to warn about (``ManifestDataset.warnings()``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import BadImageError, SkipLog, load_image
from .split_warnings import leakage_lines, leakage_report
from .synthage import SynthAgeSpec, generate

AGE_RANGE = (0.0, 120.0)


class ManifestError(ValueError):
    pass


SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _manifest_text(csv_path: Path) -> str:
    """The manifest as text: UTF-8 (a byte-order mark is dropped); other bytes are refused naming the line."""
    data = csv_path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ManifestError(
            f"{csv_path}, line {line}: byte 0x{data[e.start]:02x} is not UTF-8 text; save the "
            f"manifest as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from None


def read_manifest(csv_path: str | Path, age_range: tuple[float, float] = AGE_RANGE) -> list[dict[str, Any]]:
    """Rows of a CSV manifest with ``path`` and ``age`` columns; paths resolved against its folder.

    Read as UTF-8 (with or without a byte-order mark). A ``split`` column is case-insensitive
    (``Train`` -> ``train``; ``valid``/``validation`` -> ``val``); any other value is refused.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"manifest {csv_path} not found")
    rows = []
    reader = csv.DictReader(io.StringIO(_manifest_text(csv_path), newline=""))
    cols = reader.fieldnames or []
    missing = {"path", "age"} - set(cols)
    if missing:
        raise ManifestError(
            f"{csv_path}: header must name columns path and age (missing {sorted(missing)}; has {cols})"
        )
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ManifestError(f"{csv_path}, line {line}: wrong number of fields")
        try:
            age = float(row["age"])
        except ValueError:
            raise ManifestError(f"{csv_path}, line {line}: age {row['age']!r} is not a number") from None
        if not (age_range[0] <= age <= age_range[1]):
            raise ManifestError(f"{csv_path}, line {line}: age {age:g} outside [{age_range[0]:g}, {age_range[1]:g}]")
        if not row["path"].strip():
            raise ManifestError(f"{csv_path}, line {line}: empty path")
        if "split" in row:
            split = SPLITS.get(row["split"].strip().lower())
            if split is None:
                raise ManifestError(
                    f"{csv_path}, line {line}: split {row['split']!r} is not one of train, val, test "
                    f"(any case; valid/validation mean val)"
                )
            row["split"] = split
        p = Path(row["path"])
        row["path"] = str(p if p.is_absolute() else csv_path.parent / p)
        row["age"] = age
        row.setdefault("subject", "")
        rows.append(row)
    return rows


def manifest_leakage(rows: list[dict[str, Any]], subject_exclusive: bool | None = None) -> dict:
    """:func:`cilf.data.split_warnings.leakage_report` of manifest rows grouped by their ``split`` (all rows as
    one group "all" without a split column): images in two splits, repeated rows, images with two ages,
    subjects in several splits (a leak when ``subject_exclusive``). Returns its dict of counts and examples."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r.get("split", "all"), []).append(r)
    order = [s for s in ("train", "val", "test", "all") if s in groups]
    return leakage_report({s: groups[s] for s in order}, subject_exclusive)


class RecordDataset(Dataset):
    """Images listed as rows (dicts with ``path``, ``age``, ``subject`` and any metadata).

    Every dataset in :mod:`cilf.data` is one: items are ``(image, age, subject_id, meta)``; an
    unreadable image yields ``None`` (dropped by :func:`collate_skip`) and is counted in ``skips``.
    """

    def __init__(self, rows: list[dict[str, Any]], transform: Callable | None = None, name: str = "dataset"):
        self.rows = rows
        self.transform = transform
        self.name = name
        self.skips = SkipLog()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ages(self) -> torch.Tensor:
        return torch.tensor([r["age"] for r in self.rows], dtype=torch.float32)

    def subset(self, indices, name: str | None = None) -> RecordDataset:
        """The rows at ``indices`` as a new dataset (same transform, its own skip log)."""
        return RecordDataset([self.rows[i] for i in indices], self.transform, name or self.name)

    def __getitem__(self, i: int):
        row = self.rows[i]
        try:
            img = load_image(row["path"])
        except BadImageError as e:
            self.skips.add(e)
            return None
        if self.transform is not None:
            img = self.transform(img)
        meta = {k: v for k, v in row.items() if k not in ("age", "subject")}
        return img, row["age"], str(row["subject"]), meta


class ManifestDataset(RecordDataset):
    """A generic CSV manifest (``path, age`` and optionally ``subject, split`` plus metadata)."""

    def __init__(
        self,
        csv_path: str | Path,
        split: str | None = None,
        transform: Callable | None = None,
        age_range: tuple[float, float] = AGE_RANGE,
        subject_exclusive: bool | None = None,
    ):
        self.csv_path = Path(csv_path)
        rows = read_manifest(self.csv_path, age_range)
        # over the whole manifest, before one split is taken: the leaks are between its splits
        self.leakage = manifest_leakage(rows, subject_exclusive)
        if split is not None:
            if split not in ("train", "val", "test"):
                raise ManifestError(f"split {split!r} is not one of train, val, test")
            if rows and "split" not in rows[0]:
                raise ManifestError(f"{self.csv_path}: split {split!r} asked for but the manifest has no split column")
            rows = [r for r in rows if r["split"] == split]
        super().__init__(rows, transform, f"{self.csv_path}" + (f" (split {split})" if split else ""))
        self.split = split

    def warnings(self) -> list[str]:
        """One line per leak :attr:`leakage` found in the manifest (with counts); [] when clean."""
        return leakage_lines(self.leakage, str(self.csv_path))


class SynthAge(ManifestDataset):
    """SynthAge faces (generated under ``root`` on first use, then reused).

    >>> ds = SynthAge(split="test", n_images=2000, seed=0)   # doctest: +SKIP
    >>> image, age, subject, meta = ds[0]; meta["caption"]   # doctest: +SKIP
    """

    def __init__(
        self,
        split: str | None = "train",
        n_images: int = 10000,
        seed: int = 0,
        image_size: int = 112,
        root: str | Path | None = None,
        transform: Callable | None = None,
        progress: bool = True,
        images_per_subject: int = 5,
    ):
        self.spec = SynthAgeSpec(
            n_images=n_images, seed=seed, image_size=image_size, images_per_subject=images_per_subject
        )
        self.root = generate(self.spec, root, progress=progress)
        super().__init__(self.root / "manifest.csv", split=split, transform=transform, subject_exclusive=True)


def collate_skip(batch: list):
    """Collate (image, age, subject, meta) items, dropping the ``None`` of unreadable images."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    images, ages, subjects, metas = zip(*batch)
    images = torch.stack(images) if isinstance(images[0], torch.Tensor) else list(images)
    return images, torch.tensor(ages, dtype=torch.float32), list(subjects), list(metas)


def subject_ids(rows: list[dict]) -> np.ndarray | None:
    """(n) the rows' subject ids as strings, the resampling unit of every CI (cilf.stats ``groups=``); None when
    any row lacks one (then images are the unit, and tables say so)."""
    ids = [str(r.get("subject", "") or "") for r in rows]
    return np.asarray(ids) if ids and all(ids) else None
