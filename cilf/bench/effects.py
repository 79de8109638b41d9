"""Paired effects for benchmark tables: each method's MAE with a CI, and its difference from the full model.

Every saved benchmark run holds its per-image predictions (``pred``, one per test row of its fold, None where
the method gave no finite age). From them this module builds, per method, absolute errors of shape
(n_seeds, n_images_fold) for every fold and reads them with :mod:`cilf.stats` (see docs/statistics.md):

* ``mae_pooled``, ``mae_ci`` - the MAE over every (seed, image) cell, folds weighted by their images, with a 95%
  CI (``cilf.stats.mean_ci``: two-way bootstrap over seeds and images, stratified by fold);
* ``delta_mae``, ``delta_ci``, ``verdict`` - MAE(method) - MAE(full model) on the images both cover, with the
  paired CI (``cilf.stats.paired_mae_difference``); "better" when the whole CI is below 0, "worse" when above;
* ``coverage_pct`` - the share of (seed, image) cells with a finite prediction;
* ``delta_precision`` - how much of the paired CI's width comes from the test images and how much from the seeds,
  and the test images and seeds per split that would bring it to +-0.1 y (``cilf.stats.precision_plan``).

An image enters a method's CI when the method predicted it for every seed, and the paired difference when both
methods did; a fold with fewer than two such images is left out of that CI (``ci_images`` counts what is in).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from cilf.stats import mean_ci, paired_mae_difference, precision_plan, verdict

REFERENCE = "full"  # the method every other one is compared with
CONFIDENCE = 0.95
# 1999 resamples: a 15-method table on 400 images x 3 seeds takes about 1 s on one CPU core (2999: 1.5 s,
# 4999: 2.3 s); the CI ends then move by about 0.01 y between bootstrap seeds.
N_RESAMPLES = 1999
PRECISION_TARGET = 0.1  # years: the half-width a paired difference should reach (sizing, not a decision rule)
_VERDICTS = {"supported": "better", "contradicted": "worse", "not resolved": "not resolved"}


def errors_by_fold(runs: list[dict], test_ages: list[np.ndarray]) -> list[np.ndarray]:
    """Absolute errors per fold, each (n_seeds, n_images_fold), NaN where no prediction.

    ``runs``: one method's runs, folds outer and seeds inner (as the benchmark makes them), each with ``pred``;
    ``test_ages``: per fold, the test ages (n_images_fold) in the order of ``pred``.
    """
    n_seeds = len(runs) // len(test_ages)
    if n_seeds * len(test_ages) != len(runs):
        raise ValueError(f"{len(runs)} runs do not split into {len(test_ages)} folds of equal seed counts")
    out = []
    for k, y in enumerate(test_ages):
        pred = np.array(
            [[np.nan if p is None else p for p in r["pred"]] for r in runs[k * n_seeds : (k + 1) * n_seeds]],
            dtype=np.float64,
        )
        if pred.shape[1] != len(y):
            raise ValueError(f"a saved run has {pred.shape[1]} predictions for a fold of {len(y)} test images")
        out.append(np.abs(pred - np.asarray(y, dtype=np.float64)[None, :]))
    return out


def _covered(folds: list[np.ndarray], mask_from: list[list[np.ndarray]]) -> list[np.ndarray]:
    """``folds`` restricted to the images finite in every seed of every array in ``mask_from``; small folds dropped."""
    kept = []
    for k, f in enumerate(folds):
        ok = np.all([np.all(np.isfinite(m[k]), axis=0) for m in mask_from], axis=0)
        if ok.sum() >= 2:
            kept.append(f[:, ok])
    return kept


def effect_columns(
    methods: dict[str, list[dict]],
    test_ages: list[np.ndarray],
    *,
    reference: str = REFERENCE,
    n_resamples: int = N_RESAMPLES,
) -> dict[str, dict]:
    """Per method with predictions: coverage_pct, mae_pooled, mae_ci [low, high], ci_images and, for every method
    other than ``reference`` (when it ran), delta_mae, delta_ci [low, high], verdict and paired_images."""
    errs = {
        name: errors_by_fold(runs, test_ages)
        for name, runs in methods.items()
        if runs and all("pred" in r for r in runs)
    }
    kw = dict(confidence=CONFIDENCE, n_resamples=n_resamples, seed=0)
    out = {}
    for name, e in errs.items():
        cells = sum(f.size for f in e)
        col = {"coverage_pct": float(100 * sum(np.isfinite(f).sum() for f in e) / cells) if cells else 0.0}
        own = _covered(e, [e])
        if own:
            eff = mean_ci(own, **kw)
            col.update(mae_pooled=eff.estimate, mae_ci=[eff.ci_low, eff.ci_high], ci_images=eff.n_images)
        if name != reference and reference in errs:
            a, b = _covered(e, [e, errs[reference]]), _covered(errs[reference], [e, errs[reference]])
            if a:
                d = paired_mae_difference(a, b, **kw)
                col.update(
                    delta_mae=d.estimate,
                    delta_ci=[d.ci_low, d.ci_high],
                    paired_images=d.n_images,
                    verdict=_VERDICTS[verdict(d, better="lower")],
                    delta_precision=_finite(asdict(precision_plan(a, b, PRECISION_TARGET, confidence=CONFIDENCE))),
                )
        out[name] = col
    return out


def _finite(d: dict) -> dict:
    """NaN -> None, so the result stays strict JSON."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def _num(x: float, sign: bool = False) -> str:
    x = round(x, 2) + 0.0  # + 0.0: no "-0.00"
    return f"{x:+.2f}" if sign else f"{x:.2f}"


def mae_text(s: dict) -> str:
    """``"5.12 [4.80, 5.47]"`` from a summary row (its run-mean +- std when it has no CI)."""
    if "mae_ci" in s:
        return f"{_num(s['mae_pooled'])} [{_num(s['mae_ci'][0])}, {_num(s['mae_ci'][1])}]"
    return f"{_num(s['mae'])} +- {_num(s['mae_std'])}"


def delta_text(s: dict, name: str, reference: str = REFERENCE) -> str:
    """``"+0.23 [0.05, 0.41]"``: the row's MAE minus the reference's, with its CI; "reference" or "-" otherwise."""
    if name == reference:
        return "reference"
    if "delta_ci" not in s:
        return "-"
    lo, hi = s["delta_ci"]
    return f"{_num(s['delta_mae'], sign=True)} [{_num(lo)}, {_num(hi)}]"


def ci_header(n_images: int, n_seeds: int, n_folds: int, n_resamples: int = N_RESAMPLES) -> str:
    """What the table's CIs are over, in one line."""
    folds = f" x {n_folds} folds" if n_folds > 1 else ""
    pct = f"{100 * CONFIDENCE:g}%"
    return (
        f"{pct} CI over {n_images} test images x {n_seeds} seed(s){folds}, paired two-way bootstrap "
        f"({n_resamples} resamples); Δ vs full = method minus full model on the images both cover"
    )
