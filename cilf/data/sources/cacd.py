"""CACD (Cross-Age Celebrity Dataset): ``CACD2000/AGE_Name_NNNN.jpg``, optionally with the
annotation file ``celebrity2000.mat`` (``celebrityImageData``: name, age, identity, year). With the
.mat, ages and identities come from it (files it names that are not on disk are counted); without,
from the file names. ``coral`` is CORAL's published split (image-level, not celebrity-disjoint;
its age column is real age - 14)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..protocols import FileIndex, Fold, holdout, listed_fold, published, read_table
from .base import Scan, Source, scan_names, walk_layout

NAME = re.compile(r"^(?P<age>\d+)_(?P<name>.+)_(?P<no>\d{4})\.jpe?g$", re.I)
MAT_NAMES = ("celebrity2000.mat", "celebrity2000_meta.mat")


def read_celebrity_mat(path: Path) -> list[tuple[str, float, str]]:
    """(file name, age, identity) for every image the .mat lists."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except (NotImplementedError, ValueError, OSError) as e:
        raise ValueError(
            f"{path}: cannot read this .mat ({e}); re-save it as MATLAB v7 or remove it from ROOT to use the file names"
        ) from None
    if "celebrityImageData" not in mat:
        raise ValueError(
            f"{path}: no celebrityImageData struct (has {sorted(k for k in mat if not k.startswith('__'))})"
        )
    d = mat["celebrityImageData"]
    names, ages, ids = (np.atleast_1d(getattr(d, f)) for f in ("name", "age", "identity"))
    if not (len(names) == len(ages) == len(ids)):
        raise ValueError(f"{path}: celebrityImageData fields have different lengths")
    return [(str(n), float(a), str(int(i))) for n, a, i in zip(names, ages, ids)]


class CACD(Source):
    name = "cacd"
    title = "CACD"
    aliases = ("cacd2000",)
    layout = "ROOT/CACD2000/AGE_Name_NNNN.jpg [+ ROOT/celebrity2000.mat]"
    get = "https://bcsiriuschen.github.io/CARC/ (research use)"
    protocols = {
        "celebrity-disjoint": "ours: seeded celebrity-disjoint split 1800/80/120 celebrities (train/val/test), "
        "the proportions of Chen et al.; their rank-based lists are not shipped",
        "coral": "published (CORAL): train / valid / test, an image-level split",
        "80-20": "ours: seeded celebrity-disjoint 80/20",
    }
    default_protocol = "celebrity-disjoint"
    subject_exclusive = ("celebrity-disjoint", "80-20")
    marker = "CACD2000"

    def scan(self, root: Path) -> Scan:
        mat = next((root / n for n in MAT_NAMES if (root / n).is_file()), None)
        if mat is None:
            scan = scan_names(
                root,
                NAME,
                lambda p, m: {"age": float(m["age"]), "subject": m["name"]},
                under="CACD2000",
                describe="AGE_Name_NNNN.jpg",
            )
            scan.notes.append("no celebrity2000.mat: ages and identities read from the file names")
            return scan
        walk = walk_layout(root, "CACD2000")
        scan = Scan([], skipped=list(walk.skipped))
        missing = 0
        listed = read_celebrity_mat(mat)
        names = {n for n, _, _ in listed}
        scan.skipped += [(str(p), f"not listed in {mat.name}") for p in walk.files if p.name not in names]
        for name, age, ident in listed:
            p = root / "CACD2000" / name
            if p.is_file():
                scan.rows.append({"path": str(p), "age": age, "subject": ident})
            else:
                missing += 1
        scan.notes.append(
            f"ages and identities from {mat.name}"
            + (f"; {missing} image(s) it lists are not in CACD2000/" if missing else "")
        )
        return scan

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        if protocol == "80-20":
            return holdout(rows)
        if protocol == "coral":
            names = {
                s: [
                    r["file"]
                    for _, r in read_table(published("cacd", "coral-cnn", f"cacd_{s}.csv"), ",", ("file", "age"))
                ]
                for s in ("train", "valid", "test")
            }
            return [
                listed_fold(
                    "coral", FileIndex(rows), names["train"], names["test"], names["valid"], source="CORAL CACD split"
                )
            ]
        subjects = sorted({r["subject"] for r in rows})
        order = np.random.default_rng(0).permutation(len(subjects))
        n_test, n_val = max(1, round(len(subjects) * 120 / 2000)), max(1, round(len(subjects) * 80 / 2000))
        part = {
            subjects[j]: ("test" if k < n_test else "val" if k < n_test + n_val else "train")
            for k, j in enumerate(order)
        }
        sets = {s: [i for i, r in enumerate(rows) if part[r["subject"]] == s] for s in ("train", "val", "test")}
        return [Fold("celebrity-disjoint", sets["train"], sets["test"], sets["val"])]
