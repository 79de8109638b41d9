"""The correction stage against plain recalibration, and a positive control (docs/method.md, section 7).

The correction (E_P and the inverse loop) is fitted on out-of-fold first estimates y0 of the training split. The
simplest thing that uses the same residuals is a recalibration of y0 alone: a straight line y ~ a + b y0, or a
monotone (isotonic) map, fitted on the same out-of-fold pairs. The correction counts as helping only where it beats
that baseline on the test images.

The positive control makes the first estimator wrong in a known, systematic way: every y0 (out-of-fold and test)
shrunk towards the training mean, y0' = m + s (y0 - m). Recalibration undoes that exactly, and a correction that
works must recover most of it; if the same pipeline cannot resolve that effect, a null result on the real y0 says
nothing about the correction.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression

from cilf.app.crossfit import fit_error_model, fold_ids, fused_features, out_of_fold_estimates
from cilf.app.infer import predict_features
from cilf.app.params import Budget, CorrectionFit
from cilf.model.cilf_model import CILF, error_ensemble
from cilf.model.clip import ImageFeatures
from cilf.model.correction import ErrorEnsemble, correct_estimates
from cilf.stats import mean_ci, stable_difference

SHRINK = 0.6  # the control's first estimator keeps 60% of each y0's distance from the training mean
CORRECTION_FORMS = {  # bench method -> its row title where the correction's forms stand side by side
    "correction=off": "first estimate y0 (no correction)",
    "full": "post-hoc correction (default: E fitted after training on out-of-fold residuals)",
    "correction_fit=joint": "joint correction (the paper's end-to-end form: E trained with the age model)",
    "train_mean": "training-set mean (trivial baseline)",
}


def correction_forms_rows(methods: dict) -> list[tuple[str, str, str]]:
    """The correction's forms from a bench result's ``methods`` (:data:`CORRECTION_FORMS`): one (title, "MAE
    [95% CI]", "minus the post-hoc correction [95% CI]", "-" for the post-hoc row itself) per form."""
    rows = []
    for key, title in CORRECTION_FORMS.items():
        m = methods[key]
        diff = f"{m['delta_mae']:+.2f} [{m['delta_ci'][0]:.2f}, {m['delta_ci'][1]:.2f}]" if "delta_ci" in m else "-"
        rows.append((title, f"{m['mae_pooled']:.2f} [{m['mae_ci'][0]:.2f}, {m['mae_ci'][1]:.2f}]", diff))
    return rows


def fit_linear(y0: np.ndarray, y: np.ndarray):
    """Least-squares y ~ a + b y0 on (n,) pairs; returns the map y0 -> a + b y0."""
    b, a = np.polyfit(np.asarray(y0, float), np.asarray(y, float), 1)
    return lambda v: a + b * np.asarray(v, float)


def fit_isotonic(y0: np.ndarray, y: np.ndarray, age_range: tuple[float, float]):
    """Monotone (non-decreasing) y ~ g(y0) on (n,) pairs, clipped outside the fitted range and to ``age_range``."""
    iso = IsotonicRegression(y_min=age_range[0], y_max=age_range[1], out_of_bounds="clip")
    iso.fit(np.asarray(y0, float), np.asarray(y, float))
    return lambda v: iso.predict(np.asarray(v, float))


def _fresh_corrector(model: CILF, seed: int) -> ErrorEnsemble:
    torch.manual_seed(seed)
    return error_ensemble(model.cfg, model.clip.embed_dim)  # E reads the fused features f (D, the CLIP width)


def _correct(probe: ErrorEnsemble, h: torch.Tensor, y0: np.ndarray, model: CILF) -> np.ndarray:
    with torch.no_grad():
        return correct_estimates(probe, h, torch.as_tensor(y0, dtype=h.dtype), model.cfg).x.cpu().numpy()


def _rows(y: np.ndarray, ref: str, preds: dict[str, np.ndarray], groups) -> dict:
    """MAE of each prediction with its CI, and its paired difference from ``ref`` (over ``groups``); the
    correction's row also holds its difference from the better recalibration (``minus_recal``, ``recal``)."""
    err = {k: np.abs(v - y) for k, v in preds.items()}
    out = {}
    for name, e in err.items():
        m = mean_ci(e, groups=groups)
        row = {"mae": m.estimate, "mae_ci": [m.ci_low, m.ci_high]}
        if name != ref:
            d = stable_difference(e, err[ref], groups=groups)
            row.update(minus_ref=d.estimate, minus_ref_ci=[d.ci_low, d.ci_high], unit=d.unit)
        out[name] = row
    best = min(("linear", "isotonic"), key=lambda k: out[k]["mae"])
    d = stable_difference(err["correction"], err[best], groups=groups)
    out["correction"].update(recal=best, minus_recal=d.estimate, minus_recal_ci=[d.ci_low, d.ci_high])
    return out


def correction_vs_recalibration(
    model: CILF,
    train: tuple[ImageFeatures, torch.Tensor, list[str] | None],
    test: tuple[ImageFeatures, torch.Tensor, list[str] | None],
    budget: Budget,
    fit: CorrectionFit | None = None,
    shrink: float = SHRINK,
) -> dict:
    """The test MAE of y0, of the model's correction x*, and of y0 recalibrated (linear, isotonic) on the same
    out-of-fold residuals, each with its paired difference from y0 over test subjects; then the positive control
    (y0 shrunk by ``shrink`` towards the training mean) with a fresh error model fitted the same way.

    ``train``, ``test``: (features of n images, ages (n), subject ids or None); ``budget``: the fold models'
    training budget (the model's own); ``fit``: folds, error epochs and lr (default :class:`CorrectionFit`).
    Returns {"real": rows, "control": rows, "settings": ...}, rows keyed by method, each with ``mae``,
    ``mae_ci`` and (all but y0) ``minus_ref`` = MAE(method) - MAE(y0) with ``minus_ref_ci``; the correction's
    row also ``minus_recal`` = MAE(x*) - MAE(the better recalibration, ``recal``) with ``minus_recal_ci``."""
    if model.corrector is None:
        raise ValueError("this model was built with correction=False: there is no correction to compare")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink={shrink}: the control keeps a fraction of y0's distance from the mean, 0 < s < 1")
    fit = fit or CorrectionFit()
    cfg = model.cfg
    (f_tr, y_tr, g_tr), (f_te, y_te, g_te) = train, test
    y_tr, y_te = y_tr.float().cpu(), y_te.float().cpu()
    folds = fold_ids(len(y_tr), fit.crossfit_folds, budget.seed, g_tr)
    oof_features = fit.error_features == "out_of_fold"
    y0_oof, h_tr = out_of_fold_estimates(cfg, f_tr, y_tr, folds, budget, text_from=model, fused=oof_features)
    y0_oof = y0_oof.numpy()
    pred = predict_features(model, f_te, device=budget.device)
    y0_te, x_te, yt, ytr = pred["y0"], pred["age"], y_te.numpy(), y_tr.numpy()
    age_range = (cfg.age_min, cfg.age_max)
    lin, iso = fit_linear(y0_oof, ytr), fit_isotonic(y0_oof, ytr, age_range)
    real = _rows(
        yt,
        "y0",
        {"y0": y0_te, "correction": x_te, "linear": lin(y0_te), "isotonic": iso(y0_te)},
        g_te,
    )
    mean = float(ytr.mean())
    s_oof, s_te = mean + shrink * (y0_oof - mean), mean + shrink * (y0_te - mean)
    h_te = fused_features(model, f_te, device=budget.device)
    # the features the model's own E learned from (CorrectionFit.error_features)
    h_tr = h_tr.to(h_te.device) if oof_features else fused_features(model, f_tr, device=budget.device)
    probe = _fresh_corrector(model, budget.seed).to(h_tr.device)
    fit_error_model(
        probe,
        h_tr,
        torch.as_tensor(s_oof, dtype=h_tr.dtype),
        y_tr.to(h_tr),
        epochs=fit.error_epochs,
        lr=fit.error_lr,
        candidate_range=cfg.candidate_range,
        seed=budget.seed,
    )
    lin_s, iso_s = fit_linear(s_oof, ytr), fit_isotonic(s_oof, ytr, age_range)
    control = _rows(
        yt,
        "y0",
        {"y0": s_te, "correction": _correct(probe, h_te, s_te, model), "linear": lin_s(s_te), "isotonic": iso_s(s_te)},
        g_te,
    )
    return {
        "real": real,
        "control": control,
        "settings": {
            "shrink": shrink,
            "crossfit_folds": fit.crossfit_folds,
            "error_epochs": fit.error_epochs,
            "gate_applied": bool(model.corrector.applied),
            "train_images": len(ytr),
            "test_images": len(yt),
            "unit": real["linear"]["unit"],
        },
    }
