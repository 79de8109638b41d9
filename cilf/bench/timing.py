"""Timing a call: the median of repeated runs, synchronised with the GPU."""

from __future__ import annotations

import time

import numpy as np
import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MIN_SECONDS = 0.25  # timed calls of one measurement add up to at least this


def median_time(
    fn,
    repeats: int = 5,
    warmup: int = 2,
    *,
    device: torch.device = torch.device("cpu"),
    min_seconds: float = MIN_SECONDS,
    max_repeats: int = 1000,
) -> float:
    """Median seconds of ``fn()`` after ``warmup`` calls: at least ``repeats`` timed calls, more
    (up to ``max_repeats``) until they add up to ``min_seconds``, so millisecond calls get a stable median."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
