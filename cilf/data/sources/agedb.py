"""AgeDB: 16,488 images named ``ID_Name_AGE_GENDER.jpg`` (e.g. ``0_MariaCallas_35_f.jpg``)."""

from __future__ import annotations

import re
from pathlib import Path

from ..protocols import Fold, holdout, kfold
from .base import Scan, Source, scan_names

NAME = re.compile(r"^(?P<id>\d+)_(?P<name>.+)_(?P<age>\d+)_(?P<gender>[mf])\.jpe?g$", re.I)


class AgeDB(Source):
    name = "agedb"
    title = "AgeDB"
    layout = "ROOT/**/ID_Name_AGE_GENDER.jpg (e.g. 0_MariaCallas_35_f.jpg)"
    get = "request from the AgeDB authors (Moschoglou et al., CVPRW 2017; ibug.doc.ic.ac.uk)"
    protocols = {
        "80-20": "ours: seeded subject-exclusive 80/20",
        "5-fold": "ours: seeded subject-exclusive 5-fold",
    }
    subject_exclusive = ("80-20", "5-fold")

    def _row(self, p: Path, m: re.Match) -> dict:
        age = int(m["age"])
        if not 0 <= age <= 120:
            raise ValueError(f"age {age} in the file name is outside [0, 120]")
        return {"age": float(age), "subject": m["name"], "gender": m["gender"].upper()}

    def scan(self, root: Path) -> Scan:
        return scan_names(root, NAME, self._row, describe="ID_Name_AGE_GENDER.jpg")

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        return kfold(rows, 5) if protocol == "5-fold" else holdout(rows)
