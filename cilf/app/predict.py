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

Large photos: a photo over ``DETECT_PIXELS`` (16 MP) is reduced by an integer factor before detection
(dlib's upsampling needs about 0.6 GB on a 12 MP photo, measured; boxes stay in the original's pixels and
the row's ``reason`` says so); a file over ``MAX_PIXELS`` (PIL's decompression-bomb limit, 89.5 MP) is not
decoded at all: one row with status ``too_large``.

Paths are walked by :func:`cilf.data.images.walk_images`: what it passes over (an unreadable folder or file,
another file type such as .heic or .txt inside a folder, a hidden entry, a linked folder, a path given
twice) is one row each, status ``unreadable``, ``passed_over`` or ``duplicate``, with the reason.

``predict`` streams (:func:`iter_predict`): it reads, detects, estimates and hands on the rows of about
``batch_size`` faces at a time, so no more than one decoded photo and one batch of face crops are held at
once and its memory does not grow with the number of inputs.

``predict_paths`` estimates aligned crops given as paths (no detection), one dict per image.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from cilf.app.infer import zero_shot_ages
from cilf.data.align import FaceAligner
from cilf.data.images import (
    DUPLICATE,
    NOT_FOUND,
    UNREADABLE_FILE,
    UNREADABLE_FOLDER,
    BadImageError,
    ImageWalk,
    SkipLog,
    load_image,
    walk_images,
)
from cilf.model.cilf_model import CILF
from cilf.model.config import default_config
from cilf.persist.checkpoint import load_model
from cilf.persist.factory import create_model

SMALL_SIDE = 128  # px: an image with a shorter side below this is taken whole as one face crop
ALIGN_SIZE = 224  # side of the aligned crop (``cilf align``'s default); the model then preprocesses it
UPSAMPLE = 1  # dlib HOG upsampling: 1 finds faces from ~40 px; 0 only from ~80 px, about 4x faster
# pixels a photo may have for detection; larger ones are reduced by an integer factor first. dlib's HOG with
# upsample=1 measured +0.22 GB on a 4 MP photo and +0.6 GB (23 s) on a 12 MP one: 16 MP keeps it under ~1 GB
DETECT_PIXELS = 16_000_000
MAX_PIXELS = 89_478_485  # PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS): larger files are not decoded
# statuses of a row whose image was read (an estimate, no face found, or a non-finite estimate)
READ_STATUSES = ("ok", "no_face", "not_finite")


@functools.lru_cache(maxsize=4)
def face_aligner(upsample: int = UPSAMPLE):
    """The ``auto`` FaceAligner (ALIGN_SIZE px), built once per process: building one reads the dlib
    landmark model and the Haar cascades (about 0.9 s), more than detecting the faces of a photo."""
    return FaceAligner(ALIGN_SIZE, "auto", upsample)


@dataclass
class FaceRow:
    """One face of one photo, or one photo without a face / that could not be read / was passed over.

    ``status``: ``ok`` (age set; never without an age), ``no_face``, ``missing`` (file or folder not found),
    ``unreadable`` (a file or folder that cannot be read, or not an image), ``too_large`` (over MAX_PIXELS,
    not decoded), ``duplicate`` (a file already estimated under this or another path), ``passed_over`` (a
    file of another type or a hidden entry found in a folder, a linked folder), ``not_finite`` (the model's
    output was NaN/inf) or ``not_estimated`` (no estimate came back: a bug); ``reason`` says why for all
    but ``ok``, and on an ``ok`` row of a photo over DETECT_PIXELS that it was reduced for detection.
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
    """The image files of ``paths`` (``walk_images``: files as given, folders searched, each file once)."""
    return walk_images(paths).files


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
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
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


def _check_array(item, i: int) -> None:
    """ValueError unless ``item`` is a PIL image or an H x W x 3 uint8 array (checked without copying it)."""
    if isinstance(item, Image.Image):
        return
    arr = np.asarray(item)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"image {i}: expected a file path, a PIL image or an H x W x 3 uint8 array, "
            f"got {type(item).__name__} of shape {getattr(arr, 'shape', '?')} / {arr.dtype}"
        )


def _as_image(item, i: int) -> tuple[str, Image.Image]:
    """(name, RGB image) of a PIL image or an H x W x 3 uint8 array; ValueError otherwise."""
    _check_array(item, i)
    name = f"<image {i}>"
    if isinstance(item, Image.Image):
        return name, item.convert("RGB")
    return name, Image.fromarray(np.asarray(item), "RGB")


def too_large(path: str | Path) -> str | None:
    """Why the image file ``path`` is not decoded (its header says it has over MAX_PIXELS), else None.

    Reads only the header. PIL's own decompression-bomb check is not silenced into a crash: its error
    becomes the reason; a file PIL cannot open at all is left to ``load_image`` (None)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError as e:
        return f"too large to decode safely ({e}); downscale it first"
    except Exception:  # noqa: BLE001 - missing, not an image, corrupt: load_image says which
        return None
    if w * h <= MAX_PIXELS:
        return None
    return (
        f"{w} x {h} px ({w * h / 1e6:.0f} MP) is above the {MAX_PIXELS / 1e6:.1f} MP cilf decodes (PIL's "
        f"decompression-bomb limit); downscale it first (e.g. to 8000 px on its longer side)"
    )


class _TooLarge(BadImageError):
    pass


def read_image(path: str | Path) -> Image.Image:
    """``load_image`` of a file, refused unread (BadImageError, status ``too_large``) over MAX_PIXELS."""
    why = too_large(path)
    if why is not None:
        raise _TooLarge(path, why)
    return load_image(path)


def reduction(size: tuple[int, int], budget: int = 0) -> int:
    """The integer factor (1: none) that brings an image of ``size`` to at most ``budget`` pixels
    (default DETECT_PIXELS, read at call time)."""
    budget = budget or DETECT_PIXELS
    pixels = size[0] * size[1]
    return 1 if pixels <= budget else math.ceil(math.sqrt(pixels / budget))


def face_crops(
    img: Image.Image, aligner=None, detect: bool = True, upsample: int = UPSAMPLE
) -> list[tuple[dict, Image.Image]]:
    """The faces ``predict`` estimates on: [(row fields: face, box, score, detector), crop], [] for no face.

    Detected faces are ``FaceAligner.align_all`` crops (ALIGN_SIZE px), left to right; see the module
    docstring for ``whole_image`` (shorter side < SMALL_SIDE) and ``detect=False``. A photo over
    DETECT_PIXELS is detected (and cropped) reduced by ``reduction``; boxes are in the original's pixels
    and the fields carry ``reason`` saying so."""
    whole = {"face": 0, "box": (0, 0, *img.size), "score": None}
    if not detect:
        return [({**whole, "detector": "aligned"}, img)]
    if min(img.size) < SMALL_SIDE:
        return [({**whole, "detector": "whole_image"}, img)]
    if aligner is None:
        aligner = face_aligner(upsample)
    k = reduction(img.size)
    seen = img.reduce(k) if k > 1 else img
    found = sorted(aligner.align_all(seen), key=lambda fc: (fc[0].box[0], fc[0].box[1]))
    note = {}
    if k > 1:
        note = {
            "reason": f"detected on the photo reduced {k}x ({img.size[0]} x {img.size[1]} px is over "
            f"{DETECT_PIXELS / 1e6:g} MP)"
        }
    return [
        (
            {
                "face": i,
                "box": f.box if k == 1 else tuple(min(int(v) * k, s) for v, s in zip(f.box, (*img.size, *img.size))),
                "score": f.score,
                "detector": f.method,
                **note,
            },
            crop,
        )
        for i, (f, crop) in enumerate(found)
    ]


# ---- what predict reads: paths walked, in-memory images, and the rows of what was passed over ----------------


@dataclass
class _Entry:
    """One input: a file to read (``path``), an in-memory image (``item``) or a finished row (``row``)."""

    name: str
    path: Path | None = None
    item: object = None
    index: int = 0
    row: FaceRow | None = None

    def load(self) -> Image.Image:
        if self.path is not None:
            return read_image(self.path)
        return _as_image(self.item, self.index)[1]


def walk_status(why: str) -> str:
    """The FaceRow status of something ``walk_images`` passed over, from its reason."""
    if why.startswith(NOT_FOUND):
        return "missing"
    if why.startswith((UNREADABLE_FILE, UNREADABLE_FOLDER)):
        return "unreadable"
    if why.startswith(DUPLICATE):
        return "duplicate"
    return "passed_over"


def _walk_entries(walk: ImageWalk, seen: dict[str, str]) -> list[_Entry]:
    """Entries of a walk: its files (a file already in ``seen``, real path -> first name, is a duplicate),
    then one finished row per thing it passed over."""
    out = []
    for p in walk.files:
        real = os.path.realpath(p)
        first = seen.get(real)
        if first is not None:
            why = f"{DUPLICATE} (the same file as {first})"
            out.append(_Entry(str(p), row=FaceRow(str(p), status="duplicate", reason=why)))
            continue
        seen[real] = str(p)
        out.append(_Entry(str(p), path=p))
    out += [_Entry(p, row=FaceRow(p, status=walk_status(why), reason=why)) for p, why in walk.skipped]
    return out


def _entries(images) -> list[_Entry]:
    """Every input in order: paths walked (consecutive paths in one walk), images checked but not copied."""
    if isinstance(images, ImageWalk):
        return _walk_entries(images, {})
    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        images = [images]
    out: list[_Entry] = []
    seen: dict[str, str] = {}
    run: list[str | Path] = []
    for i, item in enumerate(images):
        if isinstance(item, (str, Path)):
            run.append(item)
            continue
        if run:
            out += _walk_entries(walk_images(run), seen)
            run = []
        _check_array(item, i)
        out.append(_Entry(f"<image {i}>", item=item, index=i))
    if run:
        out += _walk_entries(walk_images(run), seen)
    return out


def _finish(model: CILF, todo: list[tuple[FaceRow, torch.Tensor]], zero_shot: bool, batch_size: int, device) -> None:
    """Estimate the crops of ``todo`` and fill their rows; a row is ``ok`` only with a finite age."""
    est = _estimate(model, [t for _, t in todo], zero_shot, batch_size, device)
    for (row, _), e in zip(todo, est):
        for k, v in e.items():
            setattr(row, k, v)
        if not all(math.isfinite(v) for v in e.values() if isinstance(v, float)):
            row.status, row.reason = "not_finite", "the model's prediction is not a finite number (NaN or infinite)"
            row.age = row.y0 = row.spread = None
        elif row.age is not None:
            row.status = "ok"
    for row, _ in todo:
        if row.status == "pending" or (row.status == "ok" and row.age is None):
            row.status, row.reason = "not_estimated", "no estimate came back for this face (a bug: please report it)"
            row.age = None


def iter_predict(
    images,
    model: CILF | None = None,
    *,
    detect: bool = True,
    device: str | torch.device = "cpu",
    zero_shot: bool | None = None,
    batch_size: int = 32,
    progress: bool = False,
    upsample: int = UPSAMPLE,
) -> Iterator[FaceRow]:
    """The rows of :func:`predict`, in input order, handed on batch by batch (see there for the arguments).

    Reads one image at a time, keeps its face crops (preprocessed) until ``batch_size`` of them are waiting,
    estimates them and yields the rows so far: no more than one decoded image and about one batch of crops
    are alive at once, whatever the number of inputs."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
    if model is None:
        model, zs = load_predictor(None, device)
        zero_shot = zs if zero_shot is None else zero_shot
    zero_shot = bool(zero_shot)
    entries = _entries(images)
    aligner = face_aligner(upsample) if detect and any(e.row is None for e in entries) else None
    if any(e.row is None for e in entries):
        model.eval()
        model.clip.warm_text_cache(progress)
    pending: list[FaceRow] = []
    todo: list[tuple[FaceRow, torch.Tensor]] = []
    with tqdm(total=len(entries), desc="predict", unit="img", disable=not progress, leave=False) as bar:
        for e in entries:
            bar.update()
            if e.row is not None:
                pending.append(e.row)
                continue
            try:
                img = e.load()
            except BadImageError as err:
                status = "too_large" if isinstance(err, _TooLarge) else "unreadable"
                if err.reason == "file not found":
                    status = "missing"
                pending.append(FaceRow(e.name, status=status, reason=err.reason))
                continue
            faces = face_crops(img, aligner, detect)
            del img
            if not faces:
                pending.append(FaceRow(e.name, status="no_face", reason="no face found"))
            for fields, crop in faces:
                row = FaceRow(e.name, **{"status": "pending", **fields})
                pending.append(row)
                todo.append((row, model.preprocess(crop)))
            faces = crop = None  # this photo's pixels are gone now: only its preprocessed crops wait
            if len(todo) >= batch_size:
                _finish(model, todo, zero_shot, batch_size, device)
                done, pending, todo = pending, [], []
                yield from done
        if todo:
            _finish(model, todo, zero_shot, batch_size, device)
        yield from pending


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
    """Ages of the faces in ``images``: file paths / folders (or a ``walk_images`` result), PIL images or
    H x W x 3 uint8 arrays.

    One :class:`FaceRow` per face found (box in the original image), one per photo without a face
    (status ``no_face``), one per file that is missing, unreadable or too large and one per thing the walk
    passed over (duplicates included), in input order. ``model``: a CILF model (``load_predictor``); None =
    the bundled CLIP zero-shot. ``zero_shot`` defaults to ``model is None``. ``detect=False``: inputs are
    aligned face crops (no detection). ``batch_size``: faces per forward pass (at least 1). ``upsample``: dlib
    HOG upsampling (1: faces from ~40 px; 0: from ~80 px, about 4x faster on a 512 x 600 photo). Streams
    (:func:`iter_predict`): memory does not grow with the number of inputs, only the (small) rows do."""
    return list(
        iter_predict(
            images,
            model,
            detect=detect,
            device=device,
            zero_shot=zero_shot,
            batch_size=batch_size,
            progress=progress,
            upsample=upsample,
        )
    )


def predict_paths(
    model: CILF,
    paths: list[str | Path],
    zero_shot: bool = False,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[list[dict], SkipLog]:
    """Aligned crops only (no detection): one dict per readable image (path, age, and for the full model
    y0, steps, accepted, spread); unreadable files, and whatever the walk passed over, are listed in the
    returned SkipLog. Streams: one batch of images in memory at a time."""
    skips = SkipLog()
    results: list[dict] = []
    for row in iter_predict(
        walk_images(paths),
        model,
        detect=False,
        device=device,
        zero_shot=zero_shot,
        batch_size=batch_size,
        progress=progress,
    ):
        if row.status in ("ok", "not_finite"):
            keys = ("age", "y0", "steps", "accepted", "spread", "mode")
            results.append({"path": row.file, **{k: getattr(row, k) for k in keys if getattr(row, k) is not None}})
        else:
            skips.add(BadImageError(row.file, row.reason))
    return results, skips


COLUMNS = ("file", "face", "box", "score", "age", "y0", "steps")


def shown(text: str) -> str:
    """``text`` safe for one line of a terminal: control characters (a newline in a file name, an escape
    sequence) and characters that cannot be printed are written as escapes (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii") for c in text
    )


def _cells(r: FaceRow) -> list[str]:
    """The table cells of one row; a row without an age shows its reason in the last column."""
    if r.age is None:
        return [shown(r.file), "-", "-" if r.box is None else ",".join(map(str, r.box)), "-", "-", "-", shown(r.reason)]
    return [
        shown(r.file),
        str(r.face),
        ",".join(map(str, r.box)),
        r.detector if r.score is None else f"{r.score:.2f}",
        f"{r.age:.1f}",
        "-" if r.y0 is None else f"{r.y0:.1f}",
        "-" if r.steps is None else str(r.steps),
    ]


def format_rows(rows: list[FaceRow]) -> str:
    """A fixed-width table, one line per row (columns ``COLUMNS``); score shows the detector name
    (``whole_image``, ``aligned``) where there is no detector score. Rows passed over by the walk (other
    file types, hidden entries) are left to the summary; names are shown with control characters escaped."""
    table = [list(COLUMNS)] + [_cells(r) for r in rows if r.status != "passed_over"]
    widths = [max(len(line[k]) for line in table) for k in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1] for line in table)


def rows_csv(rows: list[FaceRow]) -> str:
    """CSV text of the rows (every FaceRow field; box split in box_x0, box_y0, box_x1, box_y1; None empty)."""
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


# (status, its count in the first line, the line naming its files, whether each name is followed by its reason)
_GROUPS = (
    ("no_face", "without a face", "no face found in", False),
    ("missing", "not found", "not found", False),
    ("unreadable", "unreadable", "unreadable", True),
    ("too_large", "too large", "too large, not decoded", True),
    ("not_finite", "not finite", "prediction not a finite number (NaN or infinite) for", False),
    ("not_estimated", "not estimated", "no estimate came back (a bug: please report it) for", False),
    ("duplicate", "duplicate(s)", "given more than once, estimated once", True),
)


def _names(items: list[str], limit: int = 10) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def summary(rows: list[FaceRow]) -> str:
    """Lines for stderr: faces estimated in how many images, with a count per other outcome; then the images
    without a face, missing, unreadable, too large, duplicated and passed over (counted by reason), each
    named (the first 10), and the small images taken whole. Names are shown with control characters escaped."""
    images = {r.file for r in rows if r.status not in ("missing", "duplicate", "passed_over")}
    ok = [r for r in rows if r.status == "ok"]
    others = ""
    for status, counted, _, _ in _GROUPS:  # images (a duplicate: each extra path)
        hits = [r.file for r in rows if r.status == status]
        n = len(hits) if status == "duplicate" else len(set(hits))
        others += f"; {n} {counted}" if n else ""
    n_over = sum(r.status == "passed_over" for r in rows)
    others += f"; {n_over} passed over" if n_over else ""
    lines = [f"# {len(ok)} face(s) estimated in {len({r.file for r in ok})} of {len(images)} image(s){others}"]
    for status, _, text, why in _GROUPS:
        names = list(
            dict.fromkeys(shown(r.file) + (f" ({shown(r.reason)})" if why else "") for r in rows if r.status == status)
        )
        if names:
            lines.append(f"# {text}: {_names(names)}")
    over = [r for r in rows if r.status == "passed_over"]
    if over:
        by: dict[str, int] = {}
        for r in over:
            key = r.reason.split(" (")[0]
            by[key] = by.get(key, 0) + 1
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(by.items()))
        lines.append(f"# passed over ({kinds}): {_names([f'{shown(r.file)} ({shown(r.reason)})' for r in over], 5)}")
    whole = [shown(r.file) for r in rows if r.detector == "whole_image"]
    if whole:
        lines.append(f"# small image(s) (< {SMALL_SIDE} px) taken whole as one face crop: {_names(whole)}")
    reduced = list(dict.fromkeys(shown(r.file) for r in rows if r.status == "ok" and r.reason))
    if reduced:
        lines.append(f"# large photo(s) detected reduced (over {DETECT_PIXELS / 1e6:g} MP): {_names(reduced)}")
    return "\n".join(lines)
