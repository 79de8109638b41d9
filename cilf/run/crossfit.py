"""The calibrated correction (docs/method.md, section 7): the error ensemble E is fitted after the age model,
on residuals of first estimates that it has not seen fitted.

K-fold cross-fitting on the training split: fold k's first estimates come from an age model trained with
the same config, settings and seed on the other K-1 folds (subject-exclusive folds when subjects are
known). E then learns from the final model's fused features h, these out-of-fold estimates y0 and their
signed errors y0 - y, together with the usual candidates y + U(-R, R) (``ErrorEnsemble.fit_loss``).
Validation and test images never enter: every function here sees the training split only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..metrics import mae
from ..model.cilf_model import CILF
from ..model.clip import ImageFeatures
from ..model.config import CILFConfig
from ..model.correction import ErrorEnsemble


@dataclass
class FitSettings:
    """How an age model is trained on cached features (as :func:`cilf.run.train.fit_features` takes them)."""

    epochs: int
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    seed: int = 0
    device: str = "cpu"


def usable_groups(groups, k: int) -> list[str] | None:
    """The group labels as strings, or None when there are none, one is empty or there are fewer than k."""
    if groups is None:
        return None
    labels = [str(g) for g in groups]
    return labels if all(labels) and len(set(labels)) >= k else None


def fold_ids(n: int, k: int, seed: int, groups=None) -> np.ndarray:
    """(n) fold index in 0..k-1 per image, seeded. ``groups`` (n labels, e.g. subjects): each group stays
    in one fold (unless :func:`usable_groups` finds them unusable: then images are split one by one)."""
    rng = np.random.default_rng(seed)
    labels = usable_groups(groups, k)
    if labels is None:
        return (rng.permutation(n) % k).astype(np.int64)
    uniq = sorted(set(labels))
    fold_of = {uniq[g]: i % k for i, g in enumerate(rng.permutation(len(uniq)))}
    return np.array([fold_of[g] for g in labels], dtype=np.int64)


def out_of_fold_estimates(cfg: CILFConfig, features: ImageFeatures, ages: torch.Tensor, folds: np.ndarray,
                          settings: FitSettings, text_from: CILF | None = None) -> torch.Tensor:
    """First estimates y0 (n) where image i's comes from an age model trained without i's fold.

    features (n images), ages (n), folds (n) from :func:`fold_ids`. The fold models are the age model of
    ``cfg`` without correction (its training is the same either way). ``text_from``: the final model, whose
    encoded frozen prompts the fold models reuse (the same text tower: identical results, K encodings fewer).
    """
    from .evaluate import predict_features
    from .train import fit_features  # train imports this module: a call-time import

    # finished features in: a fine-tuned tower's last blocks are held fixed (they already made the features)
    fold_cfg = cfg.replace(correction=False, unfreeze_last_blocks=0)
    y0 = torch.empty(len(ages))
    for k in np.unique(folds):
        held = torch.from_numpy(np.flatnonzero(folds == k))
        kept = torch.from_numpy(np.flatnonzero(folds != k))
        model = fit_features(fold_cfg, features[kept], ages[kept], **asdict(settings), text_from=text_from)
        y0[held] = torch.from_numpy(predict_features(model, features[held], device=settings.device)["y0"])
    return y0


@torch.no_grad()
def fused_features(model: CILF, features: ImageFeatures, batch_size: int = 256,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """The fused image embeddings f (n x D) of ``model`` for features of n images (eval mode, no correction)."""
    model.eval()
    return torch.cat([model(features=features[i : i + batch_size].to(device), correct=False).fused
                      for i in range(0, len(features), batch_size)])


def fit_error_model(corrector: ErrorEnsemble, h: torch.Tensor, y0: torch.Tensor, y: torch.Tensor, *, epochs: int,
                    lr: float = 1e-3, candidate_range: float = 10.0, seed: int = 0, batch_size: int = 256) -> float:
    """Fit E on features h (n x D), first estimates y0 (n) and true ages y (n) with ``ErrorEnsemble.fit_loss``
    (AdamW, seeded shuffles and candidates); marks it ``calibrated``. Returns the mean loss of the last epoch."""
    h, y0, y = h.detach(), y0.detach().to(h), y.detach().to(h)
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    params = [p for p in corrector.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    corrector.train()
    last = float("nan")
    with torch.enable_grad():
        for epoch in range(epochs):
            torch.manual_seed(seed * 100043 + epoch)  # the candidate noise
            perm = torch.randperm(len(y), generator=gen).to(h.device)
            total, steps = 0.0, 0
            for i in range(0, len(perm), batch_size):
                idx = perm[i : i + batch_size]
                loss = corrector.fit_loss(h[idx], y0[idx], y[idx], candidate_range)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, steps = total + float(loss.detach()), steps + 1
            last = total / max(steps, 1)
    corrector.eval()
    corrector.calibrated.fill_(True)
    return last


def calibrate_correction(model: CILF, features: ImageFeatures, ages: torch.Tensor, settings: FitSettings,
                         groups=None) -> dict:
    """Fit ``model``'s error ensemble the calibrated way on the TRAINING split (features and ages of n
    images; ``groups``: their subjects, for subject-exclusive folds). Returns what was done, with the
    out-of-fold and in-sample MAE of the first estimates (this run, training split)."""
    from .evaluate import predict_features

    cfg = model.cfg
    if model.corrector is None:
        raise ValueError("this model was built with correction=False: there is no error model to fit")
    ages = ages.float().cpu()
    folds = fold_ids(len(ages), cfg.crossfit_folds, settings.seed, groups)
    y0_oof = out_of_fold_estimates(cfg, features, ages, folds, settings, text_from=model)
    y0_in = predict_features(model, features, device=settings.device, correct=False)["y0"]
    h = fused_features(model, features, device=settings.device)
    loss = fit_error_model(model.corrector, h, y0_oof.to(h.device), ages.to(h.device), epochs=cfg.error_epochs,
                           lr=cfg.error_lr, candidate_range=cfg.candidate_range, seed=settings.seed)
    model.eval()
    grouped = usable_groups(groups, cfg.crossfit_folds) is not None
    return {"method": "crossfit", "folds": int(cfg.crossfit_folds), "subject_exclusive": grouped,
            "n_train": int(len(ages)), "mae_y0_out_of_fold": mae(ages.numpy(), y0_oof.numpy()),
            "mae_y0_in_sample": mae(ages.numpy(), y0_in), "error_fit_loss": last_finite(loss)}


def last_finite(x: float) -> float | None:
    """x, or None when it is not finite (JSON output never holds NaN)."""
    return float(x) if np.isfinite(x) else None
