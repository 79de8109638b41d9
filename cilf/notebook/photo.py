"""One photo through the whole pipeline, step by step (notebook 07): detect -> align -> dense
pixel-text maps -> estimate -> correction trajectory.

``analyse_photo`` returns every step's artefacts for one photo: ``cilf.predict``'s rows (one per face,
boxes and detector scores, or one ``no_face`` row), the aligned crops ``predict`` estimates on, the
dense maps M = cos(P, T) of each crop (docs/method.md, section 2), the zero-shot age from the CLIP
prompts, and with a trained model y0, x* and the correction trajectory (docs/method.md, section 7).

``photo_model`` picks the model: real CLIP weights (ViT-B-16, ``openai``) when they are already in
the local open_clip / Hugging Face cache (looked up on disk, never fetched), used zero-shot; else the
trained demo model of ``cilf.notebook.zoo`` on the bundled micro-CLIP, which has only seen SynthAge
(synthetic) faces, so its ages for real photos are not meaningful.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image

from cilf.app.predict import FaceRow, face_crops, predict
from cilf.data.images import load_image
from cilf.labels import SYNTHAGE
from cilf.model.cilf_model import CILF
from cilf.model.config import default_config
from cilf.model.similarity import dense_score_maps
from cilf.notebook.zoo import quick_model
from cilf.persist.factory import create_model

REAL_CLIP = ("ViT-B-16", "openai")  # the backbone whose ages mean something on real photos
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # what open_clip asks the hub for


def local_clip_weights(
    model_name: str = REAL_CLIP[0], tag: str = REAL_CLIP[1], cache_dir: str | Path | None = None
) -> str | None:
    """Path of open_clip's ``model_name`` / ``tag`` weights when already in the local Hugging Face
    cache (``cache_dir``, default the hub's own), else None. Only looks at the disk: nothing is fetched."""
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo, name = os.path.split(hub)  # "org/model/" names no file: open_clip then tries HF_WEIGHT_FILES
    for filename in [name] if name else HF_WEIGHT_FILES:
        found = try_to_load_from_cache(repo, filename, cache_dir=None if cache_dir is None else str(cache_dir))
        if isinstance(found, str) and Path(found).is_file():
            return found
    return None


@dataclass
class PhotoModel:
    """The model a photo goes through: ``zero_shot`` (ages from the prompts alone), ``note`` (which
    model and what its ages are worth on a real photo) and a short ``label`` for figure titles."""

    model: CILF
    zero_shot: bool
    note: str
    label: str


def photo_model(
    fast: bool = True, real: tuple[str, str] = REAL_CLIP, cache_dir: str | Path | None = None
) -> PhotoModel:
    """Real CLIP weights found locally: that backbone, zero-shot from its prompts (no head was trained
    on it here). Else the trained demo model on the bundled micro-CLIP (``zoo.quick_model(fast)``)."""
    name, tag = real
    path = local_clip_weights(name, tag, cache_dir)
    if path is not None:
        model = create_model(default_config().replace(clip_model=name, pretrained=tag)).eval()
        return PhotoModel(
            model,
            True,
            f"real CLIP weights {name} / {tag} found in the local cache: ages are its "
            f"zero-shot estimates from the age prompts; no correction (E_P was not "
            f"trained on this backbone here)",
            f"{name} ({tag}), zero-shot",
        )

    model, _ = quick_model(fast=fast)
    return PhotoModel(
        model,
        False,
        f"no {name} / {tag} weights in the local open_clip cache (nothing is "
        f"downloaded): using the bundled micro-CLIP demo model, trained on SynthAge "
        f"(synthetic) faces only. Its ages for a real photo are NOT meaningful; the "
        f"steps are drawn to show the pipeline. Real-photo ages need real CLIP "
        f"weights ({name}, pretrained={tag}).",
        f"bundled micro-CLIP demo model, trained on {SYNTHAGE} only",
    )


@dataclass
class PhotoSteps:
    """Every step for one photo with F faces (K age classes, H x W patch grid).

    ``rows``: ``cilf.predict``'s rows (F, or one ``no_face`` row). ``crops``: the F aligned faces.
    ``maps``: F x K x H x W dense maps cos(P, T). ``zero_shot``: F ages from the prompts alone.
    ``y0``, ``x``: F first and corrected estimates, ``trajectories``: F arrays x_0..x_steps,
    ``candidates`` (G ages) and ``errors`` (F x G): E_P's predicted error e(x) at each candidate age x,
    the function the correction walks down (x <- x - eta e(x)); None / empty for a zero-shot model."""

    image: Image.Image
    rows: list[FaceRow]
    crops: list[Image.Image]
    maps: np.ndarray
    class_ages: list[int]
    zero_shot: np.ndarray
    y0: np.ndarray | None = None
    x: np.ndarray | None = None
    trajectories: list[np.ndarray] = field(default_factory=list)
    candidates: np.ndarray | None = None
    errors: np.ndarray | None = None

    @property
    def faces(self) -> int:
        return len(self.crops)


def _as_pil(photo) -> tuple[str, Image.Image]:
    if isinstance(photo, (str, Path)):
        return Path(photo).name, load_image(photo)  # BadImageError names the file and why
    if isinstance(photo, Image.Image):
        return "<image>", photo.convert("RGB")
    raise TypeError(f"expected a file path or a PIL image, got {type(photo).__name__}")


@torch.inference_mode()
def analyse_photo(photo, model: CILF, zero_shot: bool = False) -> PhotoSteps:
    """A photo (path or PIL image) -> :class:`PhotoSteps` (rows named by the file's name). Faces are found and aligned exactly as
    ``cilf.predict`` does (its rows are returned as they are); the maps, y0 and trajectories come
    from the same crops through the same model."""
    name, img = _as_pil(photo)
    rows = predict([img], model, zero_shot=zero_shot)
    for r in rows:
        r.file = name
    crops = [crop for _, crop in face_crops(img)]
    ages = list(model.cfg.ages)
    if not crops:
        k, (h, w) = len(ages), model.clip.grid
        return PhotoSteps(img, rows, [], np.zeros((0, k, h, w), np.float32), ages, np.zeros(0))
    model.eval()
    feats = model.encode_image(torch.stack([model.preprocess(c) for c in crops]))
    maps = dense_score_maps(feats.tokens, model.clip.class_text_features(), feats.grid)
    steps = PhotoSteps(img, rows, crops, maps.float().numpy(), ages, model.clip.zero_shot_ages(feats.pooled).numpy())
    if zero_shot:
        return steps
    out = model(features=feats)
    steps.y0, steps.x = out.y0.numpy(), out.age.numpy()
    c = out.correction
    if c is not None:
        traj = c.trajectory.numpy()  # T' x F
        steps.trajectories = [traj[: int(c.steps[i]) + 1, i] for i in range(len(crops))]
        fn = model.corrector.error_fn(out.fused, out.y0)
        grid = torch.linspace(model.cfg.age_min, model.cfg.age_max, 101)
        steps.candidates = grid.numpy()
        steps.errors = torch.stack([fn(torch.full_like(out.y0, float(a)))[0] for a in grid], dim=1).numpy()
    return steps
