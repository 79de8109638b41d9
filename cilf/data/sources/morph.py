"""MORPH-II (academic release): images named ``ID_NNGAA.JPG`` / ``ID_NGAA.JPG`` (subject id, picture
number, gender M/F, age), in any folder below ROOT; or, when ROOT holds the release's
``morph_2008_nonCommercial.csv`` (id_num, ..., race, gender, ..., age, ..., photo), the rows of that
file, with ``photo`` the image path relative to ROOT. Settings A-D and CORAL's split are the
published lists shipped in ``cilf/data/published/morph`` (see its README for sources and formats)."""

from __future__ import annotations

import re
from pathlib import Path

from ..protocols import AnnotationError, FileIndex, Fold, holdout, listed_fold, parse_age, published, read_table
from .base import Scan, Source, scan_names

NAME = re.compile(r"^(?P<subject>\d+)_(?P<pic>\d+)(?P<gender>[MF])(?P<age>\d{2})\.jpe?g$", re.I)
OL = ("morph", "order-learning")
RELEASE_CSV = "morph_2008_nonCommercial.csv"
CSV_COLUMNS = ("id_num", "gender", "age", "photo")


def _names(path: Path, delimiter: str, required=("filename",), age_col: str = "age") -> list[str]:
    rows = read_table(path, delimiter, required)
    for line, r in rows:
        if age_col in r:
            parse_age(r[age_col], f"{path}, line {line}")
    return [r["filename"] for _, r in rows]


def scan_release_csv(root: Path, path: Path) -> Scan:
    """Rows of the release's CSV: ages, subjects, gender and race from the file; listed photos that
    are not on disk are passed over and counted."""
    scan = Scan([], notes=[f"labels from {path.name} (not from the file names)"])
    for line, r in read_table(path, ",", CSV_COLUMNS):
        where = f"{path}, line {line}"
        age = parse_age(r["age"], where)
        img = root / r["photo"].strip()
        if not img.is_file():
            scan.skipped.append((str(img), f"listed in {path.name} but not on disk ({where})"))
            continue
        scan.rows.append(
            {
                "path": str(img),
                "age": age,
                "subject": r["id_num"].strip(),
                "gender": r["gender"].strip().upper(),
                "race": r.get("race", "").strip(),
            }
        )
    return scan


class MorphII(Source):
    name = "morph2"
    title = "MORPH-II"
    aliases = ("morph", "morph-ii", "morph_ii")
    layout = (
        "ROOT/**/ID_NNGAA.JPG (e.g. Album2/070081_2F36.JPG), any folder depth; "
        f"labels from ROOT/{RELEASE_CSV} when it is there"
    )
    get = "licensed by UNCW (https://uncw.edu/myuncw/research/innovation-commercialization/technology-portfolio/morph)"
    protocols = {
        "A": "published (Order Learning): 5,492 European subjects' images, 5 random 80/20 folds",
        "B1": "published (Order Learning): train on S1, test on S2+S3 (the paper's MORPH-II S1/S2/S3 subsets)",
        "B2": "published (Order Learning): train on S2, test on S1+S3",
        "C": "published (Order Learning): all 55,134 images, 5 subject-exclusive folds",
        "D": "published (Order Learning): all 55,134 images, 5 random folds",
        "coral": "published (CORAL): train / valid / test",
        "80-20": "ours: seeded subject-exclusive 80/20 over every image found (the paper's split is not published)",
    }
    default_protocol = "B2"
    subject_exclusive = ("C", "80-20")

    def scan(self, root: Path) -> Scan:
        if (root / RELEASE_CSV).is_file():
            return scan_release_csv(root, root / RELEASE_CSV)
        return scan_names(
            root,
            NAME,
            lambda p, m: {"age": float(m["age"]), "subject": m["subject"], "gender": m["gender"].upper()},
            describe="ID_NNGAA.JPG",
            ignore=(RELEASE_CSV,),
        )

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        index = FileIndex(rows)
        if protocol == "A":
            out = []
            for k in range(5):
                tr, te = (published(*OL, f"SettingA_fold{k}_{s}.txt") for s in ("train", "test"))
                out.append(listed_fold(f"fold{k}", index, _names(tr, ","), _names(te, ","), source=str(tr)))
            return out
        if protocol in ("B1", "B2"):
            subsets = [_names(published(*OL, f"SettingB_fold{j}.txt"), " ") for j in range(3)]
            t = 0 if protocol == "B1" else 1
            test = [n for j in range(3) if j != t for n in subsets[j]]
            return [listed_fold(f"S{t + 1}->rest", index, subsets[t], test, source=f"MORPH-II setting {protocol}")]
        if protocol in ("C", "D"):
            path = published(*OL, f"Setting{protocol}.txt")
            rows_ = read_table(path, "\t", ("filename", "fold", "age"))
            by_fold: dict[str, list[str]] = {}
            for line, r in rows_:
                parse_age(r["age"], f"{path}, line {line}")
                by_fold.setdefault(r["fold"].strip(), []).append(r["filename"])
            wanted = [str(k) for k in range(5)]
            if sorted(by_fold) != wanted:  # folds are looked up by number: 0-4, each present, no other
                raise AnnotationError(
                    f"{path}: setting {protocol} has folds 0-4, this list has folds "
                    f"{sorted(by_fold)}; restore the shipped file (reinstall cilf)"
                )
            return [
                listed_fold(
                    f"fold{k}",
                    index,
                    [n for j, ns in by_fold.items() if j != k for n in ns],
                    by_fold[k],
                    source=str(path),
                )
                for k in wanted
            ]
        if protocol == "coral":
            names = {}
            for s in ("train", "valid", "test"):
                path = published("morph", "coral-cnn", f"morph2_{s}.csv")
                names[s] = [r[""] for _, r in read_table(path, ",", ("", "age"))]
            return [listed_fold("coral", index, names["train"], names["test"], names["valid"], source="CORAL MORPH-II")]
        if protocol == "80-20":
            return holdout(rows)
        raise ValueError(protocol)
