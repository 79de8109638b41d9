"""The calibrated correction (docs/method.md, section 7): the error ensemble E is fitted after the age model,
on residuals of first estimates that it has not seen fitted.

K-fold cross-fitting on the training split: fold k's first estimates y0 come from an age model trained with the
same config, settings and seed on the other K-1 folds (subject-exclusive folds when subjects are known). E then
learns from fused features h, these out-of-fold estimates y0 and their signed errors y0 - y, together with the
usual candidates y + U(-R, R) (``ErrorEnsemble.fit_loss``). Which features (``CorrectionFit.error_features``):
``final``, the final model's (the feature space E meets at test time, but in-sample: that model trained on these
images), or ``out_of_fold``, each image's from the fold model that did not train on it (out of sample, but K
models' feature spaces, none of them the final model's). Both mismatches, and how the default was chosen on
validation data: docs/method.md, section 7. Validation and test images never enter: every function here sees the
training split only.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from cilf.app.engine import fit_age_model
from cilf.app.features import boundary_features
from cilf.app.infer import forward_batches, predict_features
from cilf.app.params import Budget, CorrectionFit
from cilf.metrics import mae
from cilf.model.cilf_model import CILF
from cilf.model.clip import BoundaryTokens, ImageFeatures
from cilf.model.config import CILFConfig
from cilf.model.correction import ErrorEnsemble, correct_estimates
from cilf.stats import N_RESAMPLES, paired_mae_difference


def fit_features(
    cfg: CILFConfig,
    features,
    ages: torch.Tensor,
    epochs: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    warmup_steps: int = 50,
    device: str | torch.device = "cpu",
    groups=None,
    backbone_lr_scale: float = 0.2,
    text_from: CILF | None = None,
    correction: CorrectionFit | None = None,
) -> CILF:
    """Train CILF-CIAE on cached features of n images for a fixed budget (:func:`cilf.app.engine.fit_age_model`);
    with the post-hoc correction (``cfg.correction_fit="crossfit"``) then fit its error model on out-of-fold
    residuals of these images (``groups``: their subjects, for subject-exclusive folds; ``correction``: how, default
    :class:`CorrectionFit`; :func:`calibrate_correction`), on the features the final model's (fine-tuned) tower
    gives them. What benchmarks and ablations train."""
    budget = Budget(epochs, batch_size, lr, weight_decay, warmup_steps, seed, str(device))
    model = fit_age_model(cfg, features, ages, budget, backbone_lr_scale=backbone_lr_scale, text_from=text_from)
    if cfg.posthoc_correction:
        if isinstance(features, BoundaryTokens):
            features = boundary_features(model.eval(), features, device=device)
        calibrate_correction(model, features, ages, budget, groups, correction)
    return model.eval()


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


def fold_models(
    cfg: CILFConfig,
    features: ImageFeatures,
    ages: torch.Tensor,
    folds: np.ndarray,
    settings: Budget,
    text_from: CILF | None = None,
):
    """Yields (held, model) per cross-fitting fold: the indices (m) of the fold's images and the age model of
    ``cfg`` (without correction: its training is the same either way) trained on the other folds' images.

    features (n images), ages (n), folds (n) from :func:`fold_ids`. ``text_from``: the final model, whose encoded
    frozen prompts the fold models reuse (the same text tower: identical results, K encodings fewer).
    """
    # finished features in: a fine-tuned tower's last blocks are held fixed (they already made the features)
    fold_cfg = cfg.replace(correction=False, unfreeze_last_blocks=0)
    for k in np.unique(folds):
        held = torch.from_numpy(np.flatnonzero(folds == k))
        kept = torch.from_numpy(np.flatnonzero(folds != k))
        yield held, fit_age_model(fold_cfg, features[kept], ages[kept], settings, text_from=text_from)


def out_of_fold_estimates(
    cfg: CILFConfig,
    features: ImageFeatures,
    ages: torch.Tensor,
    folds: np.ndarray,
    settings: Budget,
    text_from: CILF | None = None,
    fused: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """First estimates y0 (n), and with ``fused`` the fused features h (n x D, else None), where image i's come
    from an age model trained without i's fold (:func:`fold_models`, whose arguments these are)."""
    y0, h = torch.empty(len(ages)), None
    for held, model in fold_models(cfg, features, ages, folds, settings, text_from):
        y0[held] = torch.from_numpy(predict_features(model, features[held], device=settings.device)["y0"])
        if fused:  # only for CorrectionFit.error_features="out_of_fold"
            h_k = fused_features(model, features[held], device=settings.device).cpu()
            h = h if h is not None else torch.empty(len(ages), h_k.shape[1], dtype=h_k.dtype)
            h[held] = h_k
    return y0, h


@torch.no_grad()
def fused_features(
    model: CILF, features: ImageFeatures, batch_size: int = 256, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The fused image embeddings f (n x D) of ``model`` for features of n images (eval mode, no correction)."""
    return torch.cat(
        [out.fused for _, out in forward_batches(model, features, batch_size=batch_size, device=device, correct=False)]
    )


def fit_error_model(
    corrector: ErrorEnsemble,
    h: torch.Tensor,
    y0: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    candidate_range: float = 10.0,
    seed: int = 0,
    batch_size: int = 256,
) -> float:
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


def calibrate_correction(
    model: CILF,
    features: ImageFeatures,
    ages: torch.Tensor,
    settings: Budget,
    groups=None,
    fit: CorrectionFit | None = None,
) -> dict:
    """Fit ``model``'s error ensemble the calibrated way on the TRAINING split (features and ages of n
    images; ``groups``: their subjects, for subject-exclusive folds; ``settings``: the fold models' budget;
    ``fit``: folds, epochs, lr and gate, default :class:`CorrectionFit`). Returns what was done, with the
    out-of-fold and in-sample MAE of the first estimates (this run, training split)."""
    cfg, fit = model.cfg, fit or CorrectionFit()
    if model.corrector is None:
        raise ValueError("this model was built with correction=False: there is no error model to fit")
    ages = ages.float().cpu()
    folds = fold_ids(len(ages), fit.crossfit_folds, settings.seed, groups)
    oof_features = fit.error_features == "out_of_fold"
    y0_oof, h_oof = out_of_fold_estimates(cfg, features, ages, folds, settings, text_from=model, fused=oof_features)
    y0_in = predict_features(model, features, device=settings.device, correct=False)["y0"]
    h = h_oof if oof_features else fused_features(model, features, device=settings.device)
    h = h.to(next(model.parameters()).device)
    y0_oof, ages_d = y0_oof.to(h.device), ages.to(h.device)
    gate = (
        held_out_gate(
            model.corrector,
            h,
            y0_oof,
            ages_d,
            folds,
            cfg,
            fit,
            settings.seed,
            usable_groups(groups, fit.crossfit_folds),
        )
        if fit.correction_gate
        else None
    )
    loss = fit_error_model(
        model.corrector,
        h,
        y0_oof,
        ages_d,
        epochs=fit.error_epochs,
        lr=fit.error_lr,
        candidate_range=cfg.candidate_range,
        seed=settings.seed,
    )
    model.corrector.applied.fill_(gate is None or gate["applied"])
    model.eval()
    grouped = usable_groups(groups, fit.crossfit_folds) is not None
    info = {
        "method": "crossfit",
        "folds": int(fit.crossfit_folds),
        "error_features": fit.error_features,
        "subject_exclusive": grouped,
        "n_train": int(len(ages)),
        "mae_y0_out_of_fold": mae(ages.numpy(), y0_oof.cpu().numpy()),
        "mae_y0_in_sample": mae(ages.numpy(), y0_in),
        "error_fit_loss": last_finite(loss),
    }
    return {**info, "gate": gate} if gate is not None else info


GATE_RULE = "subjects, 9999 resamples"  # what the held-out gate's CI resamples (part of a saved bench run's key)


def held_out_gate(
    corrector: ErrorEnsemble,
    h: torch.Tensor,
    y0: torch.Tensor,
    y: torch.Tensor,
    folds: np.ndarray,
    cfg: CILFConfig,
    fit: CorrectionFit | None = None,
    seed: int = 0,
    groups=None,
) -> dict:
    """Does correcting raise the error on images the error model has not seen? (``fit.correction_gate``;
    ``cfg``: the model's correction rule, ``fit``: the error model's epochs and lr, default :class:`CorrectionFit`)

    A copy of the (not yet fitted) ``corrector`` is fitted like E on the out-of-fold residuals of every
    cross-fitting fold but the last, then runs E_P and the inverse correction on the last fold's out-of-fold
    first estimates. h (n x D) fused features, y0 and y (n) out-of-fold estimates and true ages, folds (n).
    Returns the held-out fold's size, its MAE before and after, the paired difference after - before with its
    95% CI (bootstrap over the fold's subjects when ``groups`` gives one id per image, else over its images;
    9,999 resamples, ``cilf.stats``), and ``applied``: False only when that CI lies
    wholly above 0 (the correction raised the error with 95% confidence); a fold too small to judge keeps it.
    """
    fit = fit or CorrectionFit()
    held = torch.from_numpy(folds == folds.max()).to(h.device)
    probe = copy.deepcopy(corrector)
    fit_error_model(
        probe,
        h[~held],
        y0[~held],
        y[~held],
        epochs=fit.error_epochs,
        lr=fit.error_lr,
        candidate_range=cfg.candidate_range,
        seed=seed,
    )
    with torch.no_grad():
        r = correct_estimates(probe, h[held], y0[held], cfg)
    x = r.x
    err_x, err_y0 = (x - y[held]).abs().cpu().numpy(), (y0[held] - y[held]).abs().cpu().numpy()
    out = {
        "held_out_images": int(held.sum()),
        "mae_y0": float(err_y0.mean()),
        "mae_xstar": float(err_x.mean()),
        "corrected": int((~r.accepted).sum()),
    }
    if len(err_x) < 2:
        return {**out, "applied": True}
    held_groups = None if groups is None else np.asarray(groups)[held.cpu().numpy()]
    if held_groups is not None and len(set(held_groups.tolist())) < 2:  # one subject: no bootstrap over subjects
        held_groups = None
    d = paired_mae_difference(err_x, err_y0, groups=held_groups, n_resamples=N_RESAMPLES, seed=seed)
    unit = "subjects" if held_groups is not None else "images"
    return {**out, "delta_ci": [d.ci_low, d.ci_high], "ci_unit": unit, "applied": not d.ci_low > 0}


def last_finite(x: float) -> float | None:
    """x, or None when it is not finite (JSON output never holds NaN)."""
    return float(x) if np.isfinite(x) else None
