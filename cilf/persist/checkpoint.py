"""Checkpoints: ``model.safetensors`` + ``config.json`` (+ ``train_state.pt`` to resume training),
listed with their SHA-256 and size in ``manifest.json``.

A checkpoint folder is written whole (``cilf.io.atomic_directory``): a reader finds the previous
checkpoint or the new one, never a mix of the two. Loading verifies the manifest first, so a torn
or bit-flipped file is refused with the file named. ``.pt`` files are read tensors-and-plain-data
only (``weights_only=True``): a planted pickle cannot run code.

Frozen CLIP weights that can be reloaded from their source (bundled, local path, tag) are not
copied into checkpoints; random-init or fine-tuned CLIP weights are. ``clip_weights.json`` names the
source portably (``cilf.persist.clip_weights.WeightsRecord``: model, bundled / tag / file, SHA-256, the
path as a hint), so a checkpoint moved to another machine finds its weights by content, or is told
which file to pass (``clip_weights=`` / ``--clip-weights``). A checkpoint without it loads as before.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cilf.io import atomic_directory, json_text, sha256_file
from cilf.model.cilf_model import CILF
from cilf.model.config import CILFConfig
from cilf.persist.clip_weights import WeightsRecord, file_sha256, locate
from cilf.persist.factory import create_model

WEIGHTS, CONFIG, STATE, MANIFEST = "model.safetensors", "config.json", "train_state.pt", "manifest.json"
CLIP_WEIGHTS = "clip_weights.json"  # where the CLIP weights came from (WeightsRecord)
MANIFEST_FORMAT = "cilf-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that is damaged, incomplete or not cilf's; the message names the file."""


def save_checkpoint(model: CILF, directory: str | Path, train_state: dict | None = None) -> Path:
    """Write ``directory`` whole: weights, config, ``train_state`` (tensors and plain data) and the manifest."""
    d = Path(directory)
    with atomic_directory(d) as tmp:
        save_file(model.trainable_state_dict(), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json_text(model.cfg.to_dict()), encoding="utf-8")
        (tmp / CLIP_WEIGHTS).write_text(json_text(model.clip.weights.to_dict()), encoding="utf-8")
        if train_state is not None:
            torch.save(train_state, tmp / STATE)
        write_manifest(tmp)
    return d


def write_manifest(directory: Path) -> Path:
    """List every file of ``directory`` (but the manifest) with its SHA-256 and size in ``manifest.json``."""
    files = {
        p.name: {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    path = directory / MANIFEST
    path.write_text(json_text({"format": MANIFEST_FORMAT, "files": files}), encoding="utf-8")
    return path


def verify_checkpoint(directory: str | Path, needed: tuple[str, ...] = (WEIGHTS, CONFIG, CLIP_WEIGHTS)) -> dict:
    """Check every file listed in ``manifest.json`` (the ``needed`` ones must be listed); return the listing.

    Raises CheckpointError naming the file when the manifest is missing (a save that never finished, or a
    folder cilf did not write), or a file is missing, unlisted, of another size or differs from its checksum.
    """
    d = Path(directory)
    path = d / MANIFEST
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing, so {d} is not a complete cilf checkpoint (a save that never finished, or files "
            f"cilf did not write); copy it again or retrain"
        )
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        entries = {str(name): (str(m["sha256"]), int(m["size"])) for name, m in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise CheckpointError(
            f"{path}: cannot be read, the file is damaged; copy the checkpoint again or retrain"
        ) from None
    for name in needed:
        if name not in entries:
            raise CheckpointError(
                f"{d / name}: not listed in {path}; the checkpoint was altered or is incomplete: "
                f"copy it again or retrain"
            )
    for name, (digest, size) in entries.items():
        p = d / name
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{path}: lists {name!r}, not a file of the checkpoint; the manifest is damaged")
        if not p.is_file():
            raise CheckpointError(f"{p}: missing, the checkpoint is incomplete; copy it again or retrain")
        actual = p.stat().st_size
        if actual != size or sha256_file(p) != digest:
            sizes = f" ({actual} bytes, {MANIFEST} says {size})" if actual != size else ""
            raise CheckpointError(
                f"{p}: checksum mismatch, the file is damaged{sizes}; copy the checkpoint again or retrain"
            )
    return entries


def load_torch_state(path: str | Path, fix: str, purpose: str = "") -> dict:
    """A ``torch.save``d dict of tensors and plain data; anything else is refused in one line ending in ``fix``.

    The zip container's CRCs are checked first (``torch.load`` does not), then the file is
    unpickled with ``weights_only=True``, which refuses objects that could run code.
    ``purpose``: words after "cannot be read" in the error (e.g. " to resume").
    """
    path = Path(path)
    unreadable = f"{path}: cannot be read{purpose} (damaged, or not written by cilf); {fix}"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        raise CheckpointError(unreadable) from None
    if bad is not None:
        raise CheckpointError(f"{path}: checksum mismatch in its part {bad!r}, the file is damaged; {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused, it holds Python objects other than tensors and plain data (loading "
            f"it could run code; cilf never writes such a file); {fix}"
        ) from None
    except Exception:  # truncated or foreign content inside a valid zip
        raise CheckpointError(unreadable) from None
    if not isinstance(state, dict):
        raise CheckpointError(unreadable)
    return state


def is_checkpoint(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / WEIGHTS).is_file() and (d / CONFIG).is_file()


def resolve_checkpoint(directory: str | Path) -> Path:
    """A checkpoint folder itself, or the ``best`` checkpoint of a training run's folder."""
    d = Path(directory)
    if is_checkpoint(d):
        return d
    if is_checkpoint(d / "best"):
        return d / "best"
    raise FileNotFoundError(
        f"{d} is not a cilf checkpoint (needs {WEIGHTS} and {CONFIG}) nor a training run "
        f"with one in best/; train one with `python -m cilf train --out DIR` and pass DIR"
    )


def read_weights_record(directory: str | Path) -> WeightsRecord:
    """The checkpoint's CLIP weights record (``clip_weights.json``)."""
    path = Path(directory) / CLIP_WEIGHTS
    try:
        return WeightsRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(
            f"{path}: cannot be read, the file is damaged; copy the checkpoint again or retrain"
        ) from None


def checkpoint_config(directory: Path, clip_weights: str | Path | None = None) -> CILFConfig:
    """The checkpoint's config with ``pretrained`` pointing at its CLIP weights on this machine
    (``cilf.persist.clip_weights.locate``; ``clip_weights``: a file the user gives)."""
    cfg, _ = CILFConfig.load_saved(directory / CONFIG)  # a fit setting it may still carry: already in its weights
    record = read_weights_record(directory)
    found = locate(record, clip_weights, what=f"checkpoint {directory}")
    if found == cfg.pretrained or (found and cfg.pretrained and _same_file(found, cfg.pretrained)):
        return cfg  # where it was: the config stays as saved (a resumed run compares it)
    return cfg.replace(pretrained=found)


def moved_weights(directory: str | Path, pretrained: str | None) -> str | None:
    """``pretrained`` when it names, at another path, the weights file the checkpoint was trained on (same
    SHA-256): resuming a run whose CLIP weights file was moved. Else None."""
    record = read_weights_record(directory)
    if record.source != "file" or not pretrained or not Path(pretrained).is_file():
        return None
    return pretrained if file_sha256(pretrained) == record.sha256 else None


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).is_file() and Path(b).is_file() and Path(a).samefile(b)
    except OSError:
        return False


def load_model(
    directory: str | Path, device: str | torch.device = "cpu", clip_weights: str | Path | None = None
) -> CILF:
    """Rebuild the model from a checkpoint folder, or a run folder's best/ (verified; clear error if neither).

    Its CLIP weights are found by content (see :func:`checkpoint_config`); ``clip_weights``: the
    weights file to use where it was moved (must hold the same weights: SHA-256 checked)."""
    d = resolve_checkpoint(directory)
    verify_checkpoint(d)
    model = create_model(checkpoint_config(d, clip_weights))
    try:
        state = load_file(str(d / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise CheckpointError(
            f"{d / WEIGHTS}: cannot be read ({e}); the file is damaged or not a cilf checkpoint: "
            f"copy it again or retrain"
        ) from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise ValueError(
            f"{d / WEIGHTS}: the weights do not fit {d / CONFIG} ({first}); was the config edited after training?"
        ) from None
    if unexpected:
        raise ValueError(f"{d / WEIGHTS}: unexpected weights {unexpected[:5]} (checkpoint from another version?)")
    bad = [k for k in missing if not k.startswith("clip.model.")]  # frozen CLIP weights come from clip_weights.json
    if bad:
        raise ValueError(f"{d / WEIGHTS}: missing weights {bad[:5]}")
    return model.to(device).eval()


def load_train_state(directory: str | Path) -> dict:
    """Optimizer, scheduler, epoch and history saved beside the last checkpoint (verified; tensors and plain data)."""
    d = Path(directory)
    path, fix = d / STATE, "start a new run with another --out"
    entries = verify_checkpoint(d)
    if STATE not in entries:
        raise CheckpointError(
            f"{path}: cannot be read to resume (not listed in {d / MANIFEST}: it was not written "
            f"with this checkpoint); {fix}"
        )
    return load_torch_state(path, fix, purpose=" to resume")
