"""FG-NET: 1,002 images of 82 subjects named ``SSSAaa[x].JPG`` (subject, age, optional letter), in
``ROOT/images/`` or anywhere below ROOT. Protocol: leave-one-person-out."""

from __future__ import annotations

import re
from pathlib import Path

from ..protocols import Fold, holdout, leave_one_subject_out
from .base import Scan, Source, scan_names

NAME = re.compile(r"^(?P<subject>\d{3})A(?P<age>\d{2})(?P<extra>[a-z]?)\.jpe?g$", re.I)


class FGNet(Source):
    name = "fgnet"
    title = "FG-NET"
    aliases = ("fg-net",)
    layout = "ROOT/images/001A02.JPG ... (subject 001, age 02)"
    get = "the FG-NET Aging Database (academic use; distributed by the FGNET consortium mirrors)"
    protocols = {
        "lopo": "standard: leave one person out (82 folds on the full set)",
        "80-20": "ours: seeded subject-exclusive 80/20 (the paper's split is not published)",
    }
    default_protocol = "lopo"
    subject_exclusive = ("lopo", "80-20")

    def scan(self, root: Path) -> Scan:
        return scan_names(
            root, NAME, lambda p, m: {"age": float(m["age"]), "subject": m["subject"]}, describe="SSSAaa.JPG"
        )

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        return leave_one_subject_out(rows) if protocol == "lopo" else holdout(rows)
