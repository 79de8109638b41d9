"""Paired effects for benchmark tables: each method's MAE with a CI, and its difference from the full model.

Every saved benchmark run holds its per-image predictions (``pred``, one per test row of its fold, None where
the method gave no finite age). From them this module builds, per method, absolute errors of shape
(n_seeds, n_images_fold) for every fold and reads them with :mod:`cilf.stats` (see docs/statistics.md):

* ``mae_pooled``, ``mae_ci`` - the MAE over every (seed, image) cell, folds weighted by their images, with a 95%
  CI (``cilf.stats.mean_ci``: test subjects resampled within folds, seeds by a t interval; images where the
  dataset has no subject ids);
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

from cilf.stats import N_RESAMPLES, mean_ci, per_bootstrap_seed, precision_plan, stable_of, verdict

REFERENCE = "full"  # the method every other one is compared with
CONFIDENCE = 0.95
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


def _masks(folds: list[np.ndarray], mask_from: list[list[np.ndarray]]) -> list[np.ndarray | None]:
    """Per fold, the images finite in every seed of every array in ``mask_from`` (None: fewer than two, dropped)."""
    out = []
    for k in range(len(folds)):
        ok = np.all([np.all(np.isfinite(m[k]), axis=0) for m in mask_from], axis=0)
        out.append(ok if ok.sum() >= 2 else None)
    return out


def _covered(folds: list[np.ndarray], masks: list[np.ndarray | None]) -> list[np.ndarray]:
    """``folds`` restricted to their ``masks`` (folds without one dropped)."""
    return [f[:, ok] for f, ok in zip(folds, masks) if ok is not None]


def _groups_of(test_groups: list[np.ndarray] | None, masks: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """The kept images' subject ids per kept fold, made fold-local (``fold:subject``: subjects are drawn within
    folds), or None when the dataset has no subject ids (then images are the unit)."""
    if test_groups is None:
        return None
    return [
        np.char.add(f"{k}:", np.asarray(g, dtype=str)[ok])
        for k, (g, ok) in enumerate(zip(test_groups, masks))
        if ok is not None
    ]


def _design(
    folds: list[np.ndarray], groups: list[np.ndarray] | None, *others: list[np.ndarray]
) -> tuple[list[np.ndarray], list[np.ndarray] | None, list[list[np.ndarray]]]:
    """``folds`` (and ``others``, the same images of other methods) as the CI reads them: when some fold holds a
    single subject (leave-one-person-out), subjects cannot be drawn within folds, so the folds are pooled and the
    subjects drawn across them (each fold is then one subject; the same seeds run in every fold)."""
    if groups is None or all(len(np.unique(g)) >= 2 for g in groups):
        return folds, groups, list(others)
    pool = lambda fs: [np.concatenate(fs, axis=1)]  # noqa: E731
    return pool(folds), [np.concatenate(groups)], [pool(o) for o in others]


def effect_columns(
    methods: dict[str, list[dict]],
    test_ages: list[np.ndarray],
    *,
    test_groups: list[np.ndarray] | None = None,
    reference: str = REFERENCE,
    n_resamples: int = N_RESAMPLES,
) -> dict[str, dict]:
    """Per method with predictions: coverage_pct, mae_pooled, mae_ci [low, high], ci_images and, for every method
    other than ``reference`` (when it ran), delta_mae, delta_ci [low, high], verdict, paired_images and
    ``delta_ci_bootstrap_seeds`` (the interval again with the bootstrap's seeds 1 and 2: a verdict that changes with
    them is "not resolved"). ``test_groups``: per fold, the (m) test images' subject ids; the CIs then resample
    subjects (``cilf.stats``); without them images are the unit."""
    errs = {
        name: errors_by_fold(runs, test_ages)
        for name, runs in methods.items()
        if runs and all("pred" in r for r in runs)
    }
    kw = dict(confidence=CONFIDENCE, n_resamples=n_resamples)
    out = {}
    for name, e in errs.items():
        cells = sum(f.size for f in e)
        col = {"coverage_pct": float(100 * sum(np.isfinite(f).sum() for f in e) / cells) if cells else 0.0}
        masks = _masks(e, [e])
        own = _covered(e, masks)
        if own:
            own, g, _ = _design(own, _groups_of(test_groups, masks))
            eff = mean_ci(own, seed=0, groups=g, **kw)
            col.update(
                mae_pooled=eff.estimate, mae_ci=[eff.ci_low, eff.ci_high], ci_images=eff.n_images, ci_unit=eff.unit
            )
        if name != reference and reference in errs:
            masks = _masks(e, [e, errs[reference]])
            a, b, g = _covered(e, masks), _covered(errs[reference], masks), _groups_of(test_groups, masks)
            if a:
                a, g, (b,) = _design(a, g, b)
                d, *again = per_bootstrap_seed(a, b, groups=g, **kw)
                d = stable_of([d, *again])  # the union of the CIs when their side of 0 depends on the seed
                col.update(
                    delta_mae=d.estimate,
                    delta_ci=[d.ci_low, d.ci_high],
                    delta_ci_bootstrap_seeds=[[x.ci_low, x.ci_high] for x in again],
                    paired_images=d.n_images,
                    paired_groups=d.n_groups,
                    verdict=_VERDICTS[verdict([d, *again], better="lower")],
                    delta_precision=_finite(
                        asdict(precision_plan(a, b, PRECISION_TARGET, confidence=CONFIDENCE, groups=g))
                    ),
                )
        out[name] = col
    return out


def _finite(d: dict) -> dict:
    """NaN -> None, so the result stays strict JSON."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in d.items()}


def _num(x: float, sign: bool = False) -> str:
    """``x`` to two decimals with its own sign: a negative value that rounds to zero stays "-0.00" (never
    "+0.00" or "0.00", which would read as no difference or as the other direction); "+" (``sign``) only for
    x > 0; exactly zero is "0.00"."""
    text = f"{abs(round(x, 2)):.2f}"
    return "-" + text if x < 0 else "+" + text if sign and x > 0 else text


def mae_text(s: dict) -> str:
    """``"5.12 [4.80, 5.47]"`` from a summary row (its run-mean +- std when it has no CI)."""
    if "mae_ci" in s:
        return f"{_num(s['mae_pooled'])} [{_num(s['mae_ci'][0])}, {_num(s['mae_ci'][1])}]"
    return f"{_num(s['mae'])} +- {_num(s['mae_std'])}"


def delta_text(s: dict, name: str, reference: str = REFERENCE) -> str:
    """``"+0.23 [0.05, 0.41]"``: the row's MAE minus the reference's, with its CI; "reference" or "-" otherwise.
    Every number keeps its sign (``_num``): -0.0005 [-0.001, -0.0001] is "-0.00 [-0.00, -0.00]"."""
    if name == reference:
        return "reference"
    if "delta_ci" not in s:
        return "-"
    lo, hi = s["delta_ci"]
    return f"{_num(s['delta_mae'], sign=True)} [{_num(lo)}, {_num(hi)}]"


def verdict_text(s: dict) -> str:
    """The row's verdict ("better", "worse", "not resolved"; "" without one), saying when the difference is real
    but below the table's two decimals (``"better (|Δ| < 0.005 y)"``), so "-0.00 [-0.00, -0.00]" is not read as
    no difference."""
    v = s.get("verdict", "")
    if v in ("better", "worse") and abs(s.get("delta_mae", 1.0)) < 0.005:
        v += " (|Δ| < 0.005 y)"
    return v


def ci_over(subjects: bool) -> str:
    """What every interval of a table resamples, in words (the design line)."""
    unit, drawn = (
        ("test subjects (with all their images)", "subjects")
        if subjects
        else ("test images (the dataset has no subject ids)", "images")
    )
    return (
        f"{unit} x seeds: {drawn} drawn within folds (bootstrap, BCa), seeds by a t interval on their means, the two "
        f"parts added (cilf.stats)"
    )


def ci_header(n_images: int, n_seeds: int, n_folds: int, n_resamples: int = N_RESAMPLES, subjects: bool = False) -> str:
    """What the table's CIs are over, in one line."""
    folds = f", {n_folds} folds" if n_folds > 1 else ""
    pct = f"{100 * CONFIDENCE:g}%"
    unit = "subjects" if subjects else "images"
    return (
        f"{pct} CI over {unit} x seeds ({n_images} test images, {n_seeds} seed(s){folds}; {n_resamples} resamples, "
        f"paired by image); Δ vs full = method minus full model on the images both cover"
    )
