"""Adience: ``fold_{0..4}_data.txt`` (tab separated: user_id, original_image, face_id, age, gender, ...)
beside ``faces/USER/coarse_tilt_aligned_face.FACE.IMAGE`` (or ``aligned/USER/landmark_aligned_face...``).
Ages are the 8 groups "(lo, hi)"; a row's age is the group midpoint and ``adience_group`` its index, so
exact and 1-off group accuracy are measured. Rows labelled None are listed as skipped.

Fold k is ``fold_k_data.txt``, looked up by its number: all five files are needed (protocol 5-fold tests
on each fold and trains on the other four), and a missing one is an error naming it, never a shorter
list of folds whose positions no longer match their numbers."""

from __future__ import annotations

import re
from pathlib import Path

from ...metrics import age_group
from ..protocols import AnnotationError, Fold, read_table
from .base import DatasetNotFound, Scan, Source

FOLDS = 5
RANGE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
FOLDERS = (("faces", "coarse_tilt_aligned_face"), ("aligned", "landmark_aligned_face"))


def parse_adience_age(value: str, where: str) -> float | None:
    """Midpoint of "(lo, hi)" or a plain number; None for an unlabelled row."""
    v = value.strip()
    if v in ("None", ""):
        return None
    m = RANGE.match(v)
    if m:
        lo, hi = int(m[1]), int(m[2])
        if lo > hi or hi > 120:
            raise AnnotationError(f"{where}: age range {v!r} is not (lo, hi) within 0-120")
        return (lo + hi) / 2
    if v.isdigit() and int(v) <= 120:
        return float(v)
    raise AnnotationError(f"{where}: age {v!r} is neither '(lo, hi)', a number nor None")


class Adience(Source):
    name = "adience"
    title = "Adience"
    layout = "ROOT/fold_{0..4}_data.txt + ROOT/faces/USER/coarse_tilt_aligned_face.FACE.IMAGE (or aligned/)"
    get = "https://talhassner.github.io/home/projects/Adience/Adience-data.html (research use)"
    protocols = {"5-fold": "published (Levi & Hassner): the five folds of fold_{0..4}_data.txt (subject-exclusive)"}
    default_protocol = "5-fold"
    marker = "fold_*_data.txt"
    subject_exclusive = ("5-fold",)

    def fold_file(self, root: Path, k: int) -> Path:
        """``ROOT/fold_k_data.txt``, or DatasetNotFound naming it, what needs it and where to get it."""
        path = root / f"fold_{k}_data.txt"
        if not path.is_file():
            raise DatasetNotFound(
                f"{path} not found: Adience fold {k} needs it (protocol 5-fold tests on each of "
                f"the five folds and trains on the other four); download the five fold files "
                f"fold_0_data.txt ... fold_4_data.txt into {root}; they come from {self.get}"
            )
        return path

    def check_root(self, root: Path) -> None:
        super().check_root(root)
        for k in range(FOLDS):
            self.fold_file(root, k)

    def scan(self, root: Path) -> Scan:
        scan = Scan([])
        for k in range(FOLDS):
            path = self.fold_file(root, k)
            for line, r in read_table(path, "\t", ("user_id", "original_image", "face_id", "age")):
                where = f"{path}, line {line}"
                age = parse_adience_age(r["age"], where)
                candidates = [
                    root / d / r["user_id"] / f"{prefix}.{r['face_id']}.{r['original_image']}" for d, prefix in FOLDERS
                ]
                img = next((c for c in candidates if c.is_file()), None)
                if age is None:
                    scan.skipped.append((str(candidates[0]), f"no age label ({where})"))
                elif img is None:
                    scan.skipped.append((str(candidates[0]), f"image not found under faces/ or aligned/ ({where})"))
                else:
                    scan.rows.append(
                        {
                            "path": str(img),
                            "age": age,
                            "subject": r["user_id"],
                            "fold": k,
                            "adience_group": age_group(age),
                            "gender": r.get("gender", ""),
                        }
                    )
        return scan

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        """Folds fold0 ... fold4, fold k testing on the rows of fold_k_data.txt (by number, all five)."""
        out = []
        for k in range(FOLDS):
            test = [i for i, r in enumerate(rows) if r["fold"] == k]
            if not test:
                raise ValueError(
                    f"Adience fold {k}: none of the images {root / f'fold_{k}_data.txt'} lists was "
                    f"found under {root}/faces/ or {root}/aligned/; put that fold's images there"
                )
            out.append(Fold(f"fold{k}", [i for i, r in enumerate(rows) if r["fold"] != k], test))
        return out
