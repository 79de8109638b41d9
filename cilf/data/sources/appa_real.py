"""APPA-REAL: ``gt_avg_{train,valid,test}.csv`` (file_name, num_ratings, apparent_age_avg,
apparent_age_std, real_age) beside ``train/ valid/ test/`` image folders. The target is the real
age; the apparent mean and std are kept for the epsilon-error. Aligned ``*_face.jpg`` crops are
used when present. The three splits are looked up by name: a missing ``gt_avg_SPLIT.csv`` is an error
naming it (the official protocol is exactly these three lists)."""

from __future__ import annotations

from pathlib import Path

from ..protocols import Fold, parse_age, read_table, split_by_column
from .base import DatasetNotFound, Scan, Source

COLUMNS = ("file_name", "apparent_age_avg", "apparent_age_std", "real_age")


class AppaReal(Source):
    name = "appa-real"
    title = "APPA-REAL"
    aliases = ("appa", "appareal")
    layout = "ROOT/gt_avg_{train,valid,test}.csv + ROOT/{train,valid,test}/NNNNNN.jpg[_face.jpg]"
    get = "https://chalearnlap.cvc.uab.cat/dataset/26/description/ (research use)"
    protocols = {"official": "published (Agustsson et al.): train / valid / test"}
    default_protocol = "official"
    marker = "gt_avg_*.csv"
    SPLITS = ("train", "valid", "test")

    def split_file(self, root: Path, split: str) -> Path:
        """``ROOT/gt_avg_SPLIT.csv``, or DatasetNotFound naming it and where to get it."""
        path = root / f"gt_avg_{split}.csv"
        if not path.is_file():
            raise DatasetNotFound(
                f"{path} not found: the {split} split of APPA-REAL's official protocol is this "
                f"list; download gt_avg_train.csv, gt_avg_valid.csv and gt_avg_test.csv with the "
                f"images into {root}; they come from {self.get}"
            )
        return path

    def check_root(self, root: Path) -> None:
        super().check_root(root)
        for split in self.SPLITS:
            self.split_file(root, split)

    def scan(self, root: Path) -> Scan:
        scan = Scan([])
        for split in self.SPLITS:
            path = self.split_file(root, split)
            for line, r in read_table(path, ",", COLUMNS):
                where = f"{path}, line {line}"
                real = parse_age(r["real_age"], where)
                mu = parse_age(r["apparent_age_avg"], where)
                sigma = parse_age(r["apparent_age_std"], where)
                plain = root / split / r["file_name"]
                face = root / split / f"{r['file_name']}_face.jpg"
                img = face if face.is_file() else plain
                if not img.is_file():
                    scan.skipped.append((str(plain), f"image not found ({where})"))
                    continue
                scan.rows.append(
                    {
                        "path": str(img),
                        "age": real,
                        "subject": "",
                        "split": split,
                        "apparent_mean": mu,
                        "apparent_std": sigma,
                    }
                )
        return scan

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        return split_by_column(rows, "split", "official")
