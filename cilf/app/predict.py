"""Predict ages of faces in photos, with the trained model or zero-shot from the CLIP prompts.

``predict`` detects every face of each photo, aligns it with the transform of ``cilf align``
(cilf/data/align.py: dlib HOG + 5 landmarks, the OpenCV cascades where dlib finds none) and
estimates its age: one :class:`FaceRow` per face. Rules for what is not a face:

- a photo where no detector finds a face gives one row with status ``no_face`` and no age;
- a SMALL image (shorter side below ``SMALL_SIDE`` = 128 px, e.g. a 25-px face crop or a 112-px
  SynthAge face) is taken as a face crop as it is, without detection (resize + centre crop, as with
  ``detect=False``), detector ``whole_image``: at that size the detectors miss most faces, and where
  they find one their tight re-framing made estimates worse (zero-shot on 120 SynthAge faces: MAE 9.5
  with detection, 6.0 whole);
- ``detect=False`` (CLI ``--aligned``) skips detection: each image is an aligned face crop.

``predict_paths`` estimates aligned crops given as paths (no detection), one dict per image.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cilf.app.infer import zero_shot_ages
from cilf.data.images import BadImageError, SkipLog, is_image_file, load_image
from cilf.model.cilf_model import CILF
from cilf.model.config import default_config
from cilf.persist.checkpoint import load_model
from cilf.persist.factory import create_model

SMALL_SIDE = 128  # px: an image with a shorter side below this is taken whole as one face crop
ALIGN_SIZE = 224  # side of the aligned crop (``cilf align``'s default); the model then preprocesses it
UPSAMPLE = 1  # dlib HOG upsampling: 1 finds faces from ~40 px; 0 only from ~80 px, about 4x faster


@functools.lru_cache(maxsize=4)
def face_aligner(upsample: int = UPSAMPLE):
    """The ``auto`` FaceAligner (ALIGN_SIZE px), built once per process: building one reads the dlib
    landmark model and the Haar cascades (about 0.9 s), more than detecting the faces of a photo."""
    from cilf.data.align import FaceAligner

    return FaceAligner(ALIGN_SIZE, "auto", upsample)


@dataclass
class FaceRow:
    """One face of one photo, or one photo without a face / that could not be read.

    ``status``: ``ok`` (age set), ``no_face``, ``missing`` (file not found), ``unreadable`` or
    ``not_finite`` (the model's output was NaN/inf); ``reason`` says why for all but ``ok``.
    ``box``: (x0, y0, x1, y1) in the original image's pixels. ``detector``: ``dlib``, ``opencv``,
    ``whole_image`` (an image under SMALL_SIDE px, taken whole without detection) or ``aligned`` (detect=False).
    ``score``: the detector's score (dlib: HOG SVM margin; opencv: merged cascade hits), else None.
    ``y0``, ``steps``, ``accepted``, ``spread``: the CILF estimate before correction and the
    correction's steps (None zero-shot)."""

    file: str
    face: int | None = None
    box: tuple[int, int, int, int] | None = None
    score: float | None = None
    detector: str | None = None
    age: float | None = None
    y0: float | None = None
    steps: int | None = None
    accepted: bool | None = None
    spread: float | None = None
    mode: str = ""
    status: str = "ok"
    reason: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box) if self.box is not None else None
        return d


def load_predictor(
    checkpoint: str | Path | None = None, device: str | torch.device = "cpu", clip_weights: str | Path | None = None
) -> tuple[CILF, bool]:
    """(model, zero_shot): a trained checkpoint, or the default CLIP used zero-shot.

    ``clip_weights``: the checkpoint's CLIP weights file where it was moved (``cilf.persist.checkpoint.load_model``)."""
    if checkpoint is not None:
        return load_model(checkpoint, device, clip_weights=clip_weights), False
    if clip_weights is not None:
        raise ValueError(
            "clip_weights (--clip-weights) names the CLIP weights of a trained checkpoint; pass "
            "--checkpoint too (zero-shot uses the bundled CLIP)"
        )
    return create_model(default_config()).to(device).eval(), True


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders expand to the image files inside them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if is_image_file(q)))
        else:
            out.append(p)
    return out


@torch.inference_mode()
def _estimate(
    model: CILF,
    images: list[torch.Tensor],
    zero_shot: bool,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[dict]:
    """Preprocessed images (each 3 x S x S) -> one dict per image: age (and y0, steps, accepted, spread)."""
    model.eval()
    if images:
        model.clip.warm_text_cache(progress)
    results: list[dict] = []
    for i in tqdm(range(0, len(images), batch_size), desc="predict", disable=not progress or not images, leave=False):
        feats = model.encode_image(torch.stack(images[i : i + batch_size]).to(device))
        if zero_shot:
            results += [{"age": float(a), "mode": "zero-shot"} for a in zero_shot_ages(model, feats)]
            continue
        out = model(features=feats)
        c = out.correction
        for j in range(len(out.age)):
            row = {"age": float(out.age[j]), "y0": float(out.y0[j]), "mode": "cilf"}
            if c is not None:
                row.update(steps=int(c.steps[j]), accepted=bool(c.accepted[j]), spread=float(c.spread[j]))
            results.append(row)
    return results


def _as_image(item, i: int) -> tuple[str, Image.Image]:
    """(name, RGB image) of a PIL image or an H x W x 3 uint8 array; ValueError otherwise."""
    name = f"<image {i}>"
    if isinstance(item, Image.Image):
        return name, item.convert("RGB")
    arr = np.asarray(item)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"image {i}: expected a file path, a PIL image or an H x W x 3 uint8 array, "
            f"got {type(item).__name__} of shape {getattr(arr, 'shape', '?')} / {arr.dtype}"
        )
    return name, Image.fromarray(arr, "RGB")


def _inputs(images) -> list[tuple[str, Image.Image | None, BadImageError | None]]:
    """(name, image or None, error or None) per input; paths (folders expanded) are read here."""
    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        images = [images]
    out = []
    for i, item in enumerate(images):
        if isinstance(item, (str, Path)):
            for p in expand_paths([item]):
                try:
                    out.append((str(p), load_image(p), None))
                except BadImageError as e:
                    out.append((str(p), None, e))
        else:
            out.append((*_as_image(item, i), None))
    return out


def face_crops(
    img: Image.Image, aligner=None, detect: bool = True, upsample: int = UPSAMPLE
) -> list[tuple[dict, Image.Image]]:
    """The faces ``predict`` estimates on: [(row fields: face, box, score, detector), crop], [] for no face.

    Detected faces are ``FaceAligner.align_all`` crops (ALIGN_SIZE px), left to right; see the module
    docstring for ``whole_image`` (shorter side < SMALL_SIDE) and ``detect=False``."""
    whole = {"face": 0, "box": (0, 0, *img.size), "score": None}
    if not detect:
        return [({**whole, "detector": "aligned"}, img)]
    if min(img.size) < SMALL_SIDE:
        return [({**whole, "detector": "whole_image"}, img)]
    if aligner is None:
        aligner = face_aligner(upsample)
    found = sorted(aligner.align_all(img), key=lambda fc: (fc[0].box[0], fc[0].box[1]))
    if found:
        return [
            ({"face": k, "box": f.box, "score": f.score, "detector": f.method}, crop)
            for k, (f, crop) in enumerate(found)
        ]
    return []


def predict(
    images,
    model: CILF | None = None,
    *,
    detect: bool = True,
    device: str | torch.device = "cpu",
    zero_shot: bool | None = None,
    batch_size: int = 32,
    progress: bool = False,
    upsample: int = UPSAMPLE,
) -> list[FaceRow]:
    """Ages of the faces in ``images``: file paths / folders, PIL images or H x W x 3 uint8 arrays.

    One :class:`FaceRow` per face found (box in the original image), one per photo without a face
    (status ``no_face``) and one per file that is missing or unreadable, in input order. ``model``:
    a CILF model (``load_predictor``); None = the bundled CLIP zero-shot. ``zero_shot`` defaults to
    ``model is None``. ``detect=False``: inputs are aligned face crops (no detection). ``upsample``: dlib
    HOG upsampling (1: faces from ~40 px; 0: from ~80 px, about 4x faster on a 512 x 600 photo)."""
    if model is None:
        model, zs = load_predictor(None, device)
        zero_shot = zs if zero_shot is None else zero_shot
    zero_shot = bool(zero_shot)
    aligner = face_aligner(upsample) if detect else None
    rows: list[FaceRow] = []
    todo: list[tuple[FaceRow, torch.Tensor]] = []
    inputs = _inputs(images)
    for name, img, err in tqdm(inputs, desc="detect", unit="img", disable=not progress or not detect, leave=False):
        if err is not None:
            status = "missing" if err.reason == "file not found" else "unreadable"
            rows.append(FaceRow(name, status=status, reason=err.reason))
            continue
        faces = face_crops(img, aligner, detect)
        if not faces:
            rows.append(FaceRow(name, status="no_face", reason="no face found"))
        for fields, crop in faces:
            row = FaceRow(name, **fields)
            rows.append(row)
            todo.append((row, model.preprocess(crop)))
    for (row, _), est in zip(todo, _estimate(model, [t for _, t in todo], zero_shot, batch_size, device, progress)):
        for k, v in est.items():
            setattr(row, k, v)
        if not all(math.isfinite(v) for v in est.values() if isinstance(v, float)):
            row.status, row.reason = "not_finite", "the model's prediction is not a finite number (NaN or infinite)"
            row.age = row.y0 = row.spread = None
    return rows


def predict_paths(
    model: CILF,
    paths: list[str | Path],
    zero_shot: bool = False,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[list[dict], SkipLog]:
    """Aligned crops only (no detection): one dict per readable image (path, age, and for the full model
    y0, steps, accepted, spread); unreadable files are skipped and listed in the returned SkipLog."""
    skips = SkipLog()
    good: list[tuple[Path, torch.Tensor]] = []
    for p in expand_paths(paths):
        try:
            good.append((p, model.preprocess(load_image(p))))
        except BadImageError as e:
            skips.add(e)
    est = _estimate(model, [t for _, t in good], zero_shot, batch_size, device, progress)
    return [{"path": str(p), **e} for (p, _), e in zip(good, est)], skips


COLUMNS = ("file", "face", "box", "score", "age", "y0", "steps")


def _cells(r: FaceRow) -> list[str]:
    """The table cells of one row; a row without an age shows its reason in the last column."""
    if r.age is None:
        return [r.file, "-", "-" if r.box is None else ",".join(map(str, r.box)), "-", "-", "-", r.reason]
    return [
        r.file,
        str(r.face),
        ",".join(map(str, r.box)),
        r.detector if r.score is None else f"{r.score:.2f}",
        f"{r.age:.1f}",
        "-" if r.y0 is None else f"{r.y0:.1f}",
        "-" if r.steps is None else str(r.steps),
    ]


def format_rows(rows: list[FaceRow]) -> str:
    """A fixed-width table, one line per row (columns ``COLUMNS``); score shows the detector name
    (``whole_image``, ``aligned``) where there is no detector score."""
    table = [list(COLUMNS)] + [_cells(r) for r in rows]
    widths = [max(len(line[k]) for line in table) for k in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in table)


def rows_csv(rows: list[FaceRow]) -> str:
    """CSV text of the rows (every FaceRow field; box split in box_x0, box_y0, box_x1, box_y1; None empty)."""
    import csv
    import io

    keys = [k for k in FaceRow.__dataclass_fields__ if k != "box"]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([*keys[:2], "box_x0", "box_y0", "box_x1", "box_y1", *keys[2:]])
    for r in rows:
        box = list(r.box) if r.box is not None else [""] * 4
        w.writerow(
            [
                *("" if getattr(r, k) is None else getattr(r, k) for k in keys[:2]),
                *box,
                *("" if getattr(r, k) is None else getattr(r, k) for k in keys[2:]),
            ]
        )
    return buf.getvalue()


def summary(rows: list[FaceRow]) -> str:
    """Lines for stderr: faces estimated, then the photos without a face, used whole, missing, unreadable."""
    photos = {r.file for r in rows}
    ok = [r for r in rows if r.status == "ok"]
    lines = [f"# {len(ok)} face(s) estimated in {len({r.file for r in ok})} of {len(photos)} image(s)"]
    groups = (
        ("no_face", "no face found in"),
        ("missing", "file not found"),
        ("unreadable", "unreadable"),
        ("not_finite", "prediction not a finite number (NaN or infinite) for"),
    )
    for status, text in groups:
        names = [f"{r.file}" + (f" ({r.reason})" if status == "unreadable" else "") for r in rows if r.status == status]
        if names:
            lines.append(f"# {text}: {', '.join(names)}")
    whole = [r.file for r in rows if r.detector == "whole_image"]
    if whole:
        lines.append(f"# small image(s) (< {SMALL_SIDE} px) taken whole as one face crop: {', '.join(whole)}")
    return "\n".join(lines)
