"""Checkpoints: ``model.safetensors`` + ``config.json`` (+ ``train_state.pt`` to resume training).

Frozen CLIP weights that can be reloaded from their source (bundled, local path, tag) are not
copied into checkpoints; random-init or fine-tuned CLIP weights are.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import CILFConfig
from .cilf_model import CILF

WEIGHTS, CONFIG, STATE = "model.safetensors", "config.json", "train_state.pt"


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(model: CILF, directory: str | Path, train_state: dict | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _atomic(d / WEIGHTS, lambda p: save_file(model.trainable_state_dict(), str(p), metadata={"format": "pt"}))
    _atomic(d / CONFIG, lambda p: p.write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n"))
    if train_state is not None:
        _atomic(d / STATE, lambda p: torch.save(train_state, p))
    return d


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
    raise FileNotFoundError(f"{d} is not a cilf checkpoint (needs {WEIGHTS} and {CONFIG}) nor a training run "
                            f"with one in best/; train one with `python -m cilf train --out DIR` and pass DIR")


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> CILF:
    """Rebuild the model from a checkpoint folder, or a run folder's best/ (clear error if neither)."""
    d = resolve_checkpoint(directory)
    cfg = CILFConfig.load(d / CONFIG)
    model = CILF(cfg)
    try:
        state = load_file(str(d / WEIGHTS))
    except Exception as e:  # safetensors raises its own error types for truncated or foreign files
        raise ValueError(f"{d / WEIGHTS}: cannot be read ({e}); the file is damaged or not a cilf checkpoint: "
                         f"copy it again or retrain") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = next((line.strip() for line in str(e).splitlines() if "size mismatch" in line), str(e))
        raise ValueError(f"{d / WEIGHTS}: the weights do not fit {d / CONFIG} ({first}); was the config edited "
                         f"after training?") from None
    if unexpected:
        raise ValueError(f"{d / WEIGHTS}: unexpected weights {unexpected[:5]} (checkpoint from another version?)")
    bad = [k for k in missing if not k.startswith("clip.model.")]
    if bad:
        raise ValueError(f"{d / WEIGHTS}: missing weights {bad[:5]}")
    return model.to(device).eval()


def load_train_state(directory: str | Path) -> dict:
    """Optimizer, scheduler, epoch and history saved beside the last checkpoint (tensors and plain data only)."""
    path = Path(directory) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, foreign, or holding objects a weights-only load refuses
        raise ValueError(f"{path}: cannot be read to resume (damaged, or not written by cilf); "
                         f"start a new run with another --out") from None
