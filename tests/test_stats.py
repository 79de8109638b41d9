import math

import numpy as np
import pytest
from scipy import stats as st

from cilf import stats
from cilf.stats import (
    DEFAULT_SEEDS,
    N_RESAMPLES,
    Effect,
    detectable_effect,
    format_effect,
    mean_ci,
    paired_mae_difference,
    precision_plan,
    required_test_size,
    stable_difference,
    stable_of,
    stable_verdict,
    verdict,
)

N_RES = 2000


def _effect(lo, hi):
    return Effect((lo + hi) / 2, lo, hi, n_images=100, n_runs=1, n_folds=1, confidence=0.95, method="hand-made")


def _abs_normal(rng, shape, scale=5.0):
    return np.abs(rng.normal(0, scale, shape))


# --- hand-computed cases ---------------------------------------------------------------------------------------


def test_constant_difference_gives_zero_width_ci_at_that_value():
    b = np.linspace(1, 9, 50)
    e = paired_mae_difference(b + 0.25, b, n_resamples=N_RES)
    assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((0.25, 0.25, 0.25))
    assert verdict(e, better="higher") == "supported" and verdict(e) == "contradicted"


def test_identical_errors_give_zero_and_not_resolved():
    a = _abs_normal(np.random.default_rng(1), 80)
    e = paired_mae_difference(a, a.copy(), n_resamples=N_RES)
    assert e.estimate == 0 and e.ci_low == 0 and e.ci_high == 0
    assert verdict(e) == "not resolved" and verdict(e, better="higher") == "not resolved"
    assert format_effect(e) == "0.00 y [0.00, 0.00]"


def test_known_normal_difference_covers_truth_with_expected_width():
    rng = np.random.default_rng(2)
    n, mu, sd = 2000, -0.3, 1.5
    b = _abs_normal(rng, n) + 10  # keep A = B + d non-negative
    d = rng.normal(mu, sd, n)
    e = paired_mae_difference(b + d, b, n_resamples=N_RES, seed=3)
    assert e.estimate == pytest.approx(d.mean())
    assert e.ci_low < mu < e.ci_high
    expected = 2 * 1.96 * sd / np.sqrt(n)
    assert (e.ci_high - e.ci_low) == pytest.approx(expected, rel=0.15)
    assert e.n_images == n and e.n_runs == 1 and e.n_folds == 1 and np.isnan(e.seed_sd)


def test_single_run_is_exactly_scipys_paired_bootstrap():
    rng = np.random.default_rng(4)
    a, b = _abs_normal(rng, 300), _abs_normal(rng, 300)
    e = paired_mae_difference(a, b, n_resamples=N_RES, seed=7)
    ref = st.bootstrap(
        (a, b),
        lambda x, y, axis: (x - y).mean(axis=axis),
        paired=True,
        n_resamples=N_RES,
        method="BCa",
        rng=np.random.default_rng(7),
    ).confidence_interval
    assert (e.ci_low, e.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_pairing_resolves_a_small_consistent_gap_that_unpaired_does_not():
    rng = np.random.default_rng(5)
    n = 200
    b = _abs_normal(rng, n)  # image difficulty dominates the errors (sd ~ 3 y) ...
    a = b + 0.1 + rng.normal(0, 0.05, n)  # ... and A is consistently 0.1 y worse on every image
    a = np.abs(a)
    paired = paired_mae_difference(a, b, n_resamples=N_RES)
    unpaired_ci = st.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
        paired=False,
        n_resamples=N_RES,
        rng=np.random.default_rng(0),
    ).confidence_interval
    unpaired = _effect(unpaired_ci.low, unpaired_ci.high)
    assert verdict(paired, better="higher") == "supported" and paired.ci_low > 0.08
    assert verdict(unpaired, better="higher") == "not resolved"
    assert unpaired.half_width > 20 * paired.half_width


def test_same_seed_same_numbers():
    rng = np.random.default_rng(6)
    a, b = _abs_normal(rng, (3, 120)), _abs_normal(rng, (3, 120))
    assert paired_mae_difference(a, b, n_resamples=N_RES, seed=1) == paired_mae_difference(
        a, b, n_resamples=N_RES, seed=1
    )


# --- verdicts on hand-made CIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lo,hi,margin,lower,higher",
    [
        (-0.31, -0.15, 0.0, "supported", "contradicted"),
        (0.05, 0.40, 0.0, "contradicted", "supported"),
        (-0.20, 0.10, 0.0, "not resolved", "not resolved"),
        (-0.31, -0.15, 0.2, "not resolved", "contradicted"),  # better by > 0.2 y? the CI straddles -0.2
        (-0.31, -0.25, 0.2, "supported", "contradicted"),
        (-0.10, -0.05, 0.2, "contradicted", "contradicted"),  # better, but by less than the margin
        (0.25, 0.30, 0.2, "contradicted", "supported"),
    ],
)
def test_one_sided_verdicts(lo, hi, margin, lower, higher):
    assert verdict(_effect(lo, hi), better="lower", margin=margin) == lower
    assert verdict(_effect(lo, hi), better="higher", margin=margin) == higher


@pytest.mark.parametrize(
    "lo,hi,expected",
    [
        (-0.1, 0.2, "supported"),  # inside (-0.25, 0.25)
        (0.3, 0.6, "contradicted"),  # entirely above the margin
        (-0.9, -0.4, "contradicted"),  # entirely below
        (-0.1, 0.4, "not resolved"),  # straddles the margin
        (-0.5, 0.5, "not resolved"),  # wider than the margin on both sides
    ],
)
def test_equivalence_verdicts(lo, hi, expected):
    assert verdict(_effect(lo, hi), better="equivalent", margin=0.25) == expected


def test_verdict_refuses_bad_options():
    with pytest.raises(ValueError, match="margin > 0"):
        verdict(_effect(-0.1, 0.1), better="equivalent")
    with pytest.raises(ValueError, match="'lower', 'higher' or 'equivalent'"):
        verdict(_effect(-0.1, 0.1), better="smaller")
    with pytest.raises(ValueError, match="non-negative"):
        verdict(_effect(-0.1, 0.1), margin=-0.1)


# --- sizing the test split ---------------------------------------------------------------------------------------


def test_required_test_size_hand_computed():
    # differences +1, -1, +1, -1: sd (ddof=1) = sqrt(4/3); n = (1.95996 * 1.1547 / 0.1)^2 = 512.2 -> 513
    a, b = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 1.0])
    assert required_test_size(a, b, half_width=0.1) == 513
    assert required_test_size(a, b, half_width=0.2) == 129  # 128.05 -> 129
    # seeds are averaged per image first: the seed-to-seed wobble below cancels, leaving the same differences
    assert required_test_size(np.stack([a + 0.5, a + 1.5]), np.stack([b + 1, b + 1]), half_width=0.1) == 513
    with pytest.raises(ValueError, match="half_width"):
        required_test_size(a, b, half_width=0)


def test_precision_plan_hand_computed_one_run():
    # differences 1, 2, 3, 4: sd = 1.29099; image part = 1.95996 * 1.29099 / sqrt(4) = 1.26515;
    # one seed: the whole target goes to the images, n = (1.95996 * 1.29099 / 0.1)^2 = 640.24 -> 641
    p = precision_plan(np.array([1.0, 2, 3, 4]), np.zeros(4), 0.1)
    assert p.image_sd == pytest.approx(1.2909944, abs=1e-6)
    assert p.image_part == pytest.approx(1.2651513, abs=1e-6)
    assert math.isnan(p.seed_part) and p.seeds_needed is None and p.combined == p.image_part
    assert p.images_needed == 641 and (p.n_images, p.n_seeds, p.n_folds) == (4, 1, 1)


def test_precision_plan_hand_computed_seeds_and_folds():
    # fold 0: 2 seeds x 4 images, differences seed 0 = [1, 2, 3, 4], seed 1 = [1, 2, 3, 4] + 1;
    # fold 1: 2 seeds x 4 images, differences seed 0 = [1, 1, 3, 3], seed 1 = [1, 1, 3, 3] - 1
    b = np.zeros((2, 4))
    f0 = np.array([[1.0, 2, 3, 4], [2, 3, 4, 5]])
    f1 = np.array([[1.0, 1, 3, 3], [0, 0, 2, 2]])
    z = 1.959963984540054
    # nested reading (seeds_crossed=False: seed s of fold 0 unrelated to seed s of fold 1), as before:
    p = precision_plan([f0, f1], [b, b], 0.1, seeds_crossed=False)
    # per-image (seed-averaged) differences: fold 0 [1.5, 2.5, 3.5, 4.5] (var 5/3), fold 1 [0.5, 0.5, 2.5, 2.5]
    # (var 4/3); pooled over the 8 images: (4 * 5/3 + 4 * 4/3) / 8 = 1.5; no seed x image noise (pure seed shifts)
    assert p.image_sd == pytest.approx(math.sqrt(1.5))
    assert p.image_part == pytest.approx(z * math.sqrt(1.5) / math.sqrt(8))
    # seed means: fold 0 (2.5, 3.5), fold 1 (2.0, 1.0): pooled sd = sqrt((0.5 + 0.5) / 2) = 0.7071 with 2 df;
    # weights 1/2, 1/2, 2 seeds each: seed part = t_2 * 0.7071 * sqrt(2 * 0.25 / 2), t_2 = 4.3027 (not z)
    t2 = 4.302652729749462
    assert p.seed_sd == pytest.approx(math.sqrt(0.5)) and p.seed_df == 2 and not p.seeds_crossed
    assert p.seed_part == pytest.approx(t2 * math.sqrt(0.5) * 0.5)
    assert p.combined == pytest.approx(math.hypot(p.image_part, p.seed_part))
    # each part to 0.1 / sqrt(2): images (z * 1.2247 / 0.070711)^2 = 1152.4 -> 1153; seeds per fold: the smallest
    # S with t_{2(S-1)} * 0.7071 * sqrt(0.5) / sqrt(S) <= 0.070711 is 194 (193 gives 0.07076; z alone gave 193)
    assert p.images_needed == 1153 and p.seeds_needed == 194
    # crossed (the default): row s is the same seed in both folds; the benchmark's per-seed means are
    # (2.5 + 2.0) / 2 = 2.25 and (3.5 + 1.0) / 2 = 2.25, so these seed shifts cancel across folds: no seed part
    c = precision_plan([f0, f1], [b, b], 0.1)
    assert c.seeds_crossed and c.seed_sd == 0 and c.seed_part == 0 and c.seeds_needed == 2 and c.seed_df == 1
    assert c.image_part == p.image_part and c.combined == pytest.approx(c.image_part)
    # ... while shifts shared by both folds add up: per-seed means (2.5 + 1.0) / 2 = 1.75 and (3.5 + 2.0) / 2 = 2.75,
    # sd 0.7071 with 1 df; seed part = t_1 * 0.7071 / sqrt(2) = 12.7062 * 0.5 (nested reading: t_2 * 0.3536)
    shared = precision_plan([f0, f1[::-1]], [b, b], 0.1)
    assert shared.seed_sd == pytest.approx(math.sqrt(0.5))
    assert shared.seed_part == pytest.approx(12.706204736174694 * 0.5)
    # smallest S with t_{S-1} * 0.7071 / sqrt(S) <= 0.070711: 387 (386 gives 0.070763)
    assert shared.seeds_needed == 387
    with pytest.raises(ValueError, match="target"):
        precision_plan(f0, b, 0)


def test_precision_plan_matches_the_bootstrap_half_width():
    # the normal approximation should agree with the two-way bootstrap CI it explains (within 15%)
    rng = np.random.default_rng(3)
    base = _abs_normal(rng, 600) + 5
    a = base[None, :] + rng.normal(-0.2, 1.0, (4, 600)) + rng.normal(0, 0.15, (4, 1))
    b = np.broadcast_to(base, (4, 600)).copy()
    p = precision_plan(a, b, 0.1)
    e = paired_mae_difference(a, b, n_resamples=N_RES)
    assert p.combined == pytest.approx(e.half_width, rel=0.15)
    assert p.seed_part > 0 and p.image_part > 0


def test_required_test_size_delivers_the_half_width():
    rng = np.random.default_rng(8)

    def draw(n):  # paired differences ~ N(-0.2, 0.8) on top of per-image difficulty
        b = _abs_normal(rng, n) + 5
        return b + rng.normal(-0.2, 0.8, n), b

    n = required_test_size(*draw(400), half_width=0.1)
    assert 200 < n < 300  # (1.96 * 0.8 / 0.1)^2 = 246, up to the pilot's sampling error
    e = paired_mae_difference(*draw(n), n_resamples=N_RES)
    assert e.half_width == pytest.approx(0.1, rel=0.15)


# --- several seeds and folds -------------------------------------------------------------------------------------


def test_multi_seed_estimate_and_seed_spread_enters_the_ci():
    rng = np.random.default_rng(9)
    n = 400
    b = np.tile(_abs_normal(rng, n) + 5, (3, 1))
    offsets = np.array([[-0.6], [0.0], [0.6]])  # the seed matters far more than the image here
    a = b + offsets + rng.normal(0, 0.05, (3, n))
    e = paired_mae_difference(a, b, n_resamples=N_RES)
    assert e.estimate == pytest.approx((a - b).mean())
    assert e.n_runs == 3 and e.n_images == n and "seeds x images" in e.method
    assert e.seed_sd == pytest.approx(0.6, abs=0.02)
    images_only = paired_mae_difference(a.mean(axis=0), b[0], n_resamples=N_RES)
    assert images_only.half_width < 0.01  # seed-averaged, images-only CI would look falsely precise
    assert e.half_width > 0.3 and verdict(e) == "not resolved"


def test_folds_are_resampled_within_strata():
    # fold 0: 10 images with difference 1.0, fold 1: 30 images with difference 3.0 -> (10*1 + 30*3) / 40 = 2.5;
    # a resampler mixing the folds would move this mean, the stratified one cannot
    b0, b1 = np.ones((2, 10)), np.ones((3, 30))
    e = paired_mae_difference([b0 + 1.0, b1 + 3.0], [b0, b1], n_resamples=N_RES)
    assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((2.5, 2.5, 2.5))
    assert (e.n_images, e.n_runs, e.n_folds) == (40, 5, 2)


def test_folds_match_scipys_stratified_bootstrap_with_one_seed():
    rng = np.random.default_rng(10)
    a0, b0, a1, b1 = _abs_normal(rng, 60), _abs_normal(rng, 60), _abs_normal(rng, 140), _abs_normal(rng, 140)
    e = paired_mae_difference([a0, a1], [b0, b1], n_resamples=N_RES, seed=2)
    d0, d1 = a0 - b0, a1 - b1
    ref = st.bootstrap(
        (d0, d1),
        lambda x, y, axis: 0.3 * x.mean(axis=axis) + 0.7 * y.mean(axis=axis),
        n_resamples=N_RES,
        method="BCa",
        rng=np.random.default_rng(2),
    ).confidence_interval
    assert e.estimate == pytest.approx(np.concatenate([d0, d1]).mean())
    assert (e.ci_low, e.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-9)


def test_bca_undefined_falls_back_to_percentile_on_the_same_resamples(monkeypatch):
    # BCa is undefined when its bias or acceleration is (a degenerate bootstrap distribution); force that case
    rng = np.random.default_rng(12)
    a, b = _abs_normal(rng, 150), _abs_normal(rng, 150)
    monkeypatch.setattr(stats, "_bca_levels", lambda *args: (math.nan, math.nan))
    e = paired_mae_difference(a, b, n_resamples=N_RES, seed=4)
    ref = st.bootstrap(
        (a - b,), np.mean, n_resamples=N_RES, method="percentile", rng=np.random.default_rng(4)
    ).confidence_interval
    assert (e.ci_low, e.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-9)
    assert "percentile (BCa undefined)" in e.method


def test_no_spread_between_subjects_gives_a_zero_image_part():
    # every subject's mean difference is 0.5 (images inside a subject differ): drawing subjects cannot move the mean
    d = np.array([0.0, 1.0] * 10)
    e = paired_mae_difference(d + 1, np.ones(20), groups=np.repeat(np.arange(10), 2), n_resamples=N_RES)
    assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((0.5, 0.5, 0.5))
    assert "no spread between subjects" in e.method
    assert paired_mae_difference(d + 1, np.ones(20), n_resamples=N_RES).half_width > 0.1  # images do differ


def test_mean_ci_for_table_rows():
    rng = np.random.default_rng(11)
    errs = _abs_normal(rng, (3, 500), scale=4.0)
    m = mean_ci(errs, n_resamples=N_RES)
    assert m.estimate == pytest.approx(errs.mean())
    assert m.ci_low < 4 * np.sqrt(2 / np.pi) < m.ci_high  # E|N(0, 4)| = 3.19
    assert "paired" not in m.method
    assert format_effect(m) == f"{m.estimate:.2f} y [{m.ci_low:.2f}, {m.ci_high:.2f}]"


# --- bad input -------------------------------------------------------------------------------------------------


def test_shape_errors_name_the_shapes():
    a = np.ones((3, 100))
    with pytest.raises(ValueError, match=r"err_a has shape \(3, 100\), err_b \(3, 99\)"):
        paired_mae_difference(a, np.ones((3, 99)))
    with pytest.raises(ValueError, match=r"err_a has shape \(100,\), err_b \(99,\)"):
        paired_mae_difference(np.ones(100), np.ones(99))
    with pytest.raises(ValueError, match=r"err_a has shape \(3, 100\), err_b \(2, 100\)"):
        paired_mae_difference(a, np.ones((2, 100)))
    with pytest.raises(ValueError, match=r"err_a has shape \(2, 3, 4\); expected"):
        paired_mae_difference(np.ones((2, 3, 4)), np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"err_a has 2 fold\(s\), err_b 1"):
        paired_mae_difference([a, a], [a])
    with pytest.raises(ValueError, match=r"\(2, 10\), err_b \(2, 11\) in fold 1"):
        paired_mae_difference([a, np.ones((2, 10))], [a, np.ones((2, 11))])


def test_bad_values_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="negative values; pass absolute errors"):
        paired_mae_difference(np.array([1.0, -2.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"err_b contains NaN"):
        paired_mae_difference(np.ones(5), np.array([1.0, np.nan, 1, 1, 1]))
    with pytest.raises(ValueError, match="at least one run and two images"):
        mean_ci(np.ones(1))
    with pytest.raises(ValueError, match="confidence"):
        mean_ci(np.arange(5.0), confidence=95)


# --- subjects as the resampling unit -----------------------------------------------------------------------------


def _clustered(rng, subjects=60, per_subject=5, rho=0.5, seeds=1, shift=-0.1):
    """Paired errors (seeds, images) with subject-correlated differences, and the subject ids."""
    n = subjects * per_subject
    ids = np.repeat(np.arange(subjects), per_subject)
    d = np.sqrt(rho) * rng.normal(0, 1, subjects)[ids] + np.sqrt(1 - rho) * rng.normal(0, 1, n)
    b = np.broadcast_to(_abs_normal(rng, n) + 10, (seeds, n)).copy()
    return b + d + shift + rng.normal(0, 0.3, (seeds, n)), b, ids


def test_singleton_groups_are_the_image_bootstrap():
    rng = np.random.default_rng(20)
    a, b = _abs_normal(rng, 200), _abs_normal(rng, 200)
    by_image = paired_mae_difference(a, b, n_resamples=N_RES, seed=5)
    by_id = paired_mae_difference(a, b, n_resamples=N_RES, seed=5, groups=np.arange(200))
    assert (by_id.ci_low, by_id.ci_high) == pytest.approx((by_image.ci_low, by_image.ci_high), rel=1e-9)
    assert (by_image.unit, by_image.n_groups, by_image.over) == ("images", 200, "images")
    assert (by_id.unit, by_id.n_groups) == ("subjects", 200)


def test_equal_size_subjects_are_drawn_whole():
    # with 5 images per subject, drawing subjects is drawing subject means: the same interval, to rounding
    rng = np.random.default_rng(21)
    a, b, ids = _clustered(rng)
    e = paired_mae_difference(a[0], b[0], groups=ids, n_resamples=N_RES, seed=2)
    means = paired_mae_difference(
        a[0].reshape(-1, 5).mean(axis=1), b[0].reshape(-1, 5).mean(axis=1), n_resamples=N_RES, seed=2
    )
    assert (e.estimate, e.ci_low, e.ci_high) == pytest.approx((means.estimate, means.ci_low, means.ci_high), rel=1e-9)
    assert e.n_images == 300 and e.n_groups == 60 and e.unit == "subjects" and "subjects" in e.method
    # correlated images: the image-unit interval is too narrow by about sqrt(1 + 4 rho) = 1.73 at rho 0.5
    images = paired_mae_difference(a[0], b[0], n_resamples=N_RES, seed=2)
    assert 1.3 < e.half_width / images.half_width < 2.3
    assert images.unit == "images"
    m = mean_ci(a, groups=ids, n_resamples=N_RES, group_unit="identities")
    assert m.unit == "identities" and m.n_groups == 60
    assert m.half_width > mean_ci(a, n_resamples=N_RES).half_width


def test_group_layouts_and_refusals():
    rng = np.random.default_rng(22)
    a0, b0, ids0 = _clustered(rng, subjects=20, seeds=3)
    a1, b1, ids1 = _clustered(rng, subjects=30, seeds=3)
    e = paired_mae_difference([a0, a1], [b0, b1], groups=[ids0, ids1 + 100], n_resamples=N_RES)
    assert (e.n_groups, e.n_folds, e.n_images, e.over) == (50, 2, 250, "subjects x seeds")
    named = paired_mae_difference(
        [a0, a1], [b0, b1], groups=[[f"s{i:02d}" for i in ids0], [f"t{i:02d}" for i in ids1]], n_resamples=N_RES
    )
    assert (named.ci_low, named.ci_high) == (e.ci_low, e.ci_high)  # ids are labels (in the same sorted order)
    assert paired_mae_difference(a0, b0, groups=[ids0], n_resamples=N_RES).n_groups == 20  # one fold, as a list
    with pytest.raises(ValueError, match=r"groups\[1\] has 150 ids for 100 images"):
        paired_mae_difference([a0, a1[:, :100]], [b0, b1[:, :100]], groups=[ids0, ids1])
    with pytest.raises(ValueError, match="has test images in folds 0 and 1"):
        paired_mae_difference([a0, a1], [b0, b1], groups=[ids0, ids1])  # ids restart per fold: same subjects?
    with pytest.raises(ValueError, match="single group"):
        paired_mae_difference(a0, b0, groups=np.zeros(100))
    with pytest.raises(ValueError, match="one id per test image"):
        paired_mae_difference([a0, a1], [b0, b1], groups=ids0)


# --- the seed part: t quantile, seeds crossed with folds ----------------------------------------------------------


def test_seed_part_uses_t_with_s_minus_1_df():
    # one fold, 3 seeds whose differences are 1, 2, 3 on every image: no image spread, per-seed means 1, 2, 3
    # (sd 1): half-width t_2 * 1 / sqrt(3) = 4.3027 * 0.57735 = 2.4841 (a normal quantile would give 1.1316)
    b = np.tile(np.linspace(5, 9, 40), (3, 1))
    e = paired_mae_difference(b + np.array([[1.0], [2.0], [3.0]]), b, n_resamples=N_RES)
    assert e.estimate == pytest.approx(2.0) and e.seed_sd == pytest.approx(1.0)
    assert (e.ci_low, e.ci_high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert "t on per-seed means, 2 df" in e.method


def test_seeds_are_one_unit_across_folds():
    # 2 folds x 2 seeds, differences constant over images: fold 0 seed 0 -> 1, seed 1 -> 2; fold 1 -> 3, 4.
    # Crossed (default): per-seed means 2 and 3, sd 0.7071, 1 df: 2.5 +- t_1 * 0.5 = 2.5 +- 6.3531.
    # Nested: pooled within-fold sd 0.7071, 2 df, sqrt(0.25 / 2 + 0.25 / 2) = 0.35355: 2.5 +- 4.3027 * 0.35355
    b = np.ones((2, 4))
    a = [b + np.array([[1.0], [2.0]]), b + np.array([[3.0], [4.0]])]
    crossed = paired_mae_difference(a, [b, b], n_resamples=N_RES)
    nested = paired_mae_difference(a, [b, b], n_resamples=N_RES, seeds_crossed=False)
    assert (crossed.ci_low, crossed.ci_high) == pytest.approx((2.5 - 6.353102, 2.5 + 6.353102), abs=1e-6)
    assert (nested.ci_low, nested.ci_high) == pytest.approx((2.5 - 1.521217, 2.5 + 1.521217), abs=1e-6)
    assert "crossed with folds" in crossed.method and "nested" in nested.method
    # seed shifts that cancel across folds leave no seed part when crossed
    flipped = paired_mae_difference([a[0], a[1][::-1]], [b, b], n_resamples=N_RES)
    assert flipped.half_width == pytest.approx(0, abs=1e-12)


def test_seed_x_image_noise_is_counted_once():
    # no seed effect and no stable per-image difference: only seeds x images noise (sd 2), which moves each seed's
    # mean (by 2 / sqrt(400) = 0.1) and stays, divided by S, in the seed-averaged image differences; the per-seed
    # means carry it into the seed part, so the CI takes it out of the image part instead of counting it twice
    rng = np.random.default_rng(23)
    b = np.tile(_abs_normal(rng, 400) + 10, (3, 1))
    for _ in range(5):
        a = b + rng.normal(0, 2, (3, 400))
        p, e = precision_plan(a, b), paired_mae_difference(a, b, n_resamples=N_RES)
        assert p.noise_part == pytest.approx(p.image_part, rel=0.15)  # all of the image part is that noise
        assert p.combined == pytest.approx(e.half_width, rel=0.05)
        assert e.half_width < math.hypot(p.image_part, p.seed_part)  # what counting it twice would give


# --- verdicts that do not depend on the bootstrap's seed -----------------------------------------------------------


def test_defaults_resample_9999_times_and_recommend_seeds():
    import inspect

    assert N_RESAMPLES == 9999 and DEFAULT_SEEDS == 5
    for f in (paired_mae_difference, mean_ci, stable_verdict):
        assert inspect.signature(f).parameters["n_resamples"].default == N_RESAMPLES


def test_verdict_of_several_effects_needs_agreement():
    sup, nr = _effect(-0.3, -0.1), _effect(-0.3, 0.05)
    assert verdict([sup, sup]) == "supported" and verdict((sup, nr)) == "not resolved"
    assert verdict([_effect(0.1, 0.2)] * 3) == "contradicted"
    with pytest.raises(ValueError, match="empty"):
        verdict([])


def test_stable_verdict_is_not_resolved_when_the_bootstrap_seed_decides():
    rng = np.random.default_rng(24)
    a, b, ids = _clustered(rng, subjects=40, shift=-0.6)
    highs = [paired_mae_difference(a, b, groups=ids, n_resamples=N_RES, seed=s).ci_high for s in (0, 1, 2)]
    assert max(highs) > min(highs)  # the upper end moves a little with the bootstrap's seed ...
    margin = -(max(highs) + min(highs)) / 2  # ... so a claim "A lower by more than margin" sits on the edge
    one = {
        verdict(paired_mae_difference(a, b, groups=ids, n_resamples=N_RES, seed=s), margin=margin) for s in (0, 1, 2)
    }
    assert len(one) == 2  # one bootstrap seed would have resolved it, another not
    assert stable_verdict(a, b, groups=ids, margin=margin, n_resamples=N_RES) == "not resolved"
    far = stable_verdict(a, b, groups=ids, better="higher", margin=5.0, n_resamples=N_RES)
    assert far == verdict(paired_mae_difference(a, b, groups=ids, n_resamples=N_RES), better="higher", margin=5.0)
    assert far == "contradicted"


def test_an_interval_whose_side_of_zero_depends_on_the_bootstrap_seed_is_reported_as_their_union():
    below, straddles, also_below = _effect(-0.5, -0.01), _effect(-0.49, 0.01), _effect(-0.52, -0.02)
    assert stable_of([below, also_below]) is below  # the same side: the first seed's interval, unchanged
    wide = stable_of([below, straddles, also_below])
    assert (wide.ci_low, wide.ci_high) == (-0.52, 0.01) and verdict(wide) == "not resolved"
    assert wide.estimate == below.estimate
    with pytest.raises(ValueError, match="no effects"):
        stable_of([])
    rng = np.random.default_rng(24)
    a, b, ids = _clustered(rng, subjects=40, shift=-0.6)
    d = stable_difference(a, b, groups=ids, n_resamples=N_RES)
    seeds = [paired_mae_difference(a, b, groups=ids, n_resamples=N_RES, seed=s) for s in (0, 1, 2)]
    expected = stable_of(seeds)
    assert (d.estimate, d.ci_low, d.ci_high, d.unit) == (
        expected.estimate,
        expected.ci_low,
        expected.ci_high,
        "subjects",
    )


def test_the_smallest_detectable_effect_is_about_1_43_half_widths_at_80_percent_power():
    e = _effect(-1.0, 1.0)  # half-width 1 at 95%: SE = 1 / 1.95996
    assert detectable_effect(e) == pytest.approx((1.959964 + 0.841621) / 1.959964, abs=1e-5)
    assert detectable_effect(e, power=0.5) == pytest.approx(1.0)  # half the time: the half-width itself
    assert detectable_effect(_effect(-0.5, 0.5)) == pytest.approx(detectable_effect(e) / 2)
    with pytest.raises(ValueError, match="power"):
        detectable_effect(e, power=1.0)


def test_required_test_size_and_precision_plan_with_subjects():
    # 4 subjects x 2 identical images, differences 1, 1, 0, 0, 1, 1, 0, 0: sd^2 = 2/7; variance of the mean with
    # images drawn 2/7/8 = 1/28, with subjects drawn 4/3 * (1 + 1 + 1 + 1) / 64 = 1/12: design effect 7/3;
    # n = (1.95996 * sqrt(2/7) / 0.1)^2 * 7/3 = 256.1 -> 257 (without ids: 109.8 -> 110)
    a, b, ids = np.array([1.0, 1, 0, 0, 1, 1, 0, 0]), np.zeros(8), [0, 0, 1, 1, 2, 2, 3, 3]
    assert required_test_size(a, b, 0.1, groups=ids) == 257 and required_test_size(a, b, 0.1) == 110
    p = precision_plan(a, b, 0.1, groups=ids)
    assert p.design_effect == pytest.approx(7 / 3) and p.n_groups == 4 and p.images_needed == 257
    assert p.image_part == pytest.approx(1.959963984540054 * math.sqrt(1 / 12))


def test_effects_built_by_hand_keep_working():
    e = Effect(-0.2, -0.3, -0.1, n_images=10, n_runs=3, n_folds=1, confidence=0.95, method="stored")
    assert (e.unit, e.n_groups, e.over) == ("images", 0, "images x seeds") and verdict(e) == "supported"
