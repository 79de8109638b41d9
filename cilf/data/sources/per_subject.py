"""Datasets whose ages are per subject, not in the file names: FACES and SCface.

Both read an ``ages.csv`` (columns ``subject,age``) that the user writes once from the database's
documentation; FACES without it falls back to the midpoint of its three age groups (said in the
scan notes). Protocol: the paper's 80/20, subject-exclusive and seeded (ours)."""

from __future__ import annotations

import re
from pathlib import Path

from ..protocols import Fold, holdout, kfold, parse_age, read_table
from .base import Scan, Source, scan_names

FACES_NAME = re.compile(
    r"^(?P<subject>\d+)_(?P<group>[ymo])_(?P<gender>[mf])_(?P<expr>[adfhns])_(?P<set>[ab])\.jpe?g$", re.I
)
FACES_GROUPS = {"y": (19, 31), "m": (39, 55), "o": (69, 80)}
SCFACE_NAME = re.compile(
    r"^(?P<subject>\d{3})_(?:cam(?P<cam>\d)_(?P<dist>\d)|(?P<mug>frontal|[LR]\d|IR_frontal))"
    r"\.(jpe?g|png|bmp)$",
    re.I,
)
SCFACE_DISTANCE_M = {"1": 4.20, "2": 2.60, "3": 1.00}


def read_subject_ages(path: Path) -> dict[str, float]:
    """{subject: age} from a CSV with columns subject, age (subject ids compared without leading zeros)."""
    out = {}
    for line, r in read_table(path, ",", ("subject", "age")):
        out[r["subject"].lstrip("0") or "0"] = parse_age(r["age"], f"{path}, line {line}")
    return out


class PerSubjectSource(Source):
    protocols = {
        "80-20": "ours: seeded subject-exclusive 80/20 (the paper's split is not published)",
        "5-fold": "ours: seeded subject-exclusive 5-fold",
    }
    subject_exclusive = ("80-20", "5-fold")

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        return kfold(rows, 5) if protocol == "5-fold" else holdout(rows)


class FACES(PerSubjectSource):
    name = "faces"
    title = "FACES"
    layout = "ROOT/**/ID_G_S_E_SET.jpg (e.g. 004_o_m_a_A.jpg; G = y/m/o age group) [+ ROOT/ages.csv: subject,age]"
    get = "https://faces.mpdl.mpg.de/imeji/ (Max Planck Institute for Human Development; research licence)"

    def scan(self, root: Path) -> Scan:
        ages_csv = root / "ages.csv"
        ages = read_subject_ages(ages_csv) if ages_csv.is_file() else None

        def row(p: Path, m: re.Match) -> dict:
            sid, group = m["subject"], m["group"].lower()
            lo, hi = FACES_GROUPS[group]
            if ages is None:
                age = (lo + hi) / 2
            elif (sid.lstrip("0") or "0") in ages:
                age = ages[sid.lstrip("0") or "0"]
            else:
                raise ValueError(f"subject {sid} is not in {ages_csv}")
            return {
                "age": age,
                "subject": sid,
                "group": "ymo".index(group),
                "gender": m["gender"].upper(),
                "expression": m["expr"].lower(),
            }

        scan = scan_names(root, FACES_NAME, row, describe="ID_G_S_E_SET.jpg", ignore=("ages.csv",))
        if ages is None:
            scan.notes.append("no ages.csv: each image gets its age group's midpoint (young 25, middle 47, old 74.5)")
        return scan


class SCface(PerSubjectSource):
    name = "scface"
    title = "SCface"
    aliases = ("sc-face",)
    layout = (
        "ROOT/**/SSS_camC_D.jpg (surveillance: camera C, distance D) and SSS_frontal.JPG (mugshots) "
        "+ ROOT/ages.csv: subject,age (from the database's subject descriptions)"
    )
    get = "https://www.scface.org/ (research licence)"
    marker = "ages.csv"

    def scan(self, root: Path) -> Scan:
        ages_csv = root / "ages.csv"
        ages = read_subject_ages(ages_csv)

        def row(p: Path, m: re.Match) -> dict:
            sid = m["subject"].lstrip("0") or "0"
            if sid not in ages:
                raise ValueError(f"subject {m['subject']} is not in {ages_csv}")
            return {
                "age": ages[sid],
                "subject": m["subject"],
                "camera": m["cam"] or "mugshot",
                "distance_m": SCFACE_DISTANCE_M.get(m["dist"] or "", 0.0),
            }

        return scan_names(root, SCFACE_NAME, row, describe="SSS_camC_D.jpg or SSS_frontal.jpg", ignore=("ages.csv",))
