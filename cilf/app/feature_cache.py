"""Frozen-encoder features on disk, so heads, ablations and peers retrain without re-encoding.

An entry is keyed by the encoder (model name, a hash of the image tower's weights, the transform)
and by the files (path, size, modification time of every image). Editing, adding or removing an
image gives a new key, so a stale entry is never read. Each entry records the SHA-256 of its tensor
file; an entry that fails the check or does not load is reported and rebuilt. Features are stored
as float16 and always read back from disk, so a first (cold) and a later (warm) run use the very
same numbers. Layout: ``<cache>/features/<encoder key>/<files key>.{safetensors,json}``.

For fine-tuning the image tower's last k blocks (``unfreeze_last_blocks``), :func:`cached_boundary`
stores the tokens entering the first trainable block instead (B x (1 + N) x W, float16); its encoder
key holds the boundary and hashes only the frozen part's weights (stem and blocks before it), so
training the last blocks never invalidates it, and k=1 and k=2 are separate entries.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cilf import utils
from cilf.app.features import extract_boundary, extract_features
from cilf.data.datasets import RecordDataset
from cilf.io import atomic_write, waiting_lock, write_json
from cilf.model.clip import BoundaryTokens, ImageFeatures

CACHE_FORMAT = 1


def encoder_key(model) -> str:
    """Hash of the model name, the image tower's weights and the image transform."""
    h = hashlib.sha1(f"{CACHE_FORMAT}|{model.cfg.clip_model}|{model.preprocess!r}".encode())
    for name, t in model.clip.model.visual.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{model.cfg.clip_model}-{h.hexdigest()[:16]}"


def _frozen_part(name: str, boundary: int) -> bool:
    """Whether image-tower weight ``name`` is used before block ``boundary`` (stem, blocks 0..boundary-1)."""
    if name.startswith("transformer.resblocks."):
        return int(name.split(".")[2]) < boundary
    return not name.startswith(("ln_post.", "proj", "attn_pool"))


def boundary_key(model, boundary: int | None = None) -> str:
    """Hash of the model name, the boundary b (tokens entering image block b), the weights before it and
    the image transform; ``boundary`` defaults to the model's first trainable block."""
    clip = model.clip
    b = clip.boundary if boundary is None else boundary
    h = hashlib.sha1(
        f"{CACHE_FORMAT}|boundary|{b}/{clip.image_blocks}|{model.cfg.clip_model}|{model.preprocess!r}".encode()
    )
    for name, t in clip.model.visual.state_dict().items():
        if _frozen_part(name, b):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{model.cfg.clip_model}-block{b}of{clip.image_blocks}-{h.hexdigest()[:16]}"


def files_key(rows: list[dict]) -> str:
    """Hash of every image's path, size and modification time (missing files hash as missing)."""
    h = hashlib.sha1()
    for r in rows:
        p = Path(r["path"])
        try:
            st = p.stat()
            h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()[:20]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(kw_only=True)
class CachedFeatures:
    """Features of a dataset's readable images; ``rows[i]`` is the dataset row of item i."""

    features: ImageFeatures | BoundaryTokens  # pooled (n x D), tokens (n x N x D), float32 values of float16
    # storage; or (cached_boundary) tokens n x (1 + N) x W entering the first trainable block, float16
    ages: torch.Tensor  # (n)
    rows: list[int]
    skipped: list[tuple[str, str]]
    path: Path
    hit: bool  # read from an existing entry
    seconds: float  # this call: encoding (miss) or reading (hit)
    encode_seconds: float | None = None  # how long encoding the entry took when it was made (None: not recorded)


def _read(tensors: Path, meta: dict, verify: bool = True) -> tuple[dict, torch.Tensor, list[int]] | None:
    """The entry's tensors (ages apart), or None when it is missing, fails its checksum (``verify``) or is
    inconsistent."""
    if not tensors.is_file() or (verify and _sha256(tensors) != meta.get("sha256")):
        return None
    t = load_file(str(tensors))
    n = len(meta["rows"])
    if "ages" not in t or any(v.shape[0] != n for v in t.values()):
        return None
    return t, t.pop("ages"), meta["rows"]


def _features(t: dict, meta: dict) -> ImageFeatures:
    return ImageFeatures(t["pooled"].float(), t["tokens"].float(), tuple(meta["grid"]))


def cached_features(
    model,
    dataset: RecordDataset,
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "encode",
) -> CachedFeatures:
    """Features of ``dataset`` for ``model``'s frozen image tower, from the cache or encoded now."""

    def encode(ds):
        feats, ages, metas = extract_features(
            model, ds, batch_size=batch_size, device=device, progress=progress, desc=desc
        )
        return (
            {"pooled": feats.pooled.half().contiguous(), "tokens": feats.tokens.half().contiguous()},
            ages,
            metas,
            {"grid": list(feats.grid)},
        )

    return _entry(encoder_key(model), dataset, cache_dir, encode, _features)


def cached_boundary(
    model,
    dataset: RecordDataset,
    cache_dir: str | Path | None = None,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "encode",
) -> CachedFeatures:
    """Tokens entering ``model``'s first trainable image block (``model.clip.boundary``) for ``dataset``,
    from the cache or encoded now: ``features`` is a :class:`BoundaryTokens` (n x (1 + N) x W, float16)."""
    block = model.clip.boundary

    def encode(ds):
        tokens, ages, metas = extract_boundary(
            model, ds, block, batch_size=batch_size, device=device, progress=progress, desc=desc
        )
        return {"tokens": tokens.half().contiguous()}, ages, metas, {"block": block}

    def unpack(t: dict, meta: dict) -> BoundaryTokens:
        return BoundaryTokens(t["tokens"], int(meta["block"]))

    return _entry(boundary_key(model, block), dataset, cache_dir, encode, unpack)


def _entry(encoder: str, dataset: RecordDataset, cache_dir, encode, unpack) -> CachedFeatures:
    """The entry of ``dataset`` under ``encoder``: read (checked), else made with ``encode(indexed dataset)`` ->
    (tensors, ages, metas, extra meta), written whole and read back; ``unpack(tensors, meta)`` -> features."""
    t0 = time.perf_counter()
    folder = Path(cache_dir or utils.cache_dir()) / "features" / encoder
    key = files_key(dataset.rows)
    tensors, meta_path = folder / f"{key}.safetensors", folder / f"{key}.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            got = _read(tensors, meta)
            feats = unpack(got[0], meta) if got is not None else None
        except (ValueError, KeyError, OSError, RuntimeError):
            got = None
        if got is not None:
            return CachedFeatures(
                features=feats,
                ages=got[1],
                rows=got[2],
                skipped=[tuple(s) for s in meta["skipped"]],
                path=tensors,
                hit=True,
                seconds=time.perf_counter() - t0,
                encode_seconds=meta.get("encode_seconds"),
            )
        warnings.warn(f"feature cache entry {tensors} is corrupt or incomplete; rebuilding it", stacklevel=3)
    rows = list(range(len(dataset)))
    indexed = _IndexedDataset(dataset)
    tensor_dict, ages, metas, extra = encode(indexed)
    tensor_dict["ages"] = ages.float().contiguous()
    kept = [m["row"] for m in metas]
    skipped = list(indexed.skips.skipped)
    meta = {
        "format": CACHE_FORMAT,
        "dataset": dataset.name,
        "n": len(kept),
        "rows": kept,
        **extra,
        "skipped": skipped,
        "of_rows": len(rows),
        "encode_seconds": time.perf_counter() - t0,
    }
    with waiting_lock(
        folder, "feature cache", say=lambda m: warnings.warn(m, stacklevel=4)
    ):  # one writer per entry set
        atomic_write(tensors, lambda p: _save_file(tensor_dict, p))
        meta["sha256"] = _sha256(tensors)
        write_json(meta_path, meta)  # written last: an entry without it is never read
    t, ages, kept = _read(tensors, meta, verify=False)  # just written and hashed
    return CachedFeatures(
        features=unpack(t, meta),
        ages=ages,
        rows=kept,
        skipped=skipped,
        path=tensors,
        hit=False,
        seconds=time.perf_counter() - t0,
        encode_seconds=meta["encode_seconds"],
    )


def _save_file(tensors: dict, path: Path) -> None:
    """safetensors' writer, its errors (a full disk) raised as the OSError they are."""
    try:
        save_file(tensors, str(path))
    except OSError:
        raise
    except Exception as e:  # SafetensorError wraps the OS error: "... (os error 28) ..."
        found = re.search(r"os error (\d+)", str(e))
        raise OSError(int(found.group(1)) if found else errno.EIO, str(e)) from None


class _IndexedDataset(RecordDataset):
    """The dataset's rows with their index added to each item's meta (to know which were skipped)."""

    def __init__(self, ds: RecordDataset):
        super().__init__([{**r, "row": i} for i, r in enumerate(ds.rows)], ds.transform, ds.name)
