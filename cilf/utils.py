"""Seeds and devices."""
from __future__ import annotations

import os
import random

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


def offline_by_default() -> None:
    """Fail fast instead of retrying downloads when no network is there (tests, run_all.sh)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
