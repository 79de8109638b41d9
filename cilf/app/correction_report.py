"""What the correction did on one evaluated split (docs/method.md, section 7): how often E_P accepted y0,
how well E's predicted error matches the actual one, and what the correction changed where it acted."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from cilf.metrics import mae


def spearman(a, b) -> float | None:
    """Spearman rank correlation of two (n) arrays; None when undefined (n < 3 or a constant array)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else None


def calibration_bins(predicted, y0, y, bins: int = 10) -> list[dict]:
    """E_P calibration: images sorted by predicted |error| at y0 and cut into ``bins`` groups of equal size
    (deciles); per group its size, mean predicted |error|, mean actual |y0 - y|, and both signed means.

    predicted (n): E's mean predicted signed error e(y0); y0, y (n)."""
    predicted, y0, y = (np.asarray(v, dtype=np.float64) for v in (predicted, y0, y))
    order = np.argsort(np.abs(predicted), kind="stable")
    rows = []
    for i, idx in enumerate(np.array_split(order, min(bins, len(order)))):
        if idx.size == 0:
            continue
        rows.append(
            {
                "bin": i + 1,
                "n": int(idx.size),
                "predicted_abs_error": float(np.abs(predicted[idx]).mean()),
                "actual_abs_error": float(np.abs(y0[idx] - y[idx]).mean()),
                "predicted_signed_error": float(predicted[idx].mean()),
                "actual_signed_error": float((y0[idx] - y[idx]).mean()),
            }
        )
    return rows


def correction_report(y, pred: dict[str, np.ndarray]) -> dict:
    """From true ages y (n) and ``predict_features`` columns: share accepted by E_P, steps, the corrected
    subset (the images E_P rejected) with its size and MAE before (y0) and after (x*), E_P calibration by
    decile of predicted |error|, and Spearman correlations of E's outputs with the actual |error|."""
    y = np.asarray(y, dtype=np.float64)
    y0, age = np.asarray(pred["y0"], dtype=np.float64), np.asarray(pred["age"], dtype=np.float64)
    corrected = ~np.asarray(pred["accepted"]).astype(bool)
    error0 = np.asarray(pred.get("error0", np.zeros_like(y0)), dtype=np.float64)
    rep = {
        "accepted_by_EP_pct": float(100 * (1 - corrected.mean())) if y.size else None,
        "mean_steps": float(np.asarray(pred["steps"]).mean()) if y.size else None,
        "n_corrected": int(corrected.sum()),
        "mae_y0_on_corrected": mae(y[corrected], y0[corrected]) if corrected.any() else None,
        "mae_xstar_on_corrected": mae(y[corrected], age[corrected]) if corrected.any() else None,
    }
    if not np.any(error0):  # a model without correction: nothing more to say
        return rep
    abs0 = np.abs(y0 - y)
    rep["spearman_predicted_vs_actual_abs_error"] = spearman(np.abs(error0), abs0)
    if "spread0" in pred:
        rep["spearman_spread_vs_abs_error_y0"] = spearman(pred["spread0"], abs0)
    rep["spearman_spread_vs_abs_error_xstar"] = spearman(pred["spread"], np.abs(age - y))
    rep["calibration"] = calibration_bins(error0, y0, y)
    return rep


def _num(v, fmt: str = ".2f") -> str:
    return "n/a" if v is None else format(v, fmt)


def format_correction(c: dict) -> list[str]:
    """The printed lines of a :func:`correction_report`."""
    lines = [
        f"correction: E_P accepted {_num(c['accepted_by_EP_pct'], '.1f')}% of first estimates, "
        f"mean {_num(c['mean_steps'])} steps"
    ]
    if c["mae_y0_on_corrected"] is not None:
        lines.append(
            f"            on the {c['n_corrected']} corrected images MAE {c['mae_y0_on_corrected']:.2f} (y0) "
            f"-> {c['mae_xstar_on_corrected']:.2f} (x*)"
        )
    if "calibration" in c:
        lines.append(
            f"            Spearman with |y0 - y|: predicted |error| "
            f"{_num(c['spearman_predicted_vs_actual_abs_error'])}, ensemble spread "
            f"{_num(c.get('spearman_spread_vs_abs_error_y0'))}"
        )
        pairs = " ".join(f"{b['predicted_abs_error']:.1f}/{b['actual_abs_error']:.1f}" for b in c["calibration"])
        lines.append(f"            E_P calibration by decile, predicted/actual |y0 - y|: {pairs}")
    gate = (c.get("fit") or {}).get("gate")
    if gate:
        lines.append(
            f"            held-out gate ({gate['held_out_images']} training images E had not seen): MAE "
            f"{gate['mae_y0']:.2f} (y0) -> {gate['mae_xstar']:.2f} (x*); correction "
            + ("applied" if gate["applied"] else "switched off: x* = y0 (E_P still reports)")
        )
    return lines
