"""Which CLIP weights a model was built on, named portably, and finding them again (docs/method.md, section 1).

A :class:`WeightsRecord` names weights independently of where they lay on disk: the open_clip model
name with ``bundled`` (one of the package's micro-CLIPs, :data:`BUNDLED`), an open_clip tag (``openai``) or ``file`` (a local
file), each with the SHA-256 of the weights file; for a file, the path it was loaded from is kept as
a hint only. Checkpoints store the record (``clip_weights.json``), so a run can be moved or shared.

:func:`locate` finds a record's weights again: the bundled file, open_clip's cache for a tag, and for
a file the ``--clip-weights`` option (decisive when given), then ``$CILF_CLIP_WEIGHTS``, then the
hint path. A candidate whose hash differs is not used; when none matches, one error names the
expected hash, every path tried and the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from cilf.io import sha256_file

WEIGHTS_DIR = Path(__file__).parent / "weights"
ENV = "CILF_CLIP_WEIGHTS"  # a weights file tried when a checkpoint's own path no longer holds its weights
RECORD_FORMAT = "cilf-clip-weights/1"
FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
# the package's own weights: ``pretrained`` value -> suffix of weights/<model><suffix>.safetensors
# (docs/micro-clip.md): "bundled" learned from SynthAge captions that state the exact age (CILFConfig's default),
# "bundled-web" from alt-text-like captions (the backbone of the claims and the learning curve)
BUNDLED = {"bundled": "", "bundled-web": "-web"}

log = logging.getLogger("cilf.weights")


class WeightsNotFoundError(RuntimeError):
    """Raised when CLIP weights cannot be found or fetched."""


class WeightsMismatchError(WeightsNotFoundError):
    """A weights file given for a checkpoint holds other weights than it was trained with (hashes differ)."""


@dataclass(frozen=True)
class WeightsRecord:
    """Portable name of CLIP weights. ``source``: ``bundled``, ``tag``, ``file`` or ``none`` (random init).

    ``sha256``: of the weights file (None for ``none``); ``tag``: the open_clip tag, or for ``bundled`` which
    of :data:`BUNDLED` (None: ``"bundled"``, as records made before there were two); ``path``: where
    the weights were loaded from (for ``file`` a hint only: the hash identifies them)."""

    model: str
    source: str
    sha256: str | None = None
    tag: str | None = None
    path: str | None = None

    def to_dict(self) -> dict:
        return {"format": RECORD_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> WeightsRecord:
        if not isinstance(d, dict) or d.get("format") != RECORD_FORMAT or d.get("source") not in SOURCES:
            raise ValueError(f"not a {RECORD_FORMAT} record")
        return cls(
            model=str(d["model"]), source=d["source"], sha256=d.get("sha256"), tag=d.get("tag"), path=d.get("path")
        )

    def pretrained(self) -> str | None:
        """The ``CILFConfig.pretrained`` value that loads these weights where they were found."""
        return {"bundled": self.tag or "bundled", "tag": self.tag, "file": self.path, "none": None}[self.source]

    def describe(self) -> str:
        """One line: model, where from, hash."""
        where = {
            "bundled": f"{self.tag or 'bundled'} ({self.path})",
            "tag": f"open_clip tag {self.tag!r} ({self.path})",
            "file": f"file {self.path}",
            "none": "random init (no pretrained weights)",
        }[self.source]
        return f"{self.model}, {where}" + (f", sha256 {self.sha256}" if self.sha256 else "")


SOURCES = ("bundled", "tag", "file", "none")
_hashes: dict[tuple[str, int, int], str] = {}
_logged: set[WeightsRecord] = set()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file, computed once per process for an unchanged file (path, size, mtime)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = sha256_file(path)
    return _hashes[key]


def bundled_weights_path(model_name: str, pretrained: str = "bundled") -> Path:
    """The file of the package's own weights ``pretrained`` (a key of :data:`BUNDLED`) for ``model_name``."""
    return WEIGHTS_DIR / f"{model_name}{BUNDLED[pretrained]}.safetensors"


def is_bundled(pretrained: str | None) -> bool:
    """``pretrained`` names one of the package's own weights (:data:`BUNDLED`)."""
    return pretrained in BUNDLED


def is_file_value(pretrained: str) -> bool:
    """A ``pretrained`` value that names a local file (has a path separator or a weights suffix)."""
    return os.path.sep in pretrained or pretrained.endswith(FILE_SUFFIXES)


def resolve_pretrained(model_name: str, pretrained: str | None) -> str | None:
    """Map ``pretrained`` (None | "bundled-web" | "bundled" | path | open_clip tag) to what open_clip takes."""
    if pretrained is None or str(pretrained).lower() in ("none", "random", ""):
        return None
    if is_bundled(pretrained):
        path = bundled_weights_path(model_name, pretrained)
        if not path.is_file():
            captions = "web" if pretrained == "bundled-web" else "exact"
            raise WeightsNotFoundError(
                f"no {pretrained} weights for {model_name!r} at {path}. They are made by "
                f"`python -m cilf pretrain-clip --captions {captions}` (then copy its cilf-micro.safetensors "
                f"there); or use pretrained=None (random init), a local checkpoint path, or an open_clip tag "
                f"when online."
            )
        return str(path)
    if is_file_value(pretrained):
        if not Path(pretrained).is_file():
            raise WeightsNotFoundError(f"CLIP checkpoint {pretrained} does not exist")
    return pretrained


def tag_file(model_name: str, tag: str) -> str:
    """The local file of an open_clip tag (fetched once when online). Offline (HF_HUB_OFFLINE=1) and not
    cached: WeightsNotFoundError at once, before any model is built."""
    import open_clip
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(model_name)
        raise WeightsNotFoundError(
            f"{tag!r} is neither a file nor an open_clip tag of {model_name!r} (its tags: "
            f"{', '.join(known) or 'none'}); pass pretrained=bundled, a weights file or a tag"
        )
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    if offline and "file" not in cfg and not cfg.get("hf_hub"):  # a URL download: cached only in ~/.cache/clip
        cached = Path("~/.cache/clip").expanduser() / os.path.basename(cfg.get("url", ""))
        if not cached.is_file():
            raise WeightsNotFoundError(_offline_tag(model_name, tag, f"not in open_clip's cache ({cached})"))
    try:
        path = download_pretrained(cfg)
    except Exception as e:  # hub or network error, or offline and not cached
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise WeightsNotFoundError(
            _offline_tag(model_name, tag, reason)
            if offline
            else f"could not fetch open_clip weights {model_name!r} / {tag!r}: {reason}"
        ) from None
    if not path or not Path(path).is_file():
        raise WeightsNotFoundError(_offline_tag(model_name, tag, "no file"))
    return str(path)


def _offline_tag(model_name: str, tag: str, reason: str) -> str:
    return (
        f"open_clip weights {model_name!r} / {tag!r} are not cached on this machine ({reason}). HF_HUB_OFFLINE=1 "
        f"is set, so nothing is downloaded. Offline, use pretrained='bundled' (micro-CLIP), a local weights "
        f"file, or None; or fetch the tag once online."
    )


def record_for(model_name: str, pretrained: str | None) -> tuple[WeightsRecord, str | None]:
    """(record, what open_clip's create_model takes) for a ``CILFConfig.pretrained`` value; hashes the file."""
    source = resolve_pretrained(model_name, pretrained)
    if source is None:
        return WeightsRecord(model_name, "none"), None
    if is_bundled(pretrained):
        tag = None if pretrained == "bundled" else pretrained  # "bundled" records read as before
        return WeightsRecord(model_name, "bundled", file_sha256(source), tag=tag, path=source), source
    if is_file_value(source) or Path(source).is_file():
        path = str(Path(source).resolve())
        return WeightsRecord(model_name, "file", file_sha256(path), path=path), source
    path = tag_file(model_name, source)
    return WeightsRecord(model_name, "tag", file_sha256(path), tag=source, path=path), source


def log_loaded(record: WeightsRecord) -> None:
    """One INFO line on logger ``cilf.weights`` per weights and process (the command line shows it on stderr)."""
    if record.source != "none" and record not in _logged:
        _logged.add(record)
        log.info("CLIP weights: %s", record.describe())


def forget_logged() -> None:
    """Log the next load of any weights again (each command-line run starts here)."""
    _logged.clear()


def locate(record: WeightsRecord, clip_weights: str | Path | None = None, what: str = "the checkpoint") -> str | None:
    """The ``pretrained`` value that loads ``record``'s weights on this machine (see the module docstring).

    ``clip_weights``: a file given by the user (``--clip-weights``); it must hold the recorded weights.
    Raises WeightsMismatchError (both hashes named) or WeightsNotFoundError (expected hash, paths tried, fix)."""
    if record.source == "none":
        return None  # random-init CLIP: its weights are in the checkpoint itself
    if clip_weights is not None:
        if record.source == "tag":
            raise WeightsNotFoundError(
                f"{what} was trained on open_clip tag {record.tag!r} of {record.model}: its weights come from "
                f"open_clip's cache (fetched once online), not from --clip-weights, which is for runs trained on a "
                f"weights file"
            )
        return _matching(record, Path(clip_weights), what)
    if record.source == "tag":
        path = tag_file(record.model, record.tag)
        _check(record, Path(path), what, f"open_clip's file for tag {record.tag!r} changed since training")
        return record.tag
    bundled = record.source == "bundled"
    own = bundled_weights_path(record.model, record.tag or "bundled") if bundled else Path(record.path or "")
    label = "the bundled weights" if record.source == "bundled" else "the path used in training"
    seen = []
    for candidate, name in [(p, f"${ENV}") for p in _env_candidates()] + [(own, label)]:
        if not candidate.is_file():
            seen.append(f"not at {candidate} ({name})")
            continue
        digest = file_sha256(candidate)
        if digest == record.sha256:
            return record.pretrained() if candidate == own and bundled else str(candidate)
        seen.append(f"{candidate} ({name}) holds other weights, sha256 {digest}")
    raise WeightsNotFoundError(
        f"the CLIP weights of {what} ({record.model}, sha256 {record.sha256}) were not found: {'; '.join(seen)}. "
        f"Pass --clip-weights FILE (or set {ENV}=FILE) with the file it was trained with"
    )


def _env_candidates() -> list[Path]:
    value = os.environ.get(ENV)
    return [Path(value).expanduser()] if value else []


def _matching(record: WeightsRecord, path: Path, what: str) -> str:
    """``path`` as a pretrained value when it holds the recorded weights; else a clear error."""
    if not path.is_file():
        raise WeightsNotFoundError(
            f"{path}: --clip-weights file does not exist (the CLIP weights of {what}: "
            f"{record.model}, sha256 {record.sha256})"
        )
    _check(record, path, what, "a different file")
    return str(path)


def _check(record: WeightsRecord, path: Path, what: str, why: str) -> None:
    digest = file_sha256(path)
    if record.sha256 and digest != record.sha256:
        raise WeightsMismatchError(
            f"{path}: refused as the CLIP weights of {what}: its sha256 is {digest}, {what} was trained with "
            f"sha256 {record.sha256} ({why}); pass the weights file it was trained with"
        )
