"""Statistics for comparing age estimators: paired effects with confidence intervals that keep their 95%.

Every comparison in the project goes through here (see docs/statistics.md for the reasoning in plain words):

* ``paired_mae_difference`` - mean of A - B over the same test images, with a 95% CI that covers both the
  choice of test subjects (or images, when no subject ids are given) and the training seeds;
* ``mean_ci`` - one method's mean (e.g. its MAE) with the same kind of CI, for table rows;
* ``verdict`` - "supported" / "contradicted" / "not resolved" from a CI (one-sided claims and equivalence);
  ``stable_verdict`` - the same, "not resolved" when the verdict changes with the bootstrap's own seed;
* ``required_test_size`` - test images needed for a CI of a given half-width, from a pilot;
* ``precision_plan`` - how much of a paired CI's width comes from the test images and how much from the seeds,
  and the images and seeds per split that would bring it to a target half-width;
* ``format_effect`` - ``"-0.23 y [-0.31, -0.15]"``;
* ``N_RESAMPLES`` (9999, for every reported number) and ``DEFAULT_SEEDS`` (training seeds per method).

Accepted error layouts (the same for A, B and ``mean_ci``'s values):

* shape ``(n_images,)`` - one run;
* shape ``(n_seeds, n_images)`` (a numpy array) - several seeds evaluated on the same test images;
* a list (or tuple) of per-fold arrays, each ``(n_images_fold,)`` or ``(n_seeds, n_images_fold)`` - folds with
  disjoint test images (a list of 1-D arrays is read as folds, not seeds: stack seeds into one array).

``groups`` (optional) gives one id per test image, e.g. its subject: a 1-D sequence ``(n_images,)`` for one fold,
or a list of per-fold 1-D sequences ``(n_images_fold,)``. With ids, subjects are the resampling unit; without,
images are, and the returned :class:`Effect` says so (``unit``).

The interval (docs/statistics.md gives the simulated coverages behind each choice) has two parts. Image part: a
cluster bootstrap written here (vectorised; BCa, percentile when BCa is undefined; the same draws as
``scipy.stats.bootstrap``) that draws subjects with replacement within each fold, every drawn subject bringing all
its images, both methods and all seeds. Seed part: a t interval on the per-seed means (S - 1 degrees of freedom, a
seed being one unit across the folds). Each side of the CI adds the two half-widths in quadrature, with the seed x
image noise counted once (in the seed part).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import special as _sp
from scipy import stats as _st

N_RESAMPLES = 9999  # bootstrap resamples behind every reported number
BOOTSTRAP_SEEDS = (0, 1, 2)  # a verdict must not change with the bootstrap's own seed (else "not resolved")
DEFAULT_SEEDS = 5  # training seeds per method: past 5 another seed narrows the interval by < 15% (docs/statistics.md)
_MAX_GATHER = 4_000_000  # elements gathered per bootstrap batch (about 32 MB of float64)


@dataclass(frozen=True)
class Effect:
    """An estimate of a mean (an MAE, or a paired difference of MAEs A - B) with its CI.

    ``seed_sd``: the seed-to-seed standard deviation of the benchmark's mean (seeds crossed with folds: of the
    per-seed means over all folds; otherwise pooled within folds); NaN with one seed. It is reported beside the
    CI, which already includes it. ``unit``: what the image part of the CI resamples ("images", or the group name,
    e.g. "subjects"); ``n_groups``: how many of those units there are in all folds (0 when not recorded).
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
    unit: str = "images"
    n_groups: int = 0

    @property
    def half_width(self) -> float:
        """Half the CI's width (same unit as the estimate)."""
        return (self.ci_high - self.ci_low) / 2

    @property
    def over(self) -> str:
        """What the CI is over, for a table's design line: e.g. "subjects x seeds" or "images"."""
        return f"{self.unit} x seeds" if self.n_runs > self.n_folds else self.unit


# --- reading the inputs ----------------------------------------------------------------------------------------


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
            raise ValueError(
                f"err_a has shape {sa[k]}, err_b {sb[k]}{where}; a paired comparison needs "
                "both methods' errors on the same images and seeds, in the same order"
            )
        for name, v in (("err_a", a), ("err_b", b)):
            if np.any(v < 0):
                raise ValueError(f"{name} has negative values; pass absolute errors |y_hat - y|, not signed ones")
    return [a - b for a, b in zip(fa, fb)]


def _group_codes(groups, folds: list[np.ndarray]) -> list[np.ndarray] | None:
    """Per-fold group codes 0..G_f-1, each (n_images_fold,), from one id per test image; None without ids."""
    if groups is None:
        return None
    if isinstance(groups, (list, tuple)) and len(groups) == len(folds) and all(np.ndim(g) == 1 for g in groups):
        per_fold = list(groups)
    elif len(folds) == 1 and np.ndim(groups) == 1:
        per_fold = [groups]
    else:
        raise ValueError(
            f"groups: expected one id per test image, a 1-D sequence for one fold or a list of "
            f"{len(folds)} per-fold 1-D sequences, in the errors' layout"
        )
    codes, seen = [], {}
    for k, (g, f) in enumerate(zip(per_fold, folds)):
        a = np.asarray(g)
        where = f"groups[{k}]" if len(folds) > 1 else "groups"
        if a.shape != (f.shape[1],):
            raise ValueError(f"{where} has {a.size} ids for {f.shape[1]} images; pass one id per test image")
        ids, code = np.unique(a, return_inverse=True)
        if len(ids) < 2:
            raise ValueError(f"{where} has a single group; the bootstrap over groups needs at least two per fold")
        for i in ids.tolist():
            if seen.setdefault(i, k) != k:
                raise ValueError(
                    f"group {i!r} has test images in folds {seen[i]} and {k}; groups are resampled "
                    "within folds, so folds must split by group (ids name the same group in every "
                    "fold: make ids that restart per fold unique)"
                )
        codes.append(code.reshape(-1))
    return codes


def _n_groups(folds: list[np.ndarray], codes) -> int:
    """Resampling units in all folds: groups with ids, else images."""
    return sum(f.shape[1] for f in folds) if codes is None else sum(int(c.max()) + 1 for c in codes)


def _check_options(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    if int(n_resamples) != n_resamples or n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples}; expected an integer of at least 100 (9999 for reported numbers)")


# --- the two parts of the interval -----------------------------------------------------------------------------


def _fold_weights(folds: list[np.ndarray]) -> np.ndarray:
    n = np.array([f.shape[1] for f in folds], dtype=np.float64)
    return n / n.sum()


def _crossed(folds: list[np.ndarray], seeds_crossed: bool) -> bool:
    """Seeds are read as crossed with folds (row s is the same seed in every fold) when every fold has S >= 2."""
    s = {f.shape[0] for f in folds}
    return bool(seeds_crossed) and len(s) == 1 and s.pop() > 1


def _seed_part(folds: list[np.ndarray], w: np.ndarray, seeds_crossed: bool) -> tuple[float, float, float]:
    """(variance of the estimate from the seeds, its degrees of freedom, seed_sd); (0, inf, NaN) with one seed.

    Crossed: per-seed means over all folds m_s = sum_f w_f mean(D_f[s]), variance var(m, ddof=1) / S, S - 1 df.
    Otherwise: the within-fold seed variance pooled over folds, times sum_f w_f^2 / S_f, sum_f (S_f - 1) df.
    """
    if _crossed(folds, seeds_crossed):
        m = sum(wf * f.mean(axis=1) for wf, f in zip(w, folds))
        sd = float(np.std(m, ddof=1))
        return sd**2 / len(m), float(len(m) - 1), sd
    dof = sum(f.shape[0] - 1 for f in folds)
    if dof == 0:
        return 0.0, math.inf, float("nan")
    ss = sum(float(np.sum((f.mean(axis=1) - f.mean()) ** 2)) for f in folds)
    var = ss / dof
    return var * float(sum(wf**2 / f.shape[0] for wf, f in zip(w, folds))), float(dof), math.sqrt(var)


def _cluster_totals(folds: list[np.ndarray], codes: list[np.ndarray] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: (sum of the seed-averaged values per group (G_f,), images per group (G_f,)); groups = images
    without ids."""
    out = []
    for k, f in enumerate(folds):
        d = f.mean(axis=0)
        if codes is None:
            out.append((d, np.ones_like(d)))
        else:
            out.append((np.bincount(codes[k], weights=d), np.bincount(codes[k]).astype(np.float64)))
    return out


def _cluster_variance(cells: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray) -> float:
    """Analytic (linearised) variance of the image-weighted mean when groups are drawn within folds."""
    v = 0.0
    for wf, (t, s) in zip(w, cells):
        g, n = len(t), s.sum()
        r = t - s * (t.sum() / n)  # group residual totals
        v += wf**2 * g / (g - 1) * float(np.sum(r**2)) / n**2
    return float(v)


def _bootstrap_distribution(cells, w: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples,) draws of sum_f w_f * (drawn totals / drawn images), each fold's groups drawn with
    replacement. The draws are those of ``scipy.stats.bootstrap`` (paired=False, one sample per fold)."""
    batch = max(1, _MAX_GATHER // max(len(t) for t, _ in cells))
    equal = [bool(np.all(s == s[0])) for _, s in cells]  # groups of one size: every draw has the same image count
    out = []
    for k in range(0, n_resamples, batch):
        b = min(batch, n_resamples - k)
        theta = np.zeros(b)
        for wf, (t, s), same in zip(w, cells, equal):
            idx = rng.integers(0, len(t), (b, len(t)))
            theta = theta + wf * (t[idx].sum(axis=-1) / (s.sum() if same else s[idx].sum(axis=-1)))
        out.append(theta)
    return np.concatenate(out)


def _bca_levels(theta_b: np.ndarray, est: float, cells, w: np.ndarray, alpha: float) -> tuple[float, float]:
    """BCa quantile levels (Efron and Tibshirani 1993, 14.3), acceleration from the leave-one-group-out
    jackknife within each fold, as scipy.stats.bootstrap computes them; NaN when undefined."""
    pct = (np.count_nonzero(theta_b < est) + np.count_nonzero(theta_b <= est)) / (2 * len(theta_b))
    z0 = float(_sp.ndtri(pct))
    num = den = 0.0
    for wf, (t, s) in zip(w, cells):
        g = len(t)
        loo = wf * (t.sum() - t) / (s.sum() - s)
        u = (g - 1) * (loo.mean() - loo)
        num += float(np.sum(u**3)) / g**3
        den += float(np.sum(u**2)) / g**2
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.float64(num) / np.float64(den) ** 1.5 / 6
        za = float(_sp.ndtri(alpha))
        lv = [float(_sp.ndtr(z0 + (z0 + zz) / (1 - a * (z0 + zz)))) for zz in (za, -za)]
    return lv[0], lv[1]


def _interaction_variance(folds: list[np.ndarray], codes, w: np.ndarray) -> float:
    """Seed x image noise in the image part's variance: the variance that the residuals
    r = D[s, i] - mean_s D[:, i] - (mean_i D[s, :] - mean D) (per fold) add to the seed-averaged mean, estimated
    per fold as the mean over seeds of their cluster variance divided by S_f - 1 (0 for a fold with one seed).
    The seed part already contains this noise (the per-seed means carry it), so it is taken out of the image part
    once instead of being counted twice."""
    v = 0.0
    for k, (wf, f) in enumerate(zip(w, folds)):
        s = f.shape[0]
        if s < 2:
            continue
        r = f - f.mean(axis=0) - (f.mean(axis=1, keepdims=True) - f.mean())
        cells = _cluster_totals([row[None, :] for row in r], None if codes is None else [codes[k]] * s)
        v += wf**2 * sum(_cluster_variance([c], np.ones(1)) for c in cells) / s / (s - 1)
    return float(v)


@dataclass(frozen=True)
class _Parts:
    """The two parts of an interval before they are combined (internal; the coverage simulation reads them)."""

    estimate: float
    img_low: float  # image-part interval (cluster bootstrap of the seed-averaged values)
    img_high: float
    img_var: float  # analytic cluster variance of the seed-averaged mean
    int_var: float  # of which seed x image noise, also inside seed_var
    seed_var: float  # variance of the estimate from the seeds (0 with one seed)
    seed_df: float
    seed_sd: float
    img_note: str
    seed_note: str


def _parts(
    folds: list[np.ndarray], codes, confidence: float, n_resamples: int, seed: int, unit: str, seeds_crossed: bool
) -> _Parts:
    w = _fold_weights(folds)
    estimate = float(sum(wf * f.mean() for wf, f in zip(w, folds)))
    cells = _cluster_totals(folds, codes)
    v_seed, df_seed, seed_sd = _seed_part(folds, w, seeds_crossed)
    flat = all(np.ptp(t / s) <= 1e-9 * (1 + np.abs(t / s).max()) for t, s in cells)
    strat = f" within {len(folds)} folds" if len(folds) > 1 else ""
    if flat:  # every fold's group means agree: every resample gives the estimate
        lo_i = hi_i = estimate
        img_note = f"{unit}: no spread between {unit}"
    else:
        theta_b = _bootstrap_distribution(cells, w, int(n_resamples), np.random.default_rng(seed))
        a1, a2 = _bca_levels(theta_b, estimate, cells, w, (1 - confidence) / 2)
        kind = "BCa"
        if not (math.isfinite(a1) and math.isfinite(a2)):  # BCa undefined: percentile on the same resamples
            a1, a2, kind = (1 - confidence) / 2, (1 + confidence) / 2, "percentile (BCa undefined)"
        lo_i, hi_i = (float(q) for q in np.quantile(theta_b, [a1, a2]))
        img_note = f"{unit}: bootstrap{strat}, {kind}, {n_resamples} resamples"
    if math.isnan(seed_sd):
        seed_note = "one seed per fold: training-seed variation not in the CI"
    else:
        crossed = _crossed(folds, seeds_crossed)
        seeds = (
            f"{folds[0].shape[0]} seeds crossed with folds"
            if crossed and len(folds) > 1
            else f"{folds[0].shape[0]} seeds"
            if crossed
            else "seeds nested in folds, variance pooled"
        )
        seed_note = f"seeds: t on per-seed means, {df_seed:g} df ({seeds})"
    return _Parts(
        estimate,
        lo_i,
        hi_i,
        0.0 if flat else _cluster_variance(cells, w),
        _interaction_variance(folds, codes, w),
        v_seed,
        df_seed,
        seed_sd,
        img_note,
        seed_note,
    )


def _interval(
    folds: list[np.ndarray],
    codes,
    confidence: float,
    n_resamples: int,
    seed: int,
    what: str,
    group_unit: str,
    seeds_crossed: bool,
) -> Effect:
    """Mean over all (seed, image) cells, folds weighted by their image counts, with the combined CI.

    Image part: the cluster bootstrap's interval around the estimate, narrowed by the share of its variance that
    is seed x image noise (already in the seed part). Seed part: t quantile (seed_df) times sqrt(seed_var). Each
    side of the CI: the two half-widths in quadrature (Banerjee 1960: at least the nominal coverage for any ratio
    of the two variances, exact when one of them is zero).
    """
    _check_options(confidence, n_resamples)
    unit = "images" if codes is None else group_unit
    p = _parts(folds, codes, confidence, n_resamples, seed, unit, seeds_crossed)
    keep = math.sqrt(max(1 - p.int_var / p.img_var, 0.0)) if p.img_var > 0 else 0.0
    lo_i, hi_i = (p.estimate - p.img_low) * keep, (p.img_high - p.estimate) * keep
    h_seed = float(_st.t.ppf(0.5 + confidence / 2, p.seed_df)) * math.sqrt(p.seed_var) if p.seed_var > 0 else 0.0
    lo, hi = p.estimate - math.hypot(lo_i, h_seed), p.estimate + math.hypot(hi_i, h_seed)
    n_runs = sum(f.shape[0] for f in folds)
    over = f"seeds x {unit}" if n_runs > len(folds) else unit
    method = f"{what}interval over {over} ({p.img_note}; {p.seed_note}; parts added in quadrature)"
    return Effect(
        p.estimate,
        float(lo),
        float(hi),
        n_images=sum(f.shape[1] for f in folds),
        n_runs=n_runs,
        n_folds=len(folds),
        confidence=confidence,
        method=method,
        seed_sd=p.seed_sd,
        unit=unit,
        n_groups=_n_groups(folds, codes),
    )


# --- public functions ------------------------------------------------------------------------------------------


def paired_mae_difference(
    err_a,
    err_b,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups=None,
    group_unit: str = "subjects",
    seeds_crossed: bool = True,
) -> Effect:
    """MAE of A minus MAE of B on the same test images, with a paired CI over test subjects (or images) and seeds.

    ``err_a``, ``err_b``: absolute errors in years, each ``(n_images,)``, ``(n_seeds, n_images)`` or a list of
    per-fold arrays ``(n_seeds, n_images_fold)``; both must have identical shapes (same images, same order).
    Negative ``estimate`` means A has the lower error. ``groups``: one id per test image (its subject), a 1-D
    sequence ``(n_images,)`` or a list of per-fold ``(n_images_fold,)``; ``group_unit`` names them in the result.
    ``seed``: the bootstrap's own seed. ``seeds_crossed``: row s of every fold is the same training seed (the
    default; it applies when every fold has the same number of seeds); False reads seeds as nested in folds.

    The estimate is the mean of A - B over every (seed, image) cell, folds weighted by their image counts. The CI
    targets the expected difference over new test subjects *and* new training seeds (Bouthillier et al., MLSys
    2021). Image part: subjects are drawn with replacement within each fold (a cluster bootstrap: a subject's images
    are correlated, so images are not independent draws), each drawn subject bringing all its images, both methods
    and every seed (the seed-averaged A - B per image); BCa, 9999 resamples by default. Without ``groups`` each
    image is its own group, and ``unit`` says "images". Seed part: the per-seed means (over all folds when seeds
    are crossed) give a variance with S - 1 degrees of freedom, read with a t quantile, not z. Each side of the CI
    adds the two half-widths in quadrature (conservative for any ratio of the two parts, Banerjee 1960), the seed x
    image noise taken out of the image part since the per-seed means already carry it. With one seed per fold the
    CI covers the test subjects only (``method`` says so). docs/statistics.md gives the simulated coverages.
    """
    folds = _paired_folds(err_a, err_b)
    return _interval(
        folds, _group_codes(groups, folds), confidence, int(n_resamples), seed, "paired ", group_unit, seeds_crossed
    )


def mean_ci(
    values,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    groups=None,
    group_unit: str = "subjects",
    seeds_crossed: bool = True,
) -> Effect:
    """One method's mean (e.g. MAE from absolute errors) with the same CI as ``paired_mae_difference``.

    ``values``: ``(n_images,)``, ``(n_seeds, n_images)`` or a list of per-fold arrays; ``groups`` as in
    ``paired_mae_difference``; for table rows.
    """
    folds = _as_folds(values, "values")[0]
    return _interval(
        folds, _group_codes(groups, folds), confidence, int(n_resamples), seed, "", group_unit, seeds_crossed
    )


def verdict(effect: Effect | Sequence[Effect], *, better: str = "lower", margin: float = 0.0) -> str:
    """Read an effect's CI against a claim about A - B; returns "supported", "contradicted" or "not resolved".

    ``better="lower"``: the claim is A - B < -margin (A's error lower by more than ``margin``); supported when the
    whole CI is below -margin, contradicted when the whole CI is above it.
    ``better="higher"``: the claim is A - B > margin (for scores where higher is better), mirrored.
    ``better="equivalent"``: the claim is |A - B| < margin (e.g. "matches attention's accuracy"); supported when
    the CI lies inside (-margin, margin), contradicted when it lies entirely outside, else not resolved.
    ``effect`` may also be a sequence of Effects, the same comparison under different bootstrap seeds: the
    verdict they agree on, or "not resolved" when they disagree (see ``stable_verdict``).
    """
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin={margin}; expected a finite non-negative number in the effect's unit")
    if not isinstance(effect, Effect):
        found = {verdict(e, better=better, margin=margin) for e in effect}
        if not found:
            raise ValueError("verdict got an empty sequence of effects")
        return found.pop() if len(found) == 1 else "not resolved"
    lo, hi = effect.ci_low, effect.ci_high
    if better not in ("lower", "higher", "equivalent"):
        raise ValueError(f"better={better!r}; expected 'lower', 'higher' or 'equivalent'")
    if better == "equivalent" and margin == 0:
        raise ValueError("an equivalence claim needs margin > 0 (the largest difference that counts as equal)")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "not resolved"
    if better == "lower":
        return "supported" if hi < -margin else "contradicted" if lo > -margin else "not resolved"
    if better == "higher":
        return "supported" if lo > margin else "contradicted" if hi < margin else "not resolved"
    if -margin < lo and hi < margin:
        return "supported"
    return "contradicted" if lo > margin or hi < -margin else "not resolved"


def detectable_effect(effect: Effect, power: float = 0.8) -> float:
    """The smallest true effect (in the estimate's unit) that a comparison of this precision would detect with
    probability ``power`` at its confidence level: (z_(1-alpha/2) + z_power) x SE, the standard error read from the
    CI as half-width / z_(1-alpha/2) (about 1.43 half-widths at 95% and 80% power). Where the seed part uses a t
    quantile the CI is wider than a normal one and so is this bound: it errs on the side of "could not have seen"."""
    if not 0 < power < 1:
        raise ValueError(f"power={power}; expected a probability between 0 and 1")
    z = _st.norm.ppf(0.5 + effect.confidence / 2)
    return float((z + _st.norm.ppf(power)) * effect.half_width / z)


def per_bootstrap_seed(err_a, err_b, bootstrap_seeds: Sequence[int] = BOOTSTRAP_SEEDS, **kw) -> list[Effect]:
    """``paired_mae_difference(err_a, err_b, seed=s, **kw)`` for each ``s`` of ``bootstrap_seeds``: the same
    comparison under each of the bootstrap's own seeds (what :func:`stable_of` and :func:`stable_verdict` read)."""
    if len(bootstrap_seeds) < 1:
        raise ValueError("bootstrap_seeds is empty; pass a few seeds, e.g. (0, 1, 2)")
    return [paired_mae_difference(err_a, err_b, seed=s, **kw) for s in bootstrap_seeds]


def stable_of(effects: Sequence[Effect]) -> Effect:
    """One comparison's Effects under several bootstrap seeds -> the first when their CIs all lie on the same side
    of 0 (or all straddle it), else the first with the union of their CIs, which then contains 0: an interval
    whose side of 0 depends on the bootstrap's own seed is reported as not resolved."""
    if not effects:
        raise ValueError("stable_of got no effects")
    if len({verdict(e) for e in effects}) == 1:
        return effects[0]
    return replace(effects[0], ci_low=min(e.ci_low for e in effects), ci_high=max(e.ci_high for e in effects))


def stable_difference(err_a, err_b, *, bootstrap_seeds: Sequence[int] = BOOTSTRAP_SEEDS, **kw) -> Effect:
    """``paired_mae_difference(err_a, err_b, **kw)`` under each of ``bootstrap_seeds``, read by :func:`stable_of`
    (the first seed's Effect, or the union of the CIs when their side of 0 differs). Arguments as in
    ``paired_mae_difference``; what notebook sentences (``cilf.notebook.conclude``) are read from."""
    return stable_of(per_bootstrap_seed(err_a, err_b, bootstrap_seeds, **kw))


def stable_verdict(
    err_a,
    err_b,
    *,
    better: str = "lower",
    margin: float = 0.0,
    groups=None,
    bootstrap_seeds: Sequence[int] = BOOTSTRAP_SEEDS,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    group_unit: str = "subjects",
    seeds_crossed: bool = True,
) -> str:
    """``verdict`` of ``paired_mae_difference(err_a, err_b, ...)`` recomputed with each of ``bootstrap_seeds``;
    "not resolved" when the verdict changes with the bootstrap's own seed (an interval end sitting on the margin
    within Monte Carlo error). Arguments as in ``paired_mae_difference`` and ``verdict``."""
    effects = per_bootstrap_seed(
        err_a,
        err_b,
        bootstrap_seeds,
        confidence=confidence,
        n_resamples=n_resamples,
        groups=groups,
        group_unit=group_unit,
        seeds_crossed=seeds_crossed,
    )
    return verdict(effects, better=better, margin=margin)


def _design_effect(folds: list[np.ndarray], codes, w: np.ndarray) -> float:
    """Variance of the seed-averaged image mean with groups drawn over that with images drawn (1 without ids)."""
    if codes is None:
        return 1.0
    v_iid = _cluster_variance(_cluster_totals(folds, None), w)
    return _cluster_variance(_cluster_totals(folds, codes), w) / v_iid if v_iid > 0 else 1.0


def required_test_size(err_a, err_b, half_width: float = 0.1, *, confidence: float = 0.95, groups=None) -> int:
    """Test images needed for a CI half-width of at most ``half_width`` (years) on the paired difference.

    ``err_a``, ``err_b``: a pilot's absolute errors, ``(n_images,)`` or ``(n_seeds, n_images)`` (seeds are
    averaged per image first); ``groups``: the pilot's subject ids ``(n_images,)``. Normal approximation:
    n = ceil((z * sd / half_width)^2 * deff), sd the sample standard deviation (ddof=1) of the per-image
    differences, z = 1.96 for 95% (the image part of the CI is a bootstrap over many subjects, read like z), deff
    the design effect of the subjects: the variance of the mean with subjects drawn over that with images drawn
    (about 1 + (m - 1) rho for m images per subject at within-subject correlation rho; 1 without ids). Assumes as
    many images per subject as the pilot. This sizes the image part of the CI only; more images do not shrink the
    seed-to-seed spread.
    """
    if not half_width > 0:
        raise ValueError(f"half_width={half_width}; expected a positive number of years, e.g. 0.1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    folds = _paired_folds(err_a, err_b)
    if len(folds) != 1:
        raise ValueError("required_test_size takes one pilot split, not a list of folds; pass one fold's errors")
    deff = _design_effect(folds, _group_codes(groups, folds), np.ones(1))
    d = folds[0].mean(axis=0)
    z = _st.norm.ppf(0.5 + confidence / 2)
    return int(math.ceil((z * d.std(ddof=1) / half_width) ** 2 * deff))


@dataclass(frozen=True)
class PrecisionPlan:
    """Where a paired difference's CI width comes from, and what would bring it to ``target`` (years).

    As in ``paired_mae_difference``, folds weighted by their image counts. ``image_part = z * image_sd *
    sqrt(design_effect) / sqrt(n_images)``: the half-width the test images alone would give (seeds averaged per image
    first; ``design_effect`` from the subject ids, 1 without). ``seed_part = t_df * seed_sd / sqrt(S)`` (seeds
    crossed with folds, df = S - 1) or ``t_df * seed_sd * sqrt(sum_f w_f^2 / S_f)`` (nested, df = sum_f (S_f - 1)):
    the half-width the training seeds alone would give. ``noise_part = z * sqrt(v)``, v the share of the image
    part's variance that is seeds x images noise: that noise moves the per-seed means too, so the CI counts it once,
    in the seed part, and ``combined = sqrt(image_part^2 - noise_part^2 + seed_part^2)`` is the CI's half-width up
    to the bootstrap's asymmetry. ``images_needed`` (test images in all, split over folds and subjects as
    now) and ``seeds_needed`` (per split, t quantile included) bring each part to ``target / sqrt(2)``, so the two
    together reach about ``target``; more images never shrink the seed part. ``seed_part`` is NaN and
    ``seeds_needed`` None with one seed per fold (then images_needed sizes the image part to ``target`` on its own).
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
    seed_df: float = float("nan")  # degrees of freedom of the seed part's t quantile
    design_effect: float = 1.0  # variance with subjects drawn / with images drawn
    n_groups: int = 0  # resampling units (subjects, or images without ids)
    seeds_crossed: bool = False
    noise_part: float = 0.0  # of image_part: seeds x images noise, which the CI counts in the seed part

    @property
    def combined(self) -> float:
        """About the CI's half-width: the image part less its seeds x images noise, and the seed part, added in
        quadrature as the CI adds them."""
        if math.isnan(self.seed_part):
            return self.image_part
        return math.sqrt(max(self.image_part**2 - self.noise_part**2, 0.0) + self.seed_part**2)


def _seeds_for(half: float, sd: float, scale: float, confidence: float, crossed: bool, n_folds: int) -> int:
    """Smallest S >= 2 whose seed part t_df * sd * scale / sqrt(S) is at most ``half`` (df = S - 1 crossed,
    n_folds * (S - 1) nested)."""

    def ok(s: int) -> bool:
        df = (s - 1) * (1 if crossed else n_folds)
        return float(_st.t.ppf(0.5 + confidence / 2, df)) * sd * scale / math.sqrt(s) <= half

    if sd * scale == 0 or ok(2):
        return 2
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    lo = max(2, int(math.ceil((z * sd * scale / half) ** 2)) - 1)  # t > z: the normal answer is a lower bound
    if ok(lo):
        return lo
    hi = lo + 1
    while not ok(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def precision_plan(
    err_a, err_b, target: float = 0.1, *, confidence: float = 0.95, groups=None, seeds_crossed: bool = True
) -> PrecisionPlan:
    """How a paired MAE difference's CI splits into a test-image part and a seed part (see :class:`PrecisionPlan`).

    ``err_a``, ``err_b``: absolute errors in the layouts ``paired_mae_difference`` takes (one run, seeds x images,
    or a list of folds); ``groups``, ``seeds_crossed`` as there. ``image_sd``: standard deviation (ddof=1) of the
    per-image differences after averaging the seeds, pooled over folds; ``seed_sd``: as in :class:`Effect`.
    """
    if not target > 0:
        raise ValueError(f"target={target}; expected a positive half-width in years, e.g. 0.1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a level between 0 and 1, e.g. 0.95")
    folds = _paired_folds(err_a, err_b)
    codes = _group_codes(groups, folds)
    z = float(_st.norm.ppf(0.5 + confidence / 2))
    n = np.array([f.shape[1] for f in folds], dtype=np.float64)
    seeds = np.array([f.shape[0] for f in folds], dtype=np.float64)
    w = n / n.sum()
    image_var = sum(f.shape[1] * f.mean(axis=0).var(ddof=1) for f in folds) / n.sum()  # pooled, per image
    image_sd = math.sqrt(image_var)
    deff = _design_effect(folds, codes, w)
    image_part = z * image_sd * math.sqrt(deff) / math.sqrt(n.sum())
    v_seed, df_seed, seed_sd = _seed_part(folds, w, seeds_crossed)
    one_seed = math.isnan(seed_sd)
    share = 1.0 if one_seed else 1 / math.sqrt(2)  # each part's share of the target
    images_needed = int(math.ceil((z * image_sd / (share * target)) ** 2 * deff))
    crossed = _crossed(folds, seeds_crossed)
    if one_seed:
        seed_part, seeds_needed = float("nan"), None
    else:
        seed_part = float(_st.t.ppf(0.5 + confidence / 2, df_seed)) * math.sqrt(v_seed)
        # crossed: seed part = t * seed_sd / sqrt(S); nested, S seeds in every fold: t * seed_sd * sqrt(sum w^2 / S)
        scale = 1.0 if crossed else math.sqrt(float(np.sum(w**2)))
        seeds_needed = _seeds_for(share * target, seed_sd, scale, confidence, crossed, len(folds))
    return PrecisionPlan(
        target=float(target),
        image_sd=image_sd,
        seed_sd=seed_sd,
        n_images=int(n.sum()),
        n_seeds=int(seeds.min()),
        n_folds=len(folds),
        image_part=image_part,
        seed_part=seed_part,
        images_needed=images_needed,
        seeds_needed=seeds_needed,
        seed_df=float("nan") if one_seed else df_seed,
        design_effect=deff,
        n_groups=_n_groups(folds, codes),
        seeds_crossed=crossed,
        noise_part=z * math.sqrt(_interaction_variance(folds, codes, w)),
    )


def format_effect(effect: Effect, unit: str = "y", digits: int = 2) -> str:
    """``"-0.23 y [-0.31, -0.15]"``: estimate, unit, then the CI."""

    def num(x: float) -> str:
        return f"{round(x, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.00"

    u = f" {unit}" if unit else ""
    return f"{num(effect.estimate)}{u} [{num(effect.ci_low)}, {num(effect.ci_high)}]"


__all__ = [
    "Effect",
    "PrecisionPlan",
    "N_RESAMPLES",
    "DEFAULT_SEEDS",
    "paired_mae_difference",
    "mean_ci",
    "verdict",
    "stable_verdict",
    "required_test_size",
    "precision_plan",
    "format_effect",
]
