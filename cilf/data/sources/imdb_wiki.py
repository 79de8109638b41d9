"""IMDB-WIKI: ``imdb_crop/imdb.mat`` and/or ``wiki_crop/wiki.mat`` (struct with dob as a MATLAB
datenum, photo_taken, full_path, face_score, second_face_score[, celeb_id]). Age = photo_taken - birth
year. Images with no face (face_score < 1, the usual cleaning), a second face, or an age outside 0-100
are listed as skipped with the reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

from ..protocols import Fold, holdout
from .base import Scan, Source

PARTS = (("imdb_crop", "imdb"), ("wiki_crop", "wiki"))
MIN_FACE_SCORE = 1.0


def birth_year(datenum: float) -> int:
    """Year of a MATLAB datenum (day 1 = 1 Jan of year 0)."""
    return date.fromordinal(max(1, int(datenum) - 366)).year


class ImdbWiki(Source):
    name = "imdb-wiki"
    title = "IMDB-WIKI"
    aliases = ("imdb", "wiki", "imdbwiki")
    layout = "ROOT/imdb_crop/imdb.mat + ROOT/imdb_crop/NN/*.jpg and/or ROOT/wiki_crop/wiki.mat + images"
    get = "https://data.vision.ee.ethz.ch/cvl/rrothe/imdb-wiki/ (academic research)"
    protocols = {"80-20": "ours: seeded 80/20, subject-exclusive on IMDB's celeb_id (WIKI images by name)"}
    marker = "*_crop/*.mat"
    subject_exclusive = ("80-20",)

    def scan(self, root: Path) -> Scan:
        from scipy.io import loadmat

        scan = Scan([])
        for folder, key in PARTS:
            mat_path = root / folder / f"{key}.mat"
            if not mat_path.is_file():
                scan.notes.append(f"{mat_path} not found: no {key.upper()} images used")
                continue
            try:
                d = loadmat(mat_path, squeeze_me=True, struct_as_record=False)[key]
            except (KeyError, NotImplementedError, ValueError, OSError) as e:
                raise ValueError(f"{mat_path}: not an IMDB-WIKI annotation file ({e})") from None
            fields = [
                np.atleast_1d(getattr(d, f))
                for f in ("full_path", "dob", "photo_taken", "face_score", "second_face_score")
            ]
            ids = np.atleast_1d(d.celeb_id) if hasattr(d, "celeb_id") else np.atleast_1d(d.name)
            for rel, dob, taken, score, second, sid in zip(*fields, ids):
                p = root / folder / str(rel)
                age = int(taken) - birth_year(float(dob)) if np.isfinite(dob) else -1
                if not (np.isfinite(score) and score >= MIN_FACE_SCORE):
                    scan.skipped.append((str(p), f"face_score {score:.2f} < {MIN_FACE_SCORE} (no clear face)"))
                elif np.isfinite(second):
                    scan.skipped.append((str(p), "a second face in the image"))
                elif not 0 <= age <= 100:
                    scan.skipped.append((str(p), f"age {age} from dob/photo_taken is outside 0-100"))
                elif not p.is_file():
                    scan.skipped.append((str(p), f"image listed in {mat_path.name} not found"))
                else:
                    scan.rows.append({"path": str(p), "age": float(age), "subject": f"{key}:{sid}", "part": key})
        return scan

    def folds(self, protocol: str, rows: list[dict], root: Path) -> list[Fold]:
        return holdout(rows)
