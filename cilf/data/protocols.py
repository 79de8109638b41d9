"""Protocols: named train/test splits over a dataset's rows, as lists of row indices.

Published split lists (MORPH-II settings A-D, CORAL's MORPH-II/CACD splits, UTKFace 21-60) ship in
``cilf/data/published/`` unchanged and are matched to the files found on disk by file name. Splits the
literature does not publish (the paper's 80/20, subject-exclusive k-fold, leave-one-person-out)
are derived here, seeded, and labelled as ours.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np


class AnnotationError(ValueError):
    """A malformed annotation or split-list row; the message names the file and line."""


@dataclass
class Fold:
    """One train/test (optionally val) split: row indices into the dataset."""

    name: str
    train: list[int]
    test: list[int]
    val: list[int] = field(default_factory=list)
    missing: int = 0  # files a published list names that are not on disk

    def __post_init__(self) -> None:
        if not self.train or not self.test:
            raise ValueError(f"fold {self.name}: empty {'train' if not self.train else 'test'} split")


def published(*parts: str) -> Path:
    """Path of a shipped split list, e.g. ``published("morph", "order-learning", "SettingC.txt")``.

    Raises FileNotFoundError naming the file and the fix when the installed copy lacks it (each list is
    looked up by its name; a protocol never falls back to the lists that happen to be there)."""
    path = Path(str(resources.files("cilf.data").joinpath("published", *parts)))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the published split list {'/'.join(parts)} ships with cilf "
            f"(cilf/data/published/, see its README); reinstall cilf or restore the file from "
            f"the repository"
        )
    return path


def find_fold(folds: list[Fold], key: int | str, where: str = "this protocol") -> Fold:
    """The fold of ``folds`` named ``key`` ("fold1", "S2->rest"), or numbered ``key``: the fold named
    f"fold{key}" when the folds are numbered that way, else the key-th (folds named otherwise: one
    per subject, or a single split). ValueError naming the folds there are."""
    names = [f.name for f in folds]
    if isinstance(key, str) and not key.strip().isdigit():
        if key in names:
            return folds[names.index(key)]
        raise ValueError(
            f"{where} has no fold {key!r}; its folds: {', '.join(names[:12])}"
            + (f" ... ({len(names)} in all)" if len(names) > 12 else "")
        )
    k = int(key)
    numbered = [n for n in names if n.startswith("fold") and n[4:].isdigit()]
    if numbered:
        if f"fold{k}" in names:
            return folds[names.index(f"fold{k}")]
        raise ValueError(f"{where} has {len(folds)} fold(s) ({', '.join(numbered)}); no fold {k}")
    if not 0 <= k < len(folds):
        raise ValueError(f"{where} has {len(folds)} fold(s) (0-{len(folds) - 1}); fold {k} asked for")
    return folds[k]


def read_table(path: str | Path, delimiter: str = ",", required: tuple[str, ...] = ()) -> list[tuple[int, dict]]:
    """Rows of a delimited text file as (line number, {column: value}); CRLF and a blank index column allowed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
        lines = [ln.rstrip("\r\n") for ln in f]
    if delimiter == " ":
        split = [ln.split() for ln in lines]
    else:
        split = list(csv.reader(lines, delimiter=delimiter))
    if not split:
        raise AnnotationError(f"{path}: empty file")
    header = [h.strip() for h in split[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise AnnotationError(f"{path}, line 1: header lacks column(s) {missing} (has {header})")
    rows = []
    for n, fields in enumerate(split[1:], start=2):
        if not fields or all(not x.strip() for x in fields):
            continue
        if len(fields) != len(header):
            raise AnnotationError(f"{path}, line {n}: {len(fields)} fields, the header has {len(header)}")
        rows.append((n, dict(zip(header, (x.strip() for x in fields)))))
    return rows


def parse_age(value: str, where: str, lo: float = 0, hi: float = 120) -> float:
    """A number in [lo, hi] or an AnnotationError naming ``where`` (file, line)."""
    try:
        age = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: age {value!r} is not a number") from None
    if not (lo <= age <= hi):
        raise AnnotationError(f"{where}: age {age:g} outside [{lo:g}, {hi:g}]")
    return age


class FileIndex:
    """Maps file names (case-insensitive, any folder) to row indices, counting names not on disk."""

    def __init__(self, rows: list[dict]):
        self.index = {Path(r["path"]).name.upper(): i for i, r in enumerate(rows)}

    def lookup(self, names) -> tuple[list[int], int]:
        found, missing = [], 0
        for name in names:
            i = self.index.get(Path(name).name.upper())
            if i is None:
                missing += 1
            else:
                found.append(i)
        return found, missing


def listed_fold(name: str, index: FileIndex, train_names, test_names, val_names=(), source: str = "") -> Fold:
    """A fold from published file-name lists; fails clearly when none of its files are on disk."""
    tr, m1 = index.lookup(train_names)
    te, m2 = index.lookup(test_names)
    va, m3 = index.lookup(val_names)
    if not tr or not te:
        n = len(list(train_names)) + len(list(test_names))
        raise FileNotFoundError(
            f"{source or name}: none of the {n} files this list names were found under the "
            f"dataset root (matched by file name, any folder)"
        )
    return Fold(name, tr, te, va, missing=m1 + m2 + m3)


def _groups(rows: list[dict], by_subject: bool) -> list[list[int]]:
    """Index groups that must stay together: one per subject, or one per row."""
    if not by_subject or not any(str(r.get("subject", "")) for r in rows):
        return [[i] for i in range(len(rows))]
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(str(r["subject"]) or f"row{i}", []).append(i)
    return [groups[k] for k in sorted(groups)]


def holdout(
    rows: list[dict], test_frac: float = 0.2, seed: int = 0, by_subject: bool = True, name: str = "80-20"
) -> list[Fold]:
    """One seeded train/test split; subject-exclusive when rows carry subjects."""
    groups = _groups(rows, by_subject)
    order = np.random.default_rng(seed).permutation(len(groups))
    n_test = max(1, round(test_frac * len(groups)))
    test = sorted(i for g in order[:n_test] for i in groups[g])
    train = sorted(i for g in order[n_test:] for i in groups[g])
    return [Fold(name, train, test)]


def kfold(rows: list[dict], k: int = 5, seed: int = 0, by_subject: bool = True) -> list[Fold]:
    """k seeded folds (each tests on one part, trains on the rest); subject-exclusive when possible."""
    groups = _groups(rows, by_subject)
    if len(groups) < k:
        raise ValueError(f"{k}-fold needs at least {k} subjects, found {len(groups)}")
    order = np.random.default_rng(seed).permutation(len(groups))
    parts = np.array_split(order, k)
    folds = []
    for j, part in enumerate(parts):
        test = sorted(i for g in part for i in groups[g])
        train = sorted(i for p in parts if p is not part for g in p for i in groups[g])
        folds.append(Fold(f"fold{j}", train, test))
    return folds


def leave_one_subject_out(rows: list[dict]) -> list[Fold]:
    """One fold per subject (FG-NET's leave-one-person-out)."""
    groups = _groups(rows, by_subject=True)
    if len(groups) < 2:
        raise ValueError("leave-one-person-out needs at least two subjects")
    everyone = set(range(len(rows)))
    return [Fold(f"subject {rows[g[0]]['subject']}", sorted(everyone - set(g)), sorted(g)) for g in groups]


def split_by_column(rows: list[dict], column: str = "split", name: str = "official") -> list[Fold]:
    """The split a dataset ships: rows whose ``column`` is train, val/valid or test."""
    alias = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
    sets: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for i, r in enumerate(rows):
        part = alias.get(str(r.get(column, "")).strip().lower())
        if part:
            sets[part].append(i)
    for part in ("train", "test"):
        if not sets[part]:
            found = ", ".join(f"{len(v)} {k}" for k, v in sets.items() if v) or "none"
            raise ValueError(
                f"protocol {name}: no row has {column} = {part} (rows per {column}: {found}); the "
                f"{part} split is looked up by that name: add its rows or choose another protocol"
            )
    return [Fold(name, sets["train"], sets["test"], sets["val"])]
