"""SynthAge's renderer draws the same pixels for the same seed."""

import hashlib

import numpy as np
import PIL
import pytest

from cilf.data.synthage import render_face, sample_subject

# sha256 (first 16 hex digits) of the pixels of render_face before it was split into drawing steps
# (the single 167-line function of commit 34d1aac), computed with Pillow 12.3.0 and numpy 2.4.6.
# The cases cover a baby with long hair, beards, glasses, greying, recession and three image sizes.
GOLDEN = {
    (0, 2, 112): "ee7b488c41f5db20",
    (3, 35, 112): "e532c50aa45363c2",
    (5, 70, 96): "9da64503277a5ede",
    (11, 48, 112): "65b374fb81fdcc5d",
    (17, 88, 64): "4d824919e0160ff1",
    (22, 25, 112): "75c236c634f9a802",
}


@pytest.mark.skipif(PIL.__version__.split(".")[0] != "12", reason="golden pixels recorded with Pillow 12")
@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_render_face_pixels_match_the_recorded_ones(case):
    sid, age, size = case
    rng = np.random.default_rng([sid, age])
    img, _ = render_face(sample_subject(rng, sid), age, rng, size=size)
    assert img.size == (size, size)
    assert hashlib.sha256(np.asarray(img).tobytes()).hexdigest()[:16] == GOLDEN[case]


def test_render_face_attributes_follow_age():
    rng = np.random.default_rng(0)
    s = sample_subject(rng, 0)
    young = [render_face(s, 20, np.random.default_rng(i), size=32)[1] for i in range(5)]
    old = [render_face(s, 85, np.random.default_rng(i), size=32)[1] for i in range(5)]
    assert max(a["grey"] for a in young) < min(a["grey"] for a in old)
    assert max(a["skin_age"] for a in young) < min(a["skin_age"] for a in old)
