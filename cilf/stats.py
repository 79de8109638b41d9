"""Statistics for comparing age estimators: paired effects with bootstrap confidence intervals.

Every comparison in the project goes through here (see docs/statistics.md for the reasoning in plain words):

* ``paired_mae_difference`` - mean of A - B over the same test images, with a 95% CI that covers both the
  choice of test images and the training seeds, stratified by fold;
* ``verdict`` - "supported" / "contradicted" / "not resolved" from a CI (one-sided claims and equivalence);
* ``required_test_size`` - test images needed for a CI of a given half-width, from a pilot;
* ``precision_plan`` - how much of a paired CI's width comes from the test images and how much from the seeds,
  and the images and seeds per split that would bring it to a target half-width;
* ``mean_ci`` - one method's mean (e.g. its MAE) with the same kind of CI, for table rows;
* ``format_effect`` - ``"-0.23 y [-0.31, -0.15]"``.

Accepted error layouts (the same for A, B and ``mean_ci``'s values):

* shape ``(n_images,)`` - one run;
* shape ``(n_seeds, n_images)`` (a numpy array) - several seeds evaluated on the same test images;
* a list (or tuple) of per-fold arrays, each ``(n_images_fold,)`` or ``(n_seeds, n_images_fold)`` - folds with
  disjoint test images (a list of 1-D arrays is read as folds, not seeds: stack seeds into one array).

The resampling itself is ``scipy.stats.bootstrap`` (BCa interval); this module only chooses what is resampled.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

_MAX_GATHER = 4_000_000  # elements gathered per statistic call (about 32 MB of float64)


@dataclass(frozen=True)
class Effect:
    """A bootstrap estimate of a mean (an MAE, or a paired difference of MAEs A - B) with its CI.

    ``seed_sd`` is the seed-to-seed standard deviation of the test-set mean, pooled over folds
    (NaN when no fold has two seeds); it is reported beside the CI, which already includes it.
    """

    estimate: float
    ci_low: float
    ci_high: float
    n_images: int
    n_runs: int
    n_folds: int
    confidence: float
    method: str
    seed_sd: float = float("nan")

    @property
    def half_width(self) -> float:
        """Half the CI's width (same unit as the estimate)."""
        return (self.ci_high - self.ci_low) / 2


def _as_folds(x, name: str) -> tuple[list[np.ndarray], list[tuple]]:
    """Read one error layout into float64 arrays of shape (n_seeds, n_images_fold), plus the shapes as given."""
    is_fold_list = isinstance(x, (list, tuple)) and len(x) > 0 and all(np.ndim(f) >= 1 for f in x)
    raw = list(x) if is_fold_list else [x]
    folds = []
    for k, f in enumerate(raw):
        where = f"{name}[{k}]" if is_fold_list else name
        try:
            a = np.asarray(f, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where} is not a numeric array; pass per-image errors as numbers") from None
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"{where} has shape {np.shape(f)}; expected (n_images,) or (n_seeds, n_images)")
        if a.shape[0] < 1 or a.shape[1] < 2:
            raise ValueError(f"{where} has shape {np.shape(f)}; each fold needs at least one run and two images")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where} contains NaN or infinite values; drop or fix those images first")
        folds.append(a)
    return folds, [np.shape(f) for f in raw]


def _paired_folds(err_a, err_b) -> list[np.ndarray]:
    """Per-fold differences A - B, shape (n_seeds, n_images_fold); refuses any shape mismatch."""
    (fa, sa), (fb, sb) = _as_folds(err_a, "err_a"), _as_folds(err_b, "err_b")
    if len(fa) != len(fb):
        raise ValueError(f"err_a has {len(fa)} fold(s), err_b {len(fb)}; pass the same folds for both methods")
    for k, (a, b) in enumerate(zip(fa, fb)):
        if a.shape != b.shape:
            where = f" in fold {k}" if len(fa) > 1 else ""
            raise ValueError(f"err_a has shape {sa[k]}, err_b {sb[k]}{where}; a paired comparison needs "
                             "both methods' errors on the same images and seeds, in the same order")
        for name, v in (("err_a", a), ("err_b", b)):
            if np.any(v < 0):
                raise ValueError(f"{name} has negative values; pass absolute errors |y_hat - y|, not signed ones")
    return [a - b for a, b in zip(fa, fb)]


def _check_options(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    if int(n_resamples) != n_resamples or n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples}; expected an integer of at least 100 (9999 for reported numbers)")


def _seed_sd(folds: list[np.ndarray]) -> float:
    """Pooled within-fold standard deviation (ddof=1) of the per-seed test-set means."""
    dof = sum(f.shape[0] - 1 for f in folds)
    if dof == 0:
        return float("nan")
    ss = sum(float(np.sum((f.mean(axis=1) - f.mean()) ** 2)) for f in folds)
    return math.sqrt(ss / dof)


def _bootstrap_mean(folds: list[np.ndarray], confidence: float, n_resamples: int, seed: int, what: str) -> Effect:
    """Mean over all (seed, image) cells, folds weighted by their image counts, with a two-way stratified CI.

    Each fold contributes two resampled index samples to ``scipy.stats.bootstrap`` (``paired=False``, so each is
    drawn independently, i.e. stratified by fold): its seed indices (when it has two or more seeds) and its image
    indices. The statistic is the image-weighted mean of ``D_f[seeds][:, images]`` over folds.
    """
    _check_options(confidence, n_resamples)
    n_img = np.array([f.shape[1] for f in folds], dtype=np.float64)
    weights = n_img / n_img.sum()
    estimate = float(sum(w * f.mean() for w, f in zip(weights, folds)))
    n_runs, n_images = sum(f.shape[0] for f in folds), int(n_img.sum())
    multi_seed = any(f.shape[0] > 1 for f in folds)
    over = "seeds x images" if multi_seed else "images"
    strat = f", stratified by fold ({len(folds)} folds)" if len(folds) > 1 else ""
    method = f"{what}bootstrap over {over}{strat}, BCa, {n_resamples} resamples"
    common = dict(n_images=n_images, n_runs=n_runs, n_folds=len(folds), confidence=confidence,
                  method=method, seed_sd=_seed_sd(folds))
    if all(np.ptp(f) <= 1e-9 * (1 + np.abs(f).max()) for f in folds):  # constant within every fold (up to
        return Effect(estimate, estimate, estimate, **common)  # rounding): every resample gives the estimate

    data, layout = [], []  # layout[k] = (fold, slot of its seed sample or None, slot of its image sample)
    for f in folds:
        s_slot = None
        if f.shape[0] > 1:
            s_slot = len(data)
            data.append(np.arange(f.shape[0]))
        layout.append((f, s_slot, len(data)))
        data.append(np.arange(f.shape[1]))

    def statistic(*idx, axis=-1):
        total = 0.0
        for w, (f, s_slot, i_slot) in zip(weights, layout):
            per_seed = np.moveaxis(f[:, idx[i_slot]].mean(axis=-1), 0, -1)  # (..., n_seeds)
            if s_slot is not None:
                per_seed = np.take_along_axis(per_seed, idx[s_slot], axis=-1)
            total = total + w * per_seed.mean(axis=-1)
        return total

    batch = max(1, _MAX_GATHER // max(f.size for f in folds))
    kw = dict(n_resamples=int(n_resamples), batch=batch, vectorized=True, paired=False, confidence_level=confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=_st.DegenerateDataWarning)
        with np.errstate(invalid="ignore", divide="ignore"):
            res = _st.bootstrap(tuple(data), statistic, method="BCa", rng=np.random.default_rng(seed), **kw)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa undefined (near-degenerate distribution): reuse the
        res = _st.bootstrap(tuple(data), statistic, method="percentile", bootstrap_result=res,  # same resamples
                            rng=np.random.default_rng(seed), **{**kw, "n_resamples": 0})
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        common["method"] = method.replace("BCa", "percentile (BCa undefined)")
    return Effect(estimate, lo, hi, **common)


def paired_mae_difference(err_a, err_b, *, confidence: float = 0.95, n_resamples: int = 9999,
                          seed: int = 0) -> Effect:
    """MAE of A minus MAE of B on the same test images, with a paired bootstrap CI.

    ``err_a``, ``err_b``: absolute errors in years, each ``(n_images,)``, ``(n_seeds, n_images)`` or a list of
    per-fold arrays ``(n_seeds, n_images_fold)``; both must have identical shapes (same images, same order).
    Negative ``estimate`` means A has the lower error.

    How runs are combined: the estimate is the mean of A - B over every (seed, image) cell, folds weighted by
    their image counts. The CI targets the expected difference over new test images *and* new training seeds,
    the two sources Bouthillier et al. (MLSys 2021) show must both be randomised for a benchmark comparison to
    be trusted. Seeds are crossed with images (every seed is scored on the same images), so the CI comes from a
    two-way ("pigeonhole", Owen 2007) bootstrap: each resample draws seeds with replacement and, independently,
    images with replacement, and keeps every drawn seed paired with the same drawn images. A nested bootstrap
    (new images per seed) would break that pairing; averaging seeds first and resampling only images would leave
    the seed-to-seed spread out of the CI (it is still reported on its own as ``seed_sd``). Folds have disjoint
    test images, so resampling is stratified within each fold (as rliable stratifies runs by task, Agarwal et al.,
    NeurIPS 2021). With one seed this is the plain paired bootstrap over images. With few seeds the seed part
    of the CI is rough and too narrow when the seed spread dominates (3 seeds give only 10 distinct draws and a
    bootstrap variance (S-1)/S = 2/3 of the seed variance), while the two-way bootstrap counts the seed x image
    noise twice (mildly conservative); docs/statistics.md gives simulated coverages.
    """
    return _bootstrap_mean(_paired_folds(err_a, err_b), confidence, int(n_resamples), seed, "paired ")


def mean_ci(values, *, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0) -> Effect:
    """One method's mean (e.g. MAE from absolute errors) with the same bootstrap CI as ``paired_mae_difference``.

    ``values``: ``(n_images,)``, ``(n_seeds, n_images)`` or a list of per-fold arrays; for table rows.
    """
    return _bootstrap_mean(_as_folds(values, "values")[0], confidence, int(n_resamples), seed, "")


def verdict(effect: Effect, *, better: str = "lower", margin: float = 0.0) -> str:
    """Read an effect's CI against a claim about A - B; returns "supported", "contradicted" or "not resolved".

    ``better="lower"``: the claim is A - B < -margin (A's error lower by more than ``margin``); supported when the
    whole CI is below -margin, contradicted when the whole CI is above it.
    ``better="higher"``: the claim is A - B > margin (for scores where higher is better), mirrored.
    ``better="equivalent"``: the claim is |A - B| < margin (e.g. "matches attention's accuracy"); supported when
    the CI lies inside (-margin, margin), contradicted when it lies entirely outside, else not resolved.
    """
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin={margin}; expected a finite non-negative number in the effect's unit")
    lo, hi = effect.ci_low, effect.ci_high
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not resolved"
    if better == "lower":
        return "supported" if hi < -margin else "contradicted" if lo > -margin else "not resolved"
    if better == "higher":
        return "supported" if lo > margin else "contradicted" if hi < margin else "not resolved"
    if better == "equivalent":
        if margin == 0:
            raise ValueError("an equivalence claim needs margin > 0 (the largest difference that counts as equal)")
        if -margin < lo and hi < margin:
            return "supported"
        return "contradicted" if lo > margin or hi < -margin else "not resolved"
    raise ValueError(f"better={better!r}; expected 'lower', 'higher' or 'equivalent'")


def required_test_size(err_a, err_b, half_width: float = 0.1, *, confidence: float = 0.95) -> int:
    """Test images needed for a CI half-width of at most ``half_width`` (years) on the paired difference.

    ``err_a``, ``err_b``: a pilot's absolute errors, ``(n_images,)`` or ``(n_seeds, n_images)`` (seeds are
    averaged per image first). Normal approximation: n = ceil((z * sd / half_width)^2), sd the sample standard
    deviation (ddof=1) of the per-image differences, z = 1.96 for 95%. This sizes the image part of the CI only;
    more images do not shrink the seed-to-seed spread.
    """
    if not half_width > 0:
        raise ValueError(f"half_width={half_width}; expected a positive number of years, e.g. 0.1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    folds = _paired_folds(err_a, err_b)
    if len(folds) != 1:
        raise ValueError("required_test_size takes one pilot split, not a list of folds; pass one fold's errors")
    d = folds[0].mean(axis=0)
    z = _st.norm.ppf(0.5 + confidence / 2)
    return int(math.ceil((z * d.std(ddof=1) / half_width) ** 2))


@dataclass(frozen=True)
class PrecisionPlan:
    """Where a paired difference's CI width comes from, and what would bring it to ``target`` (years).

    Normal approximation (z for ``confidence``), folds weighted by their image counts as in
    ``paired_mae_difference``: ``image_part = z * image_sd / sqrt(n_images)`` is the half-width test images alone
    would give (seeds averaged per image first); ``seed_part = z * seed_sd * sqrt(sum_f w_f^2 / S_f)`` the half-width
    training seeds alone would give; together about ``sqrt(image_part^2 + seed_part^2)``. ``images_needed`` (test
    images in all, split over the folds as now) and ``seeds_needed`` (per split) bring each part to
    ``target / sqrt(2)``, so the two together reach ``target``; more images never shrink the seed part.
    ``seed_part`` is NaN and ``seeds_needed`` None with one seed per fold (then images_needed sizes the image part
    to ``target`` on its own).
    """

    target: float
    image_sd: float
    seed_sd: float
    n_images: int
    n_seeds: int  # seeds per fold (the smallest fold's count)
    n_folds: int
    image_part: float
    seed_part: float
    images_needed: int
    seeds_needed: int | None

    @property
    def combined(self) -> float:
        """About the half-width of the two-way CI: image and seed parts added in quadrature."""
        if math.isnan(self.seed_part):
            return self.image_part
        return math.hypot(self.image_part, self.seed_part)


def precision_plan(err_a, err_b, target: float = 0.1, *, confidence: float = 0.95) -> PrecisionPlan:
    """How a paired MAE difference's CI splits into a test-image part and a seed part (see :class:`PrecisionPlan`).

    ``err_a``, ``err_b``: absolute errors in the layouts ``paired_mae_difference`` takes (one run, seeds x images,
    or a list of folds). ``image_sd``: standard deviation (ddof=1) of the per-image differences after averaging
    the seeds, pooled over folds; ``seed_sd``: as in :class:`Effect`.
    """
    if not target > 0:
        raise ValueError(f"target={target}; expected a positive half-width in years, e.g. 0.1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    folds = _paired_folds(err_a, err_b)
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    n = np.array([f.shape[1] for f in folds], dtype=np.float64)
    seeds = np.array([f.shape[0] for f in folds], dtype=np.float64)
    w = n / n.sum()
    image_var = sum(f.shape[1] * f.mean(axis=0).var(ddof=1) for f in folds) / n.sum()  # pooled, per image
    image_sd = math.sqrt(image_var)
    seed_sd = _seed_sd(folds)
    image_part = z * image_sd / math.sqrt(n.sum())
    one_seed = math.isnan(seed_sd)
    share = 1.0 if one_seed else 1 / math.sqrt(2)  # each part's share of the target
    images_needed = int(math.ceil((z * image_sd / (share * target)) ** 2))
    if one_seed:
        seed_part, seeds_needed = float("nan"), None
    else:
        seed_part = z * seed_sd * math.sqrt(float(np.sum(w ** 2 / seeds)))
        # S seeds in every fold: seed part = z * seed_sd * sqrt(sum w^2) / sqrt(S)
        seeds_needed = max(2, int(math.ceil((z * seed_sd * math.sqrt(float(np.sum(w ** 2))) / (share * target)) ** 2)))
    return PrecisionPlan(target=float(target), image_sd=image_sd, seed_sd=seed_sd, n_images=int(n.sum()),
                         n_seeds=int(seeds.min()), n_folds=len(folds), image_part=image_part, seed_part=seed_part,
                         images_needed=images_needed, seeds_needed=seeds_needed)


def format_effect(effect: Effect, unit: str = "y", digits: int = 2) -> str:
    """``"-0.23 y [-0.31, -0.15]"``: estimate, unit, then the CI."""
    def num(x: float) -> str:
        return f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"

    u = f" {unit}" if unit else ""
    return f"{num(effect.estimate)}{u} [{num(effect.ci_low)}, {num(effect.ci_high)}]"


__all__ = ["Effect", "PrecisionPlan", "paired_mae_difference", "mean_ci", "verdict", "required_test_size",
           "precision_plan", "format_effect"]
