"""Robust image loading: awkward formats converted to RGB, broken files refused with the reason."""

import numpy as np
import pytest
from PIL import Image

from cilf.data import BadImageError, load_image


def test_load_image_converts_or_refuses_with_reason(tmp_path, bad_files):
    f = bad_files
    for key in ("good", "cmyk", "png16", "rgba"):
        img = load_image(f[key])
        assert img.mode == "RGB" and img.size == (64, 64)
    arr = np.asarray(load_image(f["png16"]))
    assert arr.min() == 0 and arr.max() == 255  # 16-bit rescaled, not clipped
    reasons = {"empty": "empty file", "truncated": "truncated", "text": "not an image"}
    for key, reason in reasons.items():
        with pytest.raises(BadImageError, match=reason):
            load_image(f[key])
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    with pytest.raises(BadImageError, match="too small"):
        load_image(tmp_path / "tiny.png")


def test_exif_rotation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_image(tmp_path / "rot.jpg").size == (20, 40)
