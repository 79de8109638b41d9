"""Seeds, devices, and the folders cilf writes to (cache, generated data)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return torch.device(name)


def cache_dir() -> Path:
    """Where cilf caches features, demo models and benchmark runs: ``$CILF_CACHE``, default ~/.cache/cilf."""
    return Path(os.environ.get("CILF_CACHE", Path.home() / ".cache" / "cilf"))


def data_dir() -> Path:
    """Where generated data (SynthAge) is written: ``$CILF_DATA``, default ~/.cache/cilf/data
    (independent of ``$CILF_CACHE``)."""
    return Path(os.environ.get("CILF_DATA", Path.home() / ".cache" / "cilf" / "data"))
