"""The correction stage against plain recalibration, and a positive control (docs/method.md, section 7).

The correction (E_P and the inverse loop) is fitted on out-of-fold first estimates y0 of the training split. The
simplest thing that uses the same residuals is a recalibration of y0 alone: a straight line y ~ a + b y0, or a
monotone (isotonic) map, fitted on the same out-of-fold pairs. The correction counts as helping only where it beats
that baseline on the test images.

The positive control makes the first estimator wrong in a known, systematic way: every y0 (out-of-fold and test)
shrunk towards the training mean, y0' = m + s (y0 - m). Recalibration undoes that exactly, and a correction that
works must recover most of it; if the same pipeline cannot resolve that effect, a null result on the real y0 says
nothing about the correction.

Both mismatches of the default form (docs/method.md, section 7: E learns from out-of-fold y0 and in-sample f but
meets the final model's y0 and f at test time) are absent from the cross-fitted form: E learns from the K fold
models' out-of-fold y0 and f and, at test time, corrects each fold model's own y0 and f of the test image (a
model that never saw it, trained on (K-1)/K of the data, as for the training images), its K corrections
averaged. It changes what is predicted (the fold models' mean y0 is its first estimate), so it is read against
that first estimate and against the default form, on the same test images.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression

from cilf.app.correction_report import spearman
from cilf.app.crossfit import fit_error_model, fold_ids, fold_models, fused_features, held_out_gate, usable_groups
from cilf.app.infer import predict_features
from cilf.app.params import Budget, CorrectionFit
from cilf.model.cilf_model import CILF, error_ensemble
from cilf.model.clip import ImageFeatures
from cilf.model.correction import ErrorEnsemble, correct_estimates
from cilf.stats import mean_ci, stable_difference

SHRINK = 0.6  # the control's first estimator keeps 60% of each y0's distance from the training mean
FORMS = {  # correction_predictions' keys -> row titles (notebook 04, bench-correction, docs/method.md section 7)
    "y0": "y0 of the final model",
    "correction": "correction, default",
    "linear": "y0 recalibrated by a line a + b y0",
    "isotonic": "y0 recalibrated by an isotonic map",
    "y0_folds": "y0 of the K fold models, averaged",
    "crossfit": "correction, cross-fitted (no mismatch)",
    "joint": "correction, joint (the paper's form)",  # another model: bench-correction trains it beside the default
}


FORMS_COLUMNS = ("form", "MAE, y [95% CI]", "minus y0 [95% CI]", "control: MAE", "control: minus y0")


def ci_cell(row: dict, key: str, sign: bool = False) -> str:
    """``row[key]`` with its 95% CI (``row[key + "_ci"]``) as "x [lo, hi]" (``sign``: "+x"), or "-" without one."""
    if f"{key}_ci" not in row:
        return "-"
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:{'+' if sign else ''}.2f} [{lo:.2f}, {hi:.2f}]"


def forms_table_rows(real: dict, control: dict) -> list[tuple[str, str, str, str, str]]:
    """One row per form of :data:`FORMS` in ``real`` (:data:`FORMS_COLUMNS`) from :func:`form_rows`' ``real`` and
    ``control`` rows: its MAE [95% CI] and difference from y0 [95% CI] on the real first estimates, then in the
    control ("-" for a form the control has not: the joint form)."""

    return [
        (
            title,
            ci_cell(real[k], "mae"),
            ci_cell(real[k], "minus_ref", True),
            f"{control[k]['mae']:.2f}" if k in control else "-",
            ci_cell(control[k], "minus_ref", True) if k in control else "-",
        )
        for k, title in FORMS.items()
        if k in real
    ]


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


def _fit(probe: ErrorEnsemble, h: torch.Tensor, y0: np.ndarray, y: torch.Tensor, model: CILF, fit, seed: int):
    """``probe`` fitted like the model's own E on features h (n x D), first estimates y0 (n) and ages y (n)."""
    fit_error_model(
        probe,
        h,
        torch.as_tensor(y0, dtype=h.dtype, device=h.device),
        y.to(h),
        epochs=fit.error_epochs,
        lr=fit.error_lr,
        candidate_range=model.cfg.candidate_range,
        seed=seed,
    )
    return probe


def _correct(probe: ErrorEnsemble, h: torch.Tensor, y0: np.ndarray, model: CILF) -> np.ndarray:
    with torch.no_grad():
        return correct_estimates(probe, h, torch.as_tensor(y0, dtype=h.dtype), model.cfg).x.cpu().numpy()


def _errors(pred, y):
    """Absolute errors: pred (m,) against y (m,), or per fold a list of (n_seeds, m_k) against (m_k,)."""
    if isinstance(pred, list):
        return [np.abs(np.asarray(p, float) - np.asarray(t, float)[None, :]) for p, t in zip(pred, y)]
    return np.abs(np.asarray(pred, float) - np.asarray(y, float))


def _diff(err: dict, a: str, b: str, groups) -> tuple[float, list[float], str]:
    d = stable_difference(err[a], err[b], groups=groups)
    return d.estimate, [d.ci_low, d.ci_high], d.unit


def form_rows(y, preds: dict, groups) -> dict:
    """MAE of each prediction with its CI, and its paired difference from y0 (``minus_ref``, over ``groups``).
    The correction's row also holds its difference from the better recalibration (``minus_recal``, ``recal``); the
    cross-fitted correction's (when present) its difference from its own first estimate, the fold models' mean y0
    (``minus_own_y0``), from the default correction (``minus_default``) and from the better recalibration; the
    joint form's (when present) its differences from the default correction and the better recalibration.

    ``y``, ``preds`` and ``groups``: one model's (m,) arrays, or per fold lists of (m_k,) ages, (n_seeds, m_k)
    predictions and (m_k,) subject ids (seeds crossed with folds; :mod:`cilf.stats`)."""
    err = {k: _errors(v, y) for k, v in preds.items()}
    out = {}
    for name, e in err.items():
        m = mean_ci(e, groups=groups)
        row = {"mae": m.estimate, "mae_ci": [m.ci_low, m.ci_high]}
        if name != "y0":
            row["minus_ref"], row["minus_ref_ci"], row["unit"] = _diff(err, name, "y0", groups)
        out[name] = row
    best = min(("linear", "isotonic"), key=lambda k: out[k]["mae"])
    comparisons = {"correction": {"minus_recal": best}}
    if "crossfit" in err:
        comparisons["crossfit"] = {"minus_own_y0": "y0_folds", "minus_default": "correction", "minus_recal": best}
    if "joint" in err:
        comparisons["joint"] = {"minus_default": "correction", "minus_recal": best}
    for name, against in comparisons.items():
        out[name]["recal"] = best
        for field, other in against.items():
            out[name][field], out[name][f"{field}_ci"], _ = _diff(err, name, other, groups)
    return out


def correction_predictions(
    model: CILF,
    train: tuple[ImageFeatures, torch.Tensor, list[str] | None],
    test: tuple[ImageFeatures, torch.Tensor],
    budget: Budget,
    fit: CorrectionFit | None = None,
    shrink: float = SHRINK,
) -> dict:
    """Test-set predictions (m,) of every form in :data:`FORMS`, on the real first estimates ("real") and in the
    positive control ("control": every y0 shrunk by ``shrink`` towards the training mean, fresh error models fitted
    the same way, without the gate), and what was decided ("settings").

    ``train``: (features of n images, ages (n), subject ids or None), ``test``: (features of m images, ages (m));
    ``budget``: the fold models' training budget (the model's own); ``fit``: folds, error epochs and lr, gate
    (default :class:`CorrectionFit`). The K fold models are trained once and serve both forms: the out-of-fold
    y0 and f of the training split, and, for the cross-fitted form, each fold model's y0 and f of the test images.
    """
    if model.corrector is None:
        raise ValueError("this model was built with correction=False: there is no correction to compare")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink={shrink}: the control keeps a fraction of y0's distance from the mean, 0 < s < 1")
    fit, cfg, seed, dev = fit or CorrectionFit(), model.cfg, budget.seed, budget.device
    (f_tr, y_tr, g_tr), (f_te, _) = train, test
    y_tr = y_tr.float().cpu()
    folds = fold_ids(len(y_tr), fit.crossfit_folds, seed, g_tr)
    y0_oof, h_oof, y0_k, h_k = np.empty(len(y_tr)), None, [], []
    for held, fm in fold_models(cfg, f_tr, y_tr, folds, budget, text_from=model):
        y0_oof[held.numpy()] = predict_features(fm, f_tr[held], device=dev)["y0"]
        h = fused_features(fm, f_tr[held], device=dev)
        h_oof = h_oof if h_oof is not None else torch.empty(len(y_tr), h.shape[1], dtype=h.dtype, device=h.device)
        h_oof[held.to(h.device)] = h
        y0_k.append(predict_features(fm, f_te, device=dev)["y0"])
        h_k.append(fused_features(fm, f_te, device=dev))
    pred = predict_features(model, f_te, device=dev)
    y0_te, ytr = pred["y0"], y_tr.numpy()
    miss = np.abs(y0_te - test[1].float().cpu().numpy())  # |y0 - y| on the test images
    h_te = fused_features(model, f_te, device=dev)
    # the default form's E learned from these features (CorrectionFit.error_features)
    h_tr = h_oof if fit.error_features == "out_of_fold" else fused_features(model, f_tr, device=dev)
    age_range = (cfg.age_min, cfg.age_max)

    def forms(first: np.ndarray, oof: np.ndarray, per_fold: list[np.ndarray], default_x, gate: bool) -> tuple:
        lin, iso = fit_linear(oof, ytr), fit_isotonic(oof, ytr, age_range)
        probe = _fresh_corrector(model, seed).to(h_oof.device)
        ruled = (
            held_out_gate(
                probe,
                h_oof,
                torch.as_tensor(oof, dtype=h_oof.dtype, device=h_oof.device),
                y_tr.to(h_oof),
                folds,
                cfg,
                fit,
                seed,
                usable_groups(g_tr, fit.crossfit_folds),
            )
            if gate
            else None
        )
        _fit(probe, h_oof, oof, y_tr, model, fit, seed)
        on = ruled is None or ruled["applied"]
        x_cf = np.mean([_correct(probe, h, y0, model) if on else y0 for h, y0 in zip(h_k, per_fold)], axis=0)
        if default_x is None:  # the control: a fresh E on the default form's features, no gate
            default_x = _correct(
                _fit(_fresh_corrector(model, seed).to(h_tr.device), h_tr, oof, y_tr, model, fit, seed),
                h_te,
                first,
                model,
            )
        preds = {
            "y0": first,
            "correction": default_x,
            "linear": lin(first),
            "isotonic": iso(first),
            "y0_folds": np.mean(per_fold, axis=0),
            "crossfit": x_cf,
        }
        return preds, ruled

    real, gate = forms(y0_te, y0_oof, y0_k, pred["age"], fit.correction_gate)
    mean = float(ytr.mean())
    s = lambda v: mean + shrink * (np.asarray(v) - mean)  # noqa: E731
    control, _ = forms(s(y0_te), s(y0_oof), [s(v) for v in y0_k], None, False)
    return {
        "real": real,
        "control": control,
        "settings": {
            "shrink": shrink,
            "crossfit_folds": fit.crossfit_folds,
            "error_epochs": fit.error_epochs,
            "error_features": fit.error_features,
            "gate_applied": bool(model.corrector.applied),
            "crossfit_gate_applied": gate is None or bool(gate["applied"]),
            "train_images": len(ytr),
            "test_images": len(y0_te),
            "mae_y0_out_of_fold": float(np.abs(y0_oof - ytr).mean()),
            # does E_P's judgement rank the test images by how wrong y0 is? (its decision reads |e(y0)| only)
            "spearman_abs_error0": spearman(np.abs(pred["error0"]), miss),
            "spearman_spread0": spearman(pred["spread0"], miss),
        },
    }


def correction_vs_recalibration(
    model: CILF,
    train: tuple[ImageFeatures, torch.Tensor, list[str] | None],
    test: tuple[ImageFeatures, torch.Tensor, list[str] | None],
    budget: Budget,
    fit: CorrectionFit | None = None,
    shrink: float = SHRINK,
) -> dict:
    """The test MAE of y0, of the model's correction x*, of y0 recalibrated (linear, isotonic) on the same
    out-of-fold residuals, of the fold models' mean y0 and of the cross-fitted correction, each with its paired
    difference from y0 over test subjects; then the positive control (y0 shrunk by ``shrink`` towards the training
    mean) with fresh error models fitted the same way (:func:`correction_predictions`).

    ``train``, ``test``: (features of n images, ages (n), subject ids or None); ``budget``: the fold models'
    training budget (the model's own); ``fit``: folds, error epochs and lr (default :class:`CorrectionFit`).
    Returns {"real": rows, "control": rows, "settings": ...}, rows keyed by :data:`FORMS` as :func:`form_rows` makes
    them: ``mae``, ``mae_ci``, ``minus_ref`` = MAE(form) - MAE(y0) with ``minus_ref_ci``; the correction's row also
    ``minus_recal`` (against the better recalibration, ``recal``), the cross-fitted one ``minus_own_y0`` and
    ``minus_default``."""
    f_te, y_te, g_te = test
    p = correction_predictions(model, train, (f_te, y_te), budget, fit, shrink)
    yt = y_te.float().cpu().numpy()
    real, control = form_rows(yt, p["real"], g_te), form_rows(yt, p["control"], g_te)
    return {"real": real, "control": control, "settings": {**p["settings"], "unit": real["linear"]["unit"]}}
