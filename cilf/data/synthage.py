"""SynthAge: procedural faces with known age, deterministic from a seed (docs/method.md, section 9).

Age acts through published mechanisms:
- craniofacial growth by the cardioidal strain transformation (Todd & Mark, 1980): in polar
  coordinates about the head centre, R' = R (1 + k (1 - cos theta)), theta from the vertex, with
  k rising through childhood, so the lower face lengthens and the eyes move up the head;
- skin ageing: forehead lines, crow's feet, nasolabial and marionette folds, under-eye bags,
  age spots, sagging jaw line, thinning lips;
- hair greying and (mostly male) recession and thinning.
Each subject has its own ageing rate and lifestyle offset, so apparent (skin) age differs from
true age as in real data. Nuisance: identity (face proportions), sex, skin tone, hair colour,
pose (roll, yaw), lighting, background, blur, noise, JPEG quality, glasses, beard.
Subjects are longitudinal (several ages each), so subject-exclusive splits are real.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from ..io import FolderLock, sha256_file, waiting_lock, write_bytes, write_text
from ..utils import data_dir

VERSION = 1
SKIN_TONES = np.array(
    [(241, 208, 185), (224, 180, 150), (198, 148, 112), (160, 110, 78), (112, 72, 50), (80, 52, 38)], float
)
HAIR_COLOURS = np.array(
    [(30, 24, 20), (60, 40, 28), (105, 72, 45), (160, 120, 70), (200, 165, 105), (140, 60, 30)], float
)
EYE_COLOURS = np.array([(60, 40, 25), (90, 60, 30), (70, 100, 130), (80, 110, 80)], float)
GREY = np.array([205.0, 205.0, 210.0])


@dataclass
class SynthAgeSpec:
    n_images: int = 10000
    seed: int = 0
    image_size: int = 112
    images_per_subject: int = 5
    age_min: int = 1
    age_max: int = 90
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train/val/test, by subject

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "version": VERSION}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


@dataclass
class Subject:
    sid: int
    sex: str  # "M" | "F"
    skin: np.ndarray
    hair: np.ndarray
    eyes: np.ndarray
    face_w: float
    face_h: float
    jaw: float
    eye_gap: float
    nose_len: float
    mouth_w: float
    rate: float  # skin ageing rate
    offset: float  # lifestyle offset, years
    grey_onset: float
    grey_speed: float
    recession: float
    glasses: float  # probability of glasses in a photo
    beard: float
    long_hair: bool
    bg: np.ndarray
    shirt: np.ndarray


def _mix(palette: np.ndarray, t: float) -> np.ndarray:
    t = float(np.clip(t, 0, 1)) * (len(palette) - 1)
    i = min(int(t), len(palette) - 2)
    return palette[i] * (1 - (t - i)) + palette[i + 1] * (t - i)


def sample_subject(rng: np.random.Generator, sid: int) -> Subject:
    sex = "F" if rng.random() < 0.5 else "M"
    tone = rng.random()
    hair_t = np.clip(rng.normal(0.25 + 0.3 * (1 - tone), 0.25), 0, 1) if tone < 0.6 else rng.random() * 0.25
    return Subject(
        sid=sid,
        sex=sex,
        skin=_mix(SKIN_TONES, tone),
        hair=_mix(HAIR_COLOURS, hair_t),
        eyes=EYE_COLOURS[rng.integers(len(EYE_COLOURS))] if tone < 0.4 else EYE_COLOURS[rng.integers(2)],
        face_w=rng.normal(1.0, 0.05) * (0.96 if sex == "F" else 1.0),
        face_h=rng.normal(1.0, 0.04),
        jaw=rng.normal(1.0, 0.06) * (0.93 if sex == "F" else 1.03),
        eye_gap=rng.normal(1.0, 0.06),
        nose_len=rng.normal(1.0, 0.08),
        mouth_w=rng.normal(1.0, 0.08),
        rate=float(np.clip(rng.normal(1.0, 0.15), 0.7, 1.35)),
        offset=float(rng.normal(0, 4)),
        grey_onset=float(rng.normal(42, 7)),
        grey_speed=float(np.clip(rng.normal(1.0, 0.25), 0.5, 1.6)),
        recession=float(rng.random() ** 0.7 if sex == "M" else 0.1 * rng.random()),
        glasses=float(rng.random() * 0.6),
        beard=float(rng.random() if sex == "M" else 0.0),
        long_hair=bool(rng.random() < (0.8 if sex == "F" else 0.1)),
        bg=rng.uniform(40, 230, 3),
        shirt=rng.uniform(20, 220, 3),
    )


def skin_age(s: Subject, age: float) -> float:
    """Apparent age of the skin: the subject's own rate and lifestyle act after 20."""
    return age if age <= 20 else max(20.0, 20 + (age - 20) * s.rate + s.offset * min(1, (age - 20) / 20))


def growth_strain(age: float) -> float:
    """Cardioidal strain parameter k: rises through childhood, saturates in adulthood."""
    return 0.04 + 0.36 * (1 - math.exp(-age / 7.0))


def _ramp(x: float, start: float, width: float) -> float:
    return float(np.clip((x - start) / width, 0.0, 1.0))


def _col(c: np.ndarray, f: float = 1.0) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(c * f, 0, 255))


class _Canvas:
    """Maps canonical face coordinates (head radius 1, y down) through the strain to pixels."""

    def __init__(self, size: int, k: float, s: Subject, *, yaw: float, scale: float, dx: float, dy: float):
        self.k, self.s, self.yaw = k, s, yaw
        height = 2 + 2 * k  # vertical extent of the strained unit circle
        self.unit = size * 0.78 * scale / height
        self.cx = size / 2 + dx * size
        self.cy = size * 0.1 + self.unit * 1.0 + dy * size  # vertex near the top of the frame
        self.line_width = max(1, int(round(self.unit * 0.025)))  # of creases, lids, frames (pixels)

    def strain(self, x: float, y: float) -> tuple[float, float]:
        r = math.hypot(x, y)
        if r == 0:
            return 0.0, 0.0
        cos_t = -y / r  # theta measured from the vertex (up)
        f = 1 + self.k * (1 - cos_t)
        return x * f, y * f

    def px(self, x: float, y: float, feature: bool = True) -> tuple[float, float]:
        x, y = x * self.s.face_w, y * self.s.face_h
        x, y = self.strain(x, y)
        if feature:  # yaw shifts inner features sideways, a cheap out-of-plane rotation
            x += self.yaw * 0.35 * (1 - min(abs(y), 1.5) / 3)
        return self.cx + x * self.unit, self.cy + y * self.unit

    def pts(self, points, feature: bool = True) -> list[tuple[float, float]]:
        return [self.px(x, y, feature) for x, y in points]


@dataclass
class _Look:
    """Everything one photo of subject ``s`` at ``age`` shows, decided before any drawing."""

    s: Subject
    age: float
    k: float  # cardioidal strain
    skin_age: float
    grey: float
    recede: float
    wrinkle: float
    sag: float
    glasses: bool
    beard: bool
    yaw: float
    skin: np.ndarray | None = None  # RGB, this photo's exposure of the subject's skin
    hair: np.ndarray | None = None  # RGB after greying
    line: tuple[int, int, int] | None = None  # colour of skin creases

    # canonical face layout (head radius 1, y down)
    eye_y, eye_r = 0.15, 0.13

    @property
    def eye_x(self) -> float:
        return 0.34 * self.s.eye_gap

    @property
    def hairline(self) -> float:
        return -0.45 - 0.45 * self.recede

    @property
    def nose_y(self) -> float:
        return 0.48 * self.s.nose_len

    @property
    def mouth_y(self) -> float:
        return self.nose_y + 0.22 + 0.05 * self.k

    @property
    def mouth_w(self) -> float:
        return 0.2 * self.s.mouth_w

    @property
    def lip_h(self) -> float:
        return 0.06 * (1 - 0.5 * self.wrinkle) * (1.3 if self.s.sex == "F" else 1.0)

    @property
    def lip_colour(self) -> tuple[int, int, int]:
        if self.s.sex == "F":
            return _col(np.array([170, 70, 75]) * 0.5 + self.skin * 0.5)
        return _col(self.skin * np.array([1.0, 0.78, 0.78]))


def _age_look(s: Subject, age: float, rng: np.random.Generator) -> _Look:
    """Growth, skin ageing, greying, recession; this photo's glasses, beard and yaw (draws from rng)."""
    sa = skin_age(s, age)
    return _Look(
        s=s,
        age=age,
        k=growth_strain(age),
        skin_age=sa,
        grey=_ramp(age, s.grey_onset, 25 / s.grey_speed),
        recede=s.recession * _ramp(age, 22, 35) if age > 18 else 0.0,
        wrinkle=drawn_skin_signs(sa)["wrinkle"],
        sag=drawn_skin_signs(sa)["sag"],
        glasses=rng.random() < s.glasses * _ramp(age, 8, 40) + 0.05 * (age > 40),
        beard=s.sex == "M" and age >= 18 and rng.random() < s.beard * 0.7,
        yaw=float(rng.normal(0, 0.08)),
    )


def _background(s: Subject, ss: int, rng: np.random.Generator) -> np.ndarray:
    """Vertical gradient of the subject's backdrop: (ss x ss x 3) float."""
    top, bottom = s.bg * rng.uniform(0.85, 1.15), s.bg * rng.uniform(0.6, 1.0)
    t = np.linspace(0, 1, ss)[:, None, None]
    return (top * (1 - t) + bottom * t) * np.ones((1, ss, 1))


def _colour_look(f: _Look, rng: np.random.Generator) -> None:
    """This photo's skin exposure, hair colour after greying, crease colour (in place)."""
    f.skin = f.s.skin * rng.uniform(0.95, 1.05)
    f.hair = f.s.hair * (1 - f.grey) + GREY * f.grey
    if f.age < 4:
        f.hair = f.hair * 0.6 + f.s.skin * 0.4  # sparse baby hair
    f.line = _col(f.skin, 0.72 - 0.1 * f.wrinkle)


def _head_outline(f: _Look) -> list[tuple[float, float]]:
    """72 canonical points of the head: a circle, widened at the jaw, sagging at the jowls."""
    outline = []
    for i in range(72):
        th = 2 * math.pi * i / 72
        x, y = math.sin(th), -math.cos(th)
        if y > 0.3:
            x *= f.s.jaw * (1 + 0.08 * f.sag * max(0, 1 - abs(abs(x) - 0.7) / 0.4))
            y *= 1 + 0.03 * f.sag
        outline.append((x, y))
    return outline


def _draw_head(img: Image.Image, cv: _Canvas, f: _Look, *, head: list[tuple[float, float]]) -> None:
    """Long hair behind, shirt, neck, ears, then the head (``head``: its outline in pixels)."""
    d = ImageDraw.Draw(img)
    neck_w = 0.42 * cv.unit * (0.8 if f.s.sex == "F" else 1.0)
    _, chin_y = cv.px(0, 1.0, feature=False)
    if f.s.long_hair and f.age > 3:
        hb = cv.pts(
            [
                (math.sin(a) * 1.18, -math.cos(a) * 1.1 + (0.9 if abs(a) > 1.6 else 0))
                for a in np.linspace(-2.8, 2.8, 30)
            ],
            feature=False,
        )
        d.polygon(hb, fill=_col(f.hair, 0.85))
    d.ellipse(
        [cv.cx - 2.2 * cv.unit, chin_y + 0.45 * cv.unit, cv.cx + 2.2 * cv.unit, chin_y + 3.5 * cv.unit],
        fill=_col(f.s.shirt),
    )
    d.rectangle(
        [cv.cx - neck_w, chin_y - 0.6 * cv.unit, cv.cx + neck_w, chin_y + 0.8 * cv.unit], fill=_col(f.skin, 0.85)
    )
    for sx in (-1, 1):
        ex, ey = cv.px(sx * 0.98, 0.2, feature=False)
        d.ellipse(
            [ex - 0.12 * cv.unit, ey - 0.2 * cv.unit, ex + 0.12 * cv.unit, ey + 0.2 * cv.unit], fill=_col(f.skin, 0.9)
        )
    d.polygon(head, fill=_col(f.skin))


def _draw_hair(img: Image.Image, cv: _Canvas, f: _Look) -> None:
    """Hair on top: enlarged outline above the hairline; recession raises it, opens the temples, thins it."""
    thin = 1.0 - 0.75 * max(0.0, f.recede - 0.45) / 0.55
    if not (thin > 0.05 and f.age >= 1):
        return
    pts = []
    for a in np.linspace(-1.75, 1.75, 40):
        pts.append((math.sin(a) * 1.06, -math.cos(a) * 1.06))
    for a in np.linspace(1.75, -1.75, 40):
        x = math.sin(a) * 0.98
        temple = 0.25 * f.recede * math.exp(-((abs(x) - 0.55) ** 2) / 0.04)
        y = max(f.hairline + 0.15 * x * x + temple, -math.cos(a) * 0.98)
        pts.append((x, y))
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).polygon(cv.pts(pts, feature=False), fill=(*_col(f.hair), int(255 * thin)))
    img.paste(layer, (0, 0), layer)


def _draw_brow_region(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look) -> None:
    """Forehead lines (more with skin age, never into the hair) and brows."""
    w = cv.line_width
    for i in range(int(round(4 * f.wrinkle))):
        y = -0.12 - 0.09 * i
        if y < f.hairline + 0.1:
            break
        d.line(cv.pts([(x, y + 0.02 * math.sin(3 * x + i)) for x in np.linspace(-0.4, 0.4, 9)]), fill=f.line, width=w)
    brow_c = _col(f.hair * (0.9 if f.grey < 0.5 else 1.0))
    for sx in (-1, 1):
        brow = [(sx * (f.eye_x + dx), f.eye_y - 0.17 - 0.05 * math.cos(dx * 6)) for dx in np.linspace(-0.14, 0.15, 6)]
        d.line(cv.pts(brow), fill=brow_c, width=max(1, int(w * (2.2 if f.s.sex == "M" else 1.5))))


def _draw_eyes(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look) -> None:
    """White, iris, pupil, upper lid (drooping with age), bags, crow's feet."""
    droop, w = 0.35 * f.sag, cv.line_width
    for sx in (-1, 1):
        ex, ey = cv.px(sx * f.eye_x, f.eye_y)
        rx, ry = f.eye_r * cv.unit, f.eye_r * 0.55 * cv.unit
        d.ellipse([ex - rx, ey - ry, ex + rx, ey + ry], fill=(240, 240, 235))
        ir = ry * 0.95
        ix = ex + f.yaw * 0.15 * cv.unit
        d.ellipse([ix - ir, ey - ir, ix + ir, ey + ir], fill=_col(f.s.eyes))
        d.ellipse([ix - ir * 0.45, ey - ir * 0.45, ix + ir * 0.45, ey + ir * 0.45], fill=(15, 12, 12))
        d.chord(
            [ex - rx * 1.05, ey - ry * 1.3, ex + rx * 1.05, ey + ry * (0.2 + 1.6 * droop)],
            180,
            360,
            fill=_col(f.skin, 0.93),
        )
        d.arc([ex - rx, ey - ry, ex + rx, ey + ry], 190, 350, fill=(40, 30, 30), width=w)
        if f.wrinkle > 0.2:
            d.arc(
                [ex - rx * 0.9, ey + ry * 0.2, ex + rx * 0.9, ey + ry * (1.4 + f.wrinkle)],
                20,
                160,
                fill=f.line,
                width=w,
            )
        for j in range(int(drawn_skin_signs(f.skin_age)["creases"])):
            ang = (j - 1) * 0.35
            x0, y0 = ex + sx * rx * 1.15, ey
            d.line(
                [(x0, y0), (x0 + sx * math.cos(ang) * 0.14 * cv.unit, y0 + math.sin(ang) * 0.14 * cv.unit)],
                fill=f.line,
                width=w,
            )


def _draw_lips(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look) -> None:
    mx, my = cv.px(0, f.mouth_y)
    mw, lip_h = f.mouth_w, f.lip_h
    d.ellipse([mx - mw * cv.unit, my - lip_h * cv.unit, mx + mw * cv.unit, my + lip_h * cv.unit], fill=f.lip_colour)


def _draw_nose_and_mouth(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look) -> None:
    """Nose, lips (thinning, corners dropping with age), nasolabial and marionette folds."""
    nose_y, mouth_y, mw, w = f.nose_y, f.mouth_y, f.mouth_w, cv.line_width
    nx, ny = cv.px(0, nose_y)
    d.line(cv.pts([(-0.06, f.eye_y + 0.05), (-0.08, nose_y - 0.05)]), fill=_col(f.skin, 0.85), width=w)
    for sx in (-1, 1):
        d.ellipse(
            [
                nx + sx * 0.07 * cv.unit - 0.035 * cv.unit,
                ny - 0.025 * cv.unit,
                nx + sx * 0.07 * cv.unit + 0.035 * cv.unit,
                ny + 0.025 * cv.unit,
            ],
            fill=_col(f.skin, 0.6),
        )
    _draw_lips(d, cv, f)
    corner = 0.04 * f.sag
    d.line(cv.pts([(-mw, mouth_y + corner), (0, mouth_y - 0.01), (mw, mouth_y + corner)]), fill=(90, 45, 45), width=w)
    if f.wrinkle > 0.05:
        fold_c = _col(f.skin, 1 - 0.3 * f.wrinkle)
        for sx in (-1, 1):
            d.line(
                cv.pts([(sx * 0.12, nose_y - 0.02), (sx * 0.22, nose_y + 0.12), (sx * (mw + 0.05), mouth_y + 0.05)]),
                fill=fold_c,
                width=w,
            )
            if f.sag > 0.2:
                d.line(
                    cv.pts([(sx * (mw + 0.02), mouth_y + 0.04), (sx * (mw + 0.05), mouth_y + 0.22)]),
                    fill=fold_c,
                    width=w,
                )


def _draw_age_spots(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look, *, rng: np.random.Generator) -> None:
    """Up to 12 darker spots from skin age 50, never on the eyes (draws from rng)."""
    for _ in range(int(drawn_skin_signs(f.skin_age)["spots"] * rng.random())):
        x, y = rng.uniform(-0.7, 0.7), rng.uniform(-0.4, 0.6)
        if abs(x) < 0.5 and 0.0 < y < 0.3:
            continue  # not on the eyes
        px, py = cv.px(x, y)
        r = cv.unit * rng.uniform(0.015, 0.03)
        d.ellipse([px - r, py - r, px + r, py + r], fill=_col(f.skin, 0.75))


def _draw_beard(
    img: Image.Image, cv: _Canvas, f: _Look, *, jaw: list[tuple[float, float]], rng: np.random.Generator
) -> None:
    """Translucent beard from the jaw (``jaw``: its outline points in pixels) up around the mouth; lips on top."""
    mouth_y = f.mouth_y
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    pts = (
        jaw
        + cv.pts([(0.25, mouth_y + 0.12), (0.28, mouth_y - 0.1), (-0.28, mouth_y - 0.1), (-0.25, mouth_y + 0.12)])[::-1]
    )
    ImageDraw.Draw(layer).polygon(pts, fill=(*_col(f.hair, 0.9), int(255 * rng.uniform(0.35, 0.85))))
    img.paste(layer, (0, 0), layer)
    _draw_lips(ImageDraw.Draw(img), cv, f)


def _draw_glasses(d: ImageDraw.ImageDraw, cv: _Canvas, f: _Look, *, rng: np.random.Generator) -> None:
    """Rounded frames round both eyes and a bridge; frame colour drawn from rng."""
    frame_c = tuple(int(v) for v in rng.choice([(20, 20, 20), (90, 60, 30), (150, 150, 160)]))
    w = cv.line_width
    for sx in (-1, 1):
        ex, ey = cv.px(sx * f.eye_x, f.eye_y)
        r = f.eye_r * 1.45 * cv.unit
        d.rounded_rectangle(
            [ex - r, ey - r * 0.75, ex + r, ey + r * 0.75], radius=r * 0.4, outline=frame_c, width=w + 1
        )
    d.line(
        cv.pts([(-f.eye_x + f.eye_r * 1.45, f.eye_y), (f.eye_x - f.eye_r * 1.45, f.eye_y)]), fill=frame_c, width=w + 1
    )


def _camera(img: Image.Image, bg: np.ndarray, *, size: int, rng: np.random.Generator) -> Image.Image:
    """Roll over the backdrop, downsample to ``size``, lighting, noise, sometimes blur (draws from rng)."""
    roll = float(rng.normal(0, 4))
    rotated = img.rotate(roll, resample=Image.BILINEAR)
    background = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    background.paste(rotated, (0, 0), Image.new("L", img.size, 255).rotate(roll, resample=Image.BILINEAR))
    img = background.resize((size, size), Image.BOX)
    arr = np.asarray(img, dtype=np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[-1 : 1 : complex(size), -1 : 1 : complex(size)]
    light = 1 + rng.uniform(0.0, 0.25) * (np.cos(ang) * xx + np.sin(ang) * yy) + rng.normal(0, 0.06)
    arr = arr * light[..., None] + rng.normal(0, rng.uniform(0.5, 5.0), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    return img


def render_face(s: Subject, age: float, rng: np.random.Generator, size: int = 112) -> tuple[Image.Image, dict]:
    """Draw subject ``s`` at ``age`` years; returns the RGB image (size x size) and its attributes.

    The steps draw from ``rng`` in a fixed order, so a seed gives the same pixels."""
    ss = 2 * size  # draw at 2x, downsample for anti-aliasing
    f = _age_look(s, age, rng)
    cv = _Canvas(
        ss,
        f.k,
        s,
        yaw=f.yaw,
        scale=float(rng.normal(1.0, 0.03)),
        dx=float(rng.normal(0, 0.015)),
        dy=float(rng.normal(0, 0.015)),
    )
    bg = _background(s, ss, rng)
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    _colour_look(f, rng)
    outline = _head_outline(f)
    head = cv.pts(outline, feature=False)
    _draw_head(img, cv, f, head=head)
    _draw_hair(img, cv, f)
    d = ImageDraw.Draw(img)
    _draw_brow_region(d, cv, f)
    _draw_eyes(d, cv, f)
    _draw_nose_and_mouth(d, cv, f)
    _draw_age_spots(d, cv, f, rng=rng)
    if f.beard:
        _draw_beard(img, cv, f, jaw=[p for p, q in zip(head, outline) if q[1] > 0.35], rng=rng)
    if f.glasses:
        _draw_glasses(ImageDraw.Draw(img), cv, f, rng=rng)
    img = _camera(img, bg, size=size, rng=rng)
    return img, {**latents(f), "jpeg_quality": int(rng.integers(60, 96))}


def latents(f: _Look) -> dict:
    """The latent ageing variables of one photo, as the manifest records them (rounded; see ``LATENTS``)."""
    return {
        "grey": round(f.grey, 3),
        "recession": round(f.recede, 3),
        "glasses": bool(f.glasses),
        "beard": bool(f.beard),
        "skin_age": round(f.skin_age, 1),
        "growth_k": round(f.k, 3),
        "yaw": round(f.yaw, 3),
        "long_hair": bool(f.s.long_hair),
    }


def caption(age: int, sex: str, attrs: dict) -> str:
    """ "a photo of a 47-year-old woman with greying hair and glasses"."""
    if age < 3:
        noun = "baby"
    elif age < 13:
        noun = "girl" if sex == "F" else "boy"
    elif age < 18:
        noun = "teenage girl" if sex == "F" else "teenage boy"
    else:
        noun = "woman" if sex == "F" else "man"
    extras = []
    if attrs["grey"] > 0.75:
        extras.append("white hair")
    elif attrs["grey"] > 0.3:
        extras.append("greying hair")
    if attrs["recession"] > 0.6:
        extras.append("a receding hairline")
    if attrs["beard"]:
        extras.append("a beard")
    if attrs["glasses"]:
        extras.append("glasses")
    text = f"a photo of a {age}-year-old {noun}"
    if extras:
        text += " with " + (extras[0] if len(extras) == 1 else ", ".join(extras[:-1]) + " and " + extras[-1])
    return text + "."


def subject_ages(rng: np.random.Generator, n: int, *, age_min: int, age_max: int) -> list[int]:
    """n distinct-ish ages of one subject over a span of 5-40 years (longitudinal)."""
    span = int(rng.integers(5, 41))
    start = int(rng.integers(age_min, max(age_min + 1, age_max - span + 1)))
    ages = np.sort(rng.integers(start, min(age_max, start + span) + 1, size=n))
    return [int(a) for a in ages]


def split_of(sid: int, seed: int, fractions: tuple[float, float, float]) -> str:
    u = int(hashlib.sha1(f"{seed}:{sid}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def plan(spec: SynthAgeSpec) -> list[dict]:
    """The manifest rows (without files): subject, age, split, per-image seed. Deterministic."""
    rows = []
    n_subj = math.ceil(spec.n_images / spec.images_per_subject)
    root_ss = np.random.SeedSequence(spec.seed)
    for sid, ss in enumerate(root_ss.spawn(n_subj)):
        rng = np.random.default_rng(ss)
        split = split_of(sid, spec.seed, spec.split_fractions)
        for j, age in enumerate(subject_ages(rng, spec.images_per_subject, age_min=spec.age_min, age_max=spec.age_max)):
            if len(rows) == spec.n_images:
                break
            rows.append({"subject": sid, "age": age, "split": split, "path": f"images/s{sid:05d}_{j}_a{age:02d}.jpg"})
    return rows


def _subject_and_rng(spec: SynthAgeSpec, row: dict) -> tuple[Subject, np.random.Generator]:
    """The row's subject and its image's fresh generator (seeded by spec.seed, subject and file name)."""
    subj_ss = np.random.SeedSequence([spec.seed, row["subject"], 1])
    s = sample_subject(np.random.default_rng(subj_ss), row["subject"])
    img_seed = int(hashlib.sha1(row["path"].encode()).hexdigest()[:8], 16)
    return s, np.random.default_rng([spec.seed, img_seed])


def render_row(spec: SynthAgeSpec, row: dict) -> tuple[Image.Image, dict]:
    """Render one manifest row (deterministic: seeded by spec.seed, subject and file name)."""
    s, rng = _subject_and_rng(spec, row)
    img, attrs = render_face(s, row["age"], rng, size=spec.image_size)
    return img, {**attrs, "sex": s.sex, "caption": caption(row["age"], s.sex, attrs)}


def row_latents(spec: SynthAgeSpec, row: dict) -> dict:
    """The latents ``render_row`` records for ``row`` (all but jpeg_quality), without drawing: the same
    first draws of the same generator, so the values are identical (milliseconds, not a render)."""
    s, rng = _subject_and_rng(spec, row)
    return {**latents(_age_look(s, row["age"], rng)), "sex": s.sex}


def _render_to_file(args) -> tuple[dict, str, int, str]:
    """Render one row and make its file hold exactly those bytes: (manifest row, sha256, size, status).

    status: "new" (written), "kept" (the file already held these bytes) or "repaired" (rewritten).
    """
    spec, row, root = args
    img, meta = render_row(spec, row)
    out = Path(root) / row["path"]
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=meta["jpeg_quality"])
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    status = "new"
    if out.is_file() and not out.is_symlink():
        if out.stat().st_size == len(data) and out.read_bytes() == data:
            status = "kept"  # resumable: a finished file is never rewritten
        else:
            status = "repaired"
    if status != "kept":
        write_bytes(out, data, root=root)
    return {**row, **meta}, digest, len(data), status


def default_root(spec: SynthAgeSpec) -> Path:
    return data_dir() / f"synthage-{spec.key()}"


MANIFEST, SPEC_FILE, SUMS_FILE = "manifest.csv", "synthage.json", "checksums.json"
FIELDS = [
    "path",
    "age",
    "subject",
    "split",
    "sex",
    "caption",
    "grey",
    "recession",
    "glasses",
    "beard",
    "skin_age",
    "jpeg_quality",
    "growth_k",
    "yaw",
    "long_hair",
]
# Each image's latent ageing variables and nuisances, as recorded in the manifest (docs/method.md, section 9):
# the inputs of the oracle floor (cilf.bench.oracle). Per-subject rates and onsets are left out on purpose.
LATENT_FIELDS = (
    "growth_k",
    "skin_age",
    "grey",
    "recession",
    "sex",
    "glasses",
    "beard",
    "yaw",
    "long_hair",
    "jpeg_quality",
)


def _spec_json(spec: SynthAgeSpec) -> str:
    return json.dumps({**asdict(spec), "version": VERSION}, indent=2, sort_keys=True)


def _foreign_files(root: Path, spec: SynthAgeSpec) -> list[str]:
    """Files in ``root`` that SynthAge did not write (none when its spec file marks the folder as its own)."""
    if not root.is_dir() or (root / SPEC_FILE).is_file():
        return []
    ours = {r["path"] for r in plan(spec)}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink())
        and p.name != FolderLock.NAME
        and str(p.relative_to(root).as_posix()) not in ours
    )


def damaged(root: Path, spec: SynthAgeSpec) -> tuple[bool, list[dict]] | None:
    """What a finished SynthAge folder lacks: (manifest damaged, rows whose image is missing or damaged).

    None when the folder holds no finished set (or one without checksums). Fast:
    an image whose size matches its record and which is not newer than the checksums file is taken
    as intact; otherwise its SHA-256 is compared. The manifest is checked by its SHA-256 and its row
    count against the spec.
    """
    sums_path = root / SUMS_FILE
    if not (sums_path.is_file() and (root / MANIFEST).is_file()):
        return None
    try:
        sums = json.loads(sums_path.read_text(encoding="utf-8"))
        images, manifest_sha = sums["images"], sums["manifest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rows = plan(spec)
    stamp = sums_path.stat().st_mtime_ns
    bad = []
    for r in rows:
        p = root / r["path"]
        rec = images.get(r["path"])
        try:
            st = p.lstat()
        except OSError:
            bad.append(r)
            continue
        if (
            rec is None
            or not p.is_file()
            or p.is_symlink()
            or st.st_size != rec[0]
            or (st.st_mtime_ns > stamp and sha256_file(p) != rec[1])
        ):
            bad.append(r)
    manifest_bad = sha256_file(root / MANIFEST) != manifest_sha or len(images) != len(rows)
    return manifest_bad, bad


def _render(spec: SynthAgeSpec, rows: list[dict], root: Path, workers: int, progress: bool) -> list[tuple]:
    """Render ``rows`` into ``root`` (in a process pool when ``workers`` > 1); results in row order."""

    jobs = [(spec, r, str(root)) for r in rows]
    bar = tqdm(total=len(jobs), desc="SynthAge", unit="img", disable=not progress)
    done = []
    if workers > 1 and len(jobs) > 1:
        with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for r in pool.imap(_render_to_file, jobs, chunksize=64):
                done.append(r)
                bar.update()
    else:
        for j in jobs:
            done.append(_render_to_file(j))
            bar.update()
    bar.close()
    return done


def _manifest_text(rows: list[dict]) -> str:

    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_sums(root: Path, sums: dict[str, list], manifest_sha: str) -> None:
    write_text(
        root / SUMS_FILE, json.dumps({"manifest": manifest_sha, "images": sums}, sort_keys=True) + "\n", root=root
    )


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def generate(
    spec: SynthAgeSpec,
    root: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Write the images and ``manifest.csv`` under ``root`` (idempotent, resumable, self-checking); return root.

    Before use, a finished folder is checked against its ``checksums.json`` (see ``damaged``): missing
    or damaged images and a damaged or cut manifest are rendered again (same bytes), with a message. A
    A folder holding files SynthAge did not write (no ``synthage.json``) is refused unless ``force``.
    Every file is written atomically (``cilf.io``); one writer at a time per folder.
    """
    root = Path(root) if root is not None else default_root(spec)
    spec_json = _spec_json(spec)
    spec_file = root / SPEC_FILE
    if spec_file.is_file() and spec_file.read_text() != spec_json:
        raise FileExistsError(f"{root} holds a SynthAge set with another spec ({spec_file}); pick another root")
    state = damaged(root, spec)
    if state == (False, []):
        return root  # complete
    foreign = _foreign_files(root, spec)
    if foreign and not force:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(
            f"{root} holds files SynthAge did not write ({shown}); choose an empty or new folder, "
            f"or pass --force to write SynthAge there (files named like its own are overwritten)"
        )
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    with waiting_lock(root, "synthage", say=_say):
        state = damaged(root, spec)  # another process may have finished while we waited
        if state == (False, []):
            return root
        write_text(spec_file, spec_json, root=root)  # marks the folder as SynthAge's (resumable from here)
        (root / "images").mkdir(parents=True, exist_ok=True)
        if state is not None and not state[0]:
            _repair_in_place(spec, root, state[1], workers, progress)
            return root
        if state is not None:
            _say(
                f"SynthAge at {root}: the manifest is damaged or incomplete ({len(state[1])} image(s) missing or "
                f"damaged); checking every image and writing it again"
            )
        elif (root / MANIFEST).is_file():
            _say(f"SynthAge at {root}: no checksums file; checking every image once")
        done = _render(spec, plan(spec), root, workers, progress)
        repaired = sum(d[3] == "repaired" for d in done)
        if repaired:
            _say(f"SynthAge at {root}: {repaired} damaged image(s) rendered again")
        text = _manifest_text([d[0] for d in done])
        write_text(root / MANIFEST, text, root=root)
        _write_sums(root, {d[0]["path"]: [d[2], d[1]] for d in done}, hashlib.sha256(text.encode()).hexdigest())
    return root


def _repair_in_place(spec: SynthAgeSpec, root: Path, bad: list[dict], workers: int, progress: bool) -> None:
    """Intact manifest: render only the ``bad`` rows again (same bytes) and update the checksums."""
    sums = json.loads((root / SUMS_FILE).read_text(encoding="utf-8"))
    if bad:
        _say(f"SynthAge at {root}: {len(bad)} of {spec.n_images} image(s) missing or damaged; rendering them again")
        for _row, digest, size, _status in _render(spec, bad, root, workers, progress):
            sums["images"][_row["path"]] = [size, digest]
    _write_sums(root, sums["images"], sums["manifest"])


# What the renderer draws of each latent, after its thresholds (``_age_look``, ``_draw_*``): the inputs of the
# oracle floor (cilf.bench.oracle). Skin age is drawn only through wrinkles (from 28), creases (a count, from 33),
# sagging and age spots (from 50): below 28 the pixels carry no skin sign at all. The strain k is the head's shape.
VISIBLE_FIELDS = ("growth_k", "wrinkle", "creases", "sag", "spots", *LATENT_FIELDS[2:])  # skin_age out


def drawn_skin_signs(skin_age_value: float) -> dict[str, float]:
    """The skin signs the renderer draws for an apparent skin age (the one place their thresholds are set): wrinkle
    and sag amplitudes (0..1), the crease count, and the most age spots (the count drawn is int(spots x U(0, 1)))."""
    sa = float(skin_age_value)
    return {
        "wrinkle": _ramp(sa, 28, 45),
        "creases": float(int(round(3 * _ramp(sa, 33, 30)))),
        "sag": _ramp(sa, 50, 35),
        "spots": 12 * _ramp(sa, 50, 35),
    }


def visible_cues(row: dict) -> dict:
    """A manifest row's :data:`VISIBLE_FIELDS`: its latents with skin age replaced by the signs drawn from it."""
    return {**{k: row[k] for k in VISIBLE_FIELDS if k in row}, **drawn_skin_signs(float(row["skin_age"]))}
