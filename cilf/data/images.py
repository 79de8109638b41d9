"""Robust image loading: every image becomes 8-bit RGB, or a :class:`BadImageError` saying why.

Converted: CMYK, 16-bit and 32-bit greyscale, palette, greyscale(+alpha), RGBA (composited on
white), EXIF-rotated. Refused with a reason: missing, zero-byte, not an image, truncated, tiny.
Files are only ever opened for reading.

``walk_images`` is the one folder walk: the image files of some paths plus everything passed over,
with the reason (unreadable folder or file, unsupported extension, hidden, linked folder, duplicate).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
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
        reason = (
            "truncated or corrupt image data" if "truncat" in msg or "broken" in msg else f"unreadable image ({msg})"
        )
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


# ---- walking folders: every file found is either an image or a skip with its reason ---------------------------


class NoImagesFound(ValueError):
    """A walk found no usable image; the message names where it looked and counts what it passed over."""


# The reasons a walk passes something over (the text before " (" of a reason; ImageWalk.counts() groups by it).
UNREADABLE_FOLDER = "unreadable folder"
UNREADABLE_FILE = "unreadable file"
UNSUPPORTED = "unsupported extension"
DUPLICATE = "duplicate"
HIDDEN = "hidden"
LINKED_FOLDER = "linked folder"
NOT_FOUND = "not found"


@dataclass
class ImageWalk:
    """What :func:`walk_images` found: ``files`` (image files, each real file once, in walk order) and
    ``skipped`` ((path, reason) for everything passed over; the reason starts with one of the constants
    above, e.g. "unreadable folder (permission denied; the images inside are not counted)")."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    looked_in: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """{reason: how many things were passed over for it}, e.g. {"unsupported extension .heic": 2}."""
        out: dict[str, int] = {}
        for _, why in self.skipped:
            key = why.split(" (")[0]
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def duplicates(self) -> int:
        """Paths passed over because they name a file already found (the same path given twice counts 1)."""
        return sum(why.startswith(DUPLICATE) for _, why in self.skipped)

    def summary(self) -> str:
        """One line: "N image(s); passed over: 2 unsupported extension .heic, 1 unreadable folder"."""
        c = self.counts()
        over = ", ".join(f"{n} {k}" for k, n in sorted(c.items())) if c else "nothing"
        return f"{len(self.files)} image(s); passed over: {over}"

    def require(self, what: str = "") -> ImageWalk:
        """``self``, or NoImagesFound saying where nothing usable was found and what was passed over, and why."""
        if self.files:
            return self
        where = what or ", ".join(self.looked_in) or "the paths given"
        examples = "; ".join(f"{p}: {why}" for p, why in self.skipped[:3])
        raise NoImagesFound(
            f"no usable image in {where} ({self.summary().split('; ', 1)[1]}"
            + (f"; e.g. {examples}" if examples else "")
            + f"); cilf reads {', '.join(sorted(IMAGE_SUFFIXES))}"
        )


def _reason_os(kind: str, err: OSError) -> str:
    if isinstance(err, PermissionError):
        detail = "permission denied"
    else:
        detail = err.strerror or str(err)
    return f"{kind} ({detail}" + ("; the images inside are not counted)" if kind == UNREADABLE_FOLDER else ")")


def walk_images(
    paths: str | Path | Iterable[str | Path], hidden: bool = False, ignore: Iterable[str] = ()
) -> ImageWalk:
    """Image files of ``paths`` (files and folders, searched recursively), with everything passed over and why.

    The one walk of cilf (dataset scans, ``align``, ``data check``, ``predict``). A folder yields its image
    files (suffix in IMAGE_SUFFIXES, any case), sorted; a file given by name is kept whatever its suffix
    (``load_image`` then decides). Passed over, each with its reason in ``skipped``: a folder that cannot
    be listed (UNREADABLE_FOLDER; its files are not counted), a file without read permission or a broken
    link (UNREADABLE_FILE), another suffix (UNSUPPORTED, with the suffix: ".heic", ".txt"), a hidden
    entry below a given folder (HIDDEN: one entry per hidden folder; ``hidden=True`` searches them), a
    symbolic link to a folder (LINKED_FOLDER: not followed, so no walk leaves the tree or loops), a path
    that does not exist (NOT_FOUND) and a file found again, by the same path or through a link
    (DUPLICATE: the same path given three times is one image and two duplicates). ``ignore``: file names
    (case-insensitive) that belong to the layout (``ages.csv``) and are passed over silently.
    Returns an :class:`ImageWalk`; ``walk.require(what)`` raises NoImagesFound when no image was found.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    quiet = {n.lower() for n in ignore}
    walk = ImageWalk()
    seen: dict[str, str] = {}  # real path -> the path it was first found as

    def take(p: Path, real: str) -> None:
        first = seen.get(real)
        if first is not None:
            walk.skipped.append((str(p), f"{DUPLICATE} (the same file as {first})"))
        else:
            seen[real] = str(p)
            walk.files.append(p)

    for given in map(Path, paths):
        walk.looked_in.append(str(given))
        try:
            is_dir = given.is_dir()
            exists = is_dir or given.exists() or given.is_symlink()
        except OSError as e:
            walk.skipped.append((str(given), _reason_os(UNREADABLE_FILE, e)))
            continue
        if not exists:
            walk.skipped.append((str(given), f"{NOT_FOUND} (no such file or folder)"))
            continue
        if not is_dir:
            if not given.exists():
                walk.skipped.append((str(given), f"{UNREADABLE_FILE} (a broken symbolic link)"))
            elif not os.access(given, os.R_OK):
                walk.skipped.append((str(given), f"{UNREADABLE_FILE} (permission denied)"))
            else:
                take(given, os.path.realpath(given))
            continue
        found: list[tuple[Path, str]] = []
        _walk_folder(given, walk, found, hidden, quiet)
        for p, real in sorted(found):
            take(p, real)
    return walk


def _walk_folder(top: Path, walk: ImageWalk, found: list[tuple[Path, str]], hidden: bool, quiet: set[str]) -> None:
    """Add the image files below ``top`` to ``found`` as (path, real path) and the rest to ``walk.skipped``."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
            real_folder = os.path.realpath(folder)
        except OSError as e:
            walk.skipped.append((str(folder), _reason_os(UNREADABLE_FOLDER, e)))
            continue
        for entry in entries:
            p = folder / entry.name
            try:
                if entry.name.startswith(".") and not hidden:
                    kind = "folder" if entry.is_dir() else "file"
                    walk.skipped.append(
                        (
                            str(p),
                            f"{HIDDEN} {kind} (its name starts with '.'"
                            + ("; not searched)" if kind == "folder" else ")"),
                        )
                    )
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(p)
                    continue
                link = entry.is_symlink()
                if link and entry.is_dir():
                    walk.skipped.append(
                        (
                            str(p),
                            f"{LINKED_FOLDER} (a symbolic link to a folder is not followed: give that folder itself)",
                        )
                    )
                    continue
                if link and not os.path.exists(p):
                    walk.skipped.append((str(p), f"{UNREADABLE_FILE} (a broken symbolic link)"))
                    continue
                if not entry.is_file():
                    walk.skipped.append((str(p), f"{UNREADABLE_FILE} (not a regular file)"))
                    continue
            except OSError as e:
                walk.skipped.append((str(p), _reason_os(UNREADABLE_FILE, e)))
                continue
            suffix = Path(entry.name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES:
                if entry.name.lower() not in quiet:
                    what = f"{UNSUPPORTED} {suffix}" if suffix else f"{UNSUPPORTED} (none;"
                    walk.skipped.append((str(p), what + (" (" if suffix else " ") + "not an image type cilf reads)"))
                continue
            if not os.access(p, os.R_OK):
                walk.skipped.append((str(p), f"{UNREADABLE_FILE} (permission denied)"))
                continue
            found.append((p, os.path.realpath(p) if link else os.path.join(real_folder, entry.name)))
