"""Sample images available offline, for demos and benchmarks."""

from __future__ import annotations

from pathlib import Path


def sample_photo() -> Path:
    """A real photograph available offline: matplotlib's sample ``grace_hopper.jpg`` (512 x 600)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
