"""UTKFace: ``AGE_GENDER_RACE_DATE.jpg`` (aligned crops also end in ``.jpg.chip.jpg``). Known
mis-named files (a missing field) are listed as skipped. ``coral`` is the published 21-60 split."""

from __future__ import annotations

import re
from pathlib import Path

from ..protocols import FileIndex, Fold, holdout, listed_fold, parse_age, published, read_table
from .base import Scan, Source, scan_names

NAME = re.compile(r"^(?P<age>\d+)_(?P<gender>[01])_(?P<race>[0-4])_(?P<date>\d+)\.jpg(\.chip\.jpg)?$", re.I)


class UTKFace(Source):
    name = "utkface"
    title = "UTKFace"
    aliases = ("utk",)
    layout = "ROOT/**/AGE_GENDER_RACE_DATE.jpg[.chip.jpg]"
    get = "https://susanqq.github.io/UTKFace/ (non-commercial research)"
    protocols = {
        "coral": "published (CORAL, as MWR ships it): ages 21-60, train / test",
        "80-20": "ours: seeded random 80/20 over every image (UTKFace has no subject ids)",
    }
    default_protocol = "coral"

    def _row(self, p: Path, m: re.Match) -> dict:
        age = int(m["age"])
        if age > 120:
            raise ValueError(f"age {age} in the file name is outside [0, 120]")
        return {"age": float(age), "subject": "", "gender": "MF"[int(m["gender"])], "race": m["race"]}

    def scan(self, root: Path) -> Scan:
        return scan_names(root, NAME, self._row, describe="AGE_GENDER_RACE_DATE.jpg")

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        if protocol == "80-20":
            return holdout(rows, by_subject=False)
        names = {}
        for s in ("train", "test"):
            path = published("utkface", "coral-split", f"UTK_{s}_coral.csv")
            table = read_table(path, ",", ("filename", "age"))
            for line, r in table:
                parse_age(r["age"], f"{path}, line {line}")
            names[s] = [r["filename"] for _, r in table]
        # the list names the plain .jpg; aligned crops carry an extra .chip.jpg
        index = FileIndex([{"path": re.sub(r"\.chip\.jpg$", "", r["path"], flags=re.I)} for r in rows])
        return [listed_fold("coral", index, names["train"], names["test"], source="UTKFace CORAL split")]
