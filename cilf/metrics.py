"""Metrics (docs/method.md, section 10). Inputs are array-likes of equal length; outputs are floats."""

from __future__ import annotations

import numpy as np

ADIENCE_GROUPS = ((0, 2), (4, 6), (8, 12), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
    if t.size == 0:
        raise ValueError("no predictions to score")
    return t, p


def mae(y_true, y_pred) -> float:
    """Mean absolute error in years."""
    t, p = _pair(y_true, y_pred)
    return float(np.abs(t - p).mean())


def cumulative_score(y_true, y_pred, theta: float = 5) -> float:
    """CS(theta): percentage of predictions with |y_hat - y| <= theta."""
    t, p = _pair(y_true, y_pred)
    return float((np.abs(t - p) <= theta + 1e-9).mean() * 100.0)


def cs_curve(y_true, y_pred, thetas=range(11)) -> dict[int, float]:
    """CS for theta = 0..10 (default): {theta: percent}."""
    return {int(th): cumulative_score(y_true, y_pred, th) for th in thetas}


def age_group(age: float, groups=ADIENCE_GROUPS) -> int:
    """Index of the Adience group nearest to ``age`` (ages between groups go to the nearest)."""
    dists = [0 if lo <= age <= hi else min(abs(age - lo), abs(age - hi)) for lo, hi in groups]
    return int(np.argmin(dists))


def group_accuracy(true_groups, pred_groups) -> tuple[float, float]:
    """Adience exact and 1-off accuracy (percent) over group indices."""
    t, p = _pair(true_groups, pred_groups)
    d = np.abs(t - p)
    return float((d == 0).mean() * 100), float((d <= 1).mean() * 100)


def epsilon_error(y_pred, mu, sigma) -> float:
    """APPA-REAL / ChaLearn epsilon-error: mean of 1 - exp(-(y_hat - mu)^2 / (2 sigma^2))."""
    p, m = _pair(y_pred, mu)
    s = np.asarray(sigma, dtype=np.float64).ravel()
    if np.any(s <= 0):
        raise ValueError("sigma must be positive")
    return float((1 - np.exp(-((p - m) ** 2) / (2 * s**2))).mean())


def mean_std(values) -> tuple[float, float]:
    """Mean and sample std (ddof=1; 0 for a single value) over seeds or folds."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def age_report(y_true, y_pred) -> dict:
    """MAE, CS@1, CS@5 and the CS curve in one dict."""
    return {
        "mae": mae(y_true, y_pred),
        "cs1": cumulative_score(y_true, y_pred, 1),
        "cs5": cumulative_score(y_true, y_pred, 5),
        "cs_curve": cs_curve(y_true, y_pred),
    }
