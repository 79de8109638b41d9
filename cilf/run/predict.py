"""Predict ages for image files, with the trained model or zero-shot from the CLIP prompts."""
from __future__ import annotations

from pathlib import Path

import torch
from tqdm import tqdm

from ..model.checkpoint import load_model
from ..model.config import default_config
from ..data.images import BadImageError, SkipLog, is_image_file, load_image
from .evaluate import zero_shot_ages
from ..model.cilf_model import CILF


def load_predictor(checkpoint: str | Path | None = None, device: str | torch.device = "cpu") -> tuple[CILF, bool]:
    """(model, zero_shot): a trained checkpoint, or the default CLIP used zero-shot."""
    if checkpoint is not None:
        return load_model(checkpoint, device), False
    return CILF(default_config()).to(device).eval(), True


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files as given; folders expand to the image files inside them (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if is_image_file(q)))
        else:
            out.append(p)
    return out


@torch.inference_mode()
def predict_paths(model: CILF, paths: list[str | Path], zero_shot: bool = False, batch_size: int = 32,
                  device: str | torch.device = "cpu", progress: bool = False) -> tuple[list[dict], SkipLog]:
    """One dict per readable image (path, age, and for the full model y0, steps, accepted, spread);
    unreadable files are skipped and listed in the returned SkipLog."""
    model.eval()
    skips = SkipLog()
    good: list[tuple[Path, torch.Tensor]] = []
    for p in expand_paths(paths):
        try:
            good.append((p, model.preprocess(load_image(p))))
        except BadImageError as e:
            skips.add(e)
    results = []
    for i in tqdm(range(0, len(good), batch_size), desc="predict", disable=not progress or not good, leave=False):
        chunk = good[i : i + batch_size]
        feats = model.encode_image(torch.stack([t for _, t in chunk]).to(device))
        if zero_shot:
            ages = zero_shot_ages(model, feats)
            results += [{"path": str(p), "age": float(a), "mode": "zero-shot"} for (p, _), a in zip(chunk, ages)]
            continue
        out = model(features=feats)
        c = out.correction
        for j, (p, _) in enumerate(chunk):
            row = {"path": str(p), "age": float(out.age[j]), "y0": float(out.y0[j]), "mode": "cilf"}
            if c is not None:
                row.update(steps=int(c.steps[j]), accepted=bool(c.accepted[j]), spread=float(c.spread[j]))
            results.append(row)
    return results, skips
