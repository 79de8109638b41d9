"""Robust image loading: every image becomes 8-bit RGB, or a :class:`BadImageError` saying why.

Converted: CMYK, 16-bit and 32-bit greyscale, palette, greyscale(+alpha), RGBA (composited on
white), EXIF-rotated. Refused with a reason: missing, zero-byte, not an image, truncated, tiny.
Files are only ever opened for reading.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MIN_SIDE = 16  # pixels; smaller images carry no face worth estimating
# File suffixes (lower case) taken for images when a folder is walked (datasets, predict, align).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class BadImageError(ValueError):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def is_image_file(path: Path) -> bool:
    """True for an existing file whose suffix is in IMAGE_SUFFIXES (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit greyscale: rescale, don't clip
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode in ("I", "F") and arr.max() > 65535:
            hi = float(arr.max())
        arr8 = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")  # L, CMYK, YCbCr, LAB, HSV, 1


def load_image(path: str | Path, min_side: int = MIN_SIDE) -> Image.Image:
    """Read ``path`` into an 8-bit RGB PIL image (EXIF orientation applied) or raise BadImageError."""
    p = Path(path)
    if not p.exists():
        raise BadImageError(p, "file not found")
    if p.is_dir():
        raise BadImageError(p, "is a directory, not an image")
    if p.stat().st_size == 0:
        raise BadImageError(p, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except UnidentifiedImageError:
        raise BadImageError(p, "not an image file PIL can read (wrong extension or corrupt header)") from None
    except (OSError, SyntaxError, ValueError) as e:
        msg = str(e)
        reason = "truncated or corrupt image data" if "truncat" in msg or "broken" in msg else f"unreadable image ({msg})"
        raise BadImageError(p, reason) from None
    except Image.DecompressionBombError as e:
        raise BadImageError(p, f"refused as a decompression bomb ({e})") from None
    if min(rgb.size) < min_side:
        raise BadImageError(p, f"too small ({rgb.size[0]} x {rgb.size[1]} px, need >= {min_side})")
    return rgb


@dataclass
class SkipLog:
    """Counts and lists the files skipped in a run, with the reason for each."""

    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, err: BadImageError) -> None:
        self.skipped.append((err.path, err.reason))

    def __len__(self) -> int:
        return len(self.skipped)

    def report(self, limit: int = 20) -> str:
        if not self.skipped:
            return "no files skipped"
        lines = [f"skipped {len(self.skipped)} file(s):"]
        lines += [f"  {p}: {r}" for p, r in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)
