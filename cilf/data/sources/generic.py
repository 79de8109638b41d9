"""The generic CSV manifest and SynthAge (the offline stand-in for every protocol shape)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cilf.labels import SYNTHAGE

from ..datasets import read_manifest
from ..protocols import Fold, holdout, kfold, leave_one_subject_out, split_by_column
from .base import DatasetNotFound, Scan, Source


def _manifest_path(root: Path) -> Path:
    return root if root.suffix.lower() == ".csv" else root / "manifest.csv"


class Manifest(Source):
    name = "manifest"
    title = "CSV manifest"
    aliases = ("csv",)
    layout = "a CSV file (or ROOT/manifest.csv) with columns path, age[, subject][, split]; paths relative to it"
    get = "write it yourself: one row per image"
    protocols = {
        "official": "the manifest's split column (train / val / test)",
        "80-20": "ours: seeded subject-exclusive 80/20",
        "5-fold": "ours: seeded subject-exclusive 5-fold",
    }
    subject_exclusive = ("80-20", "5-fold")

    def check_root(self, root: Path) -> None:
        if not _manifest_path(root).is_file():
            raise DatasetNotFound(f"manifest not found at {_manifest_path(root)}. Expected: {self.layout}")

    def scan(self, root: Path) -> Scan:
        return Scan(read_manifest(_manifest_path(root)))

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        if protocol == "official":
            if not rows or "split" not in rows[0]:
                raise ValueError(f"{_manifest_path(root)} has no split column; use protocol 80-20 or 5-fold")
            return split_by_column(rows)
        return kfold(rows, 5) if protocol == "5-fold" else holdout(rows)


class SynthAgeSource(Manifest):
    """SynthAge: ROOT is a generated folder (``python -m cilf synthage``); protocols mimic the real ones."""

    name = "synthage"
    title = SYNTHAGE
    aliases = ()
    layout = "a folder written by `python -m cilf synthage --out ROOT` (manifest.csv + images/)"
    get = "generated offline: python -m cilf synthage --out ROOT"
    protocols = {
        "official": "the generator's subject-exclusive train / val / test",
        "80-20": "stand-in for the paper's 80/20: seeded subject-exclusive",
        "5-fold": "stand-in for MORPH-II setting C and Adience: subject-exclusive 5-fold",
        "lopo": "stand-in for FG-NET: leave one person out over the first 82 subjects",
        "S1-rest": "stand-in for MORPH-II setting B: three disjoint subject subsets, train on S1, test on S2+S3",
    }
    default_protocol = "80-20"
    subject_exclusive = ("official", "80-20", "5-fold", "lopo", "S1-rest")

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        if protocol == "lopo":
            keep = set(sorted({str(r["subject"]) for r in rows}, key=lambda s: int(s) if s.isdigit() else s)[:82])
            sub = [i for i, r in enumerate(rows) if str(r["subject"]) in keep]
            return [
                Fold(f.name, [sub[i] for i in f.train], [sub[i] for i in f.test])
                for f in leave_one_subject_out([rows[i] for i in sub])
            ]
        if protocol == "S1-rest":
            subjects = sorted({str(r["subject"]) for r in rows})
            parts = np.array_split(np.random.default_rng(0).permutation(len(subjects)), 3)
            s1 = {subjects[j] for j in parts[0]}
            return [
                Fold(
                    "S1->rest",
                    [i for i, r in enumerate(rows) if str(r["subject"]) in s1],
                    [i for i, r in enumerate(rows) if str(r["subject"]) not in s1],
                )
            ]
        return super().folds(protocol, rows, root)
