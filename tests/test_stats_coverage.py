"""Do cilf.stats' 95% intervals cover the truth 95% of the time on benchmarks built like the real ones?

Each test simulates R = 400 benchmarks with a known true effect: test subjects with 5 images each whose
differences are correlated within the subject (rho 0.4, skewed subject effects, Laplace image noise), training
seeds crossed with folds (a per-seed shift of the paired difference shared by every fold) and per-image seed noise.
It counts how often the interval contains the truth and reads the count with a one-sided exact (Clopper-Pearson)
99% bound: an interval "keeps its coverage" when the upper bound reaches 93% (with 400 replicates a true 95% gives
an upper bound near 97%, a true 85% one near 89%, so the two are told apart), and "fails" when even the upper bound
stays below 93%. Inside the simulation the bootstrap uses 999 resamples (reported numbers use 9999): the Monte
Carlo error of an interval end averages out over replicates and barely moves the coverage.

``python tests/test_stats_coverage.py [replicates]`` prints the coverages (and mean half-widths) of these
scenarios with more replicates; docs/statistics.md quotes them.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as st

from cilf.stats import DEFAULT_SEEDS, mean_ci, paired_mae_difference, verdict

R = 400  # replicates per scenario
N_RES = 999  # bootstrap resamples inside the simulation


def paired_benchmark(
    rng, *, folds=3, seeds=3, subjects=40, per_subject=5, sd=2.0, rho=0.4, seed_sd=0.0, noise_sd=1.0, truth=-0.2
):
    """Absolute errors of A and B as lists of per-fold (seeds, images) arrays, per-fold subject ids, and the true
    expected difference. A - B = truth + seed shift (shared by all folds) + subject effect (sd sqrt(rho) * sd,
    skewed) + image effect (sd sqrt(1 - rho) * sd, Laplace) + seed x image noise (sd noise_sd)."""
    shift = rng.normal(0, seed_sd, seeds)
    err_a, err_b, ids = [], [], []
    n = subjects * per_subject
    for f in range(folds):
        subject = np.sqrt(rho) * sd * (rng.gamma(2.0, 1.0, subjects) - 2.0) / np.sqrt(2.0)
        image = np.sqrt(1 - rho) * sd * rng.laplace(0, 1 / np.sqrt(2), n)
        d = truth + shift[:, None] + np.repeat(subject, per_subject) + image + rng.normal(0, noise_sd, (seeds, n))
        b = np.tile(30 + np.abs(rng.normal(0, 5, n)), (seeds, 1))  # image difficulty, shared by A and B
        err_a.append(b + d)
        err_b.append(b)
        ids.append(np.repeat(np.arange(subjects) + 1000 * f, per_subject))
    return err_a, err_b, ids, truth


def mae_benchmark(rng, *, folds=3, seeds=3, subjects=40, per_subject=5, seed_sd=0.0, noise_sd=0.3):
    """One method's absolute errors (list of per-fold (seeds, images)), subject ids, and the true MAE.
    error = exp(seed shift) * (subject difficulty + image difficulty) * exp(seed x image noise), gamma-distributed
    difficulties with means 2 and 2 (within-subject correlation of the errors about 0.3); true MAE 4 exp(sd^2 / 2)."""
    shift = rng.normal(0, seed_sd, seeds)
    out, ids = [], []
    n = subjects * per_subject
    for f in range(folds):
        subject = np.repeat(rng.gamma(1.5, 2.0 / 1.5, subjects), per_subject)
        image = rng.gamma(1.0, 2.0, n)
        noise = np.exp(rng.normal(-(noise_sd**2) / 2, noise_sd, (seeds, n)))
        out.append(np.exp(shift)[:, None] * (subject + image)[None, :] * noise)
        ids.append(np.repeat(np.arange(subjects) + 1000 * f, per_subject))
    return out, ids, 4.0 * np.exp(seed_sd**2 / 2)


def upper(hits: int, n: int, level: float = 0.99) -> float:
    """One-sided exact upper confidence bound for a binomial proportion."""
    return 1.0 if hits == n else float(st.beta.ppf(level, hits + 1, n - hits))


def lower(hits: int, n: int, level: float = 0.99) -> float:
    """One-sided exact lower confidence bound for a binomial proportion."""
    return 0.0 if hits == 0 else float(st.beta.ppf(1 - level, hits, n - hits + 1))


def coverage(draw, intervals: dict, reps: int = R, seed: int = 0) -> dict[str, tuple[int, float]]:
    """Per named interval: (replicates covering the truth, mean half-width). ``draw(rng)`` -> (data, ids, truth);
    ``intervals[name](data, ids, bootstrap_seed)`` -> Effect."""
    rng = np.random.default_rng(seed)
    hits, width = dict.fromkeys(intervals, 0), dict.fromkeys(intervals, 0.0)
    for r in range(reps):
        data, ids, truth = draw(rng)
        for name, ci in intervals.items():
            e = ci(data, ids, r)
            hits[name] += e.ci_low <= truth <= e.ci_high
            width[name] += e.half_width / reps
    return {k: (hits[k], width[k]) for k in intervals}


def _paired(**kw):
    return {
        name: (lambda d, ids, r, k=k: paired_mae_difference(*d, n_resamples=N_RES, seed=r, **k(ids)))
        for name, k in kw.items()
    }


def _draw_paired(**scenario):
    def draw(rng):
        a, b, ids, truth = paired_benchmark(rng, **scenario)
        return (a, b), ids, truth

    return draw


def _mean(**kw):
    return {name: (lambda v, ids, r, k=k: mean_ci(v, n_resamples=N_RES, seed=r, **k(ids))) for name, k in kw.items()}


IMAGES = dict(folds=1, seeds=1, subjects=100)  # one split, one run: all of the width comes from the test subjects
SEEDS = dict(seed_sd=0.69)  # 3 folds x 40 subjects x 5 images, 3 seeds: the seeds give 3x the image part's width


def _keeps(hits: int) -> bool:
    return upper(hits, R) >= 0.93 and hits / R <= 0.99


def _fails(hits: int) -> bool:
    return upper(hits, R) < 0.93


def test_paired_interval_over_subjects_keeps_95_where_images_alone_do_not():
    res = coverage(_draw_paired(**IMAGES), _paired(subjects=lambda ids: {"groups": ids}, images=lambda ids: {}))
    assert _keeps(res["subjects"][0]), res
    assert _fails(res["images"][0]), res  # images read as independent: too narrow by about sqrt(1 + 4 rho)


def test_paired_interval_with_three_seeds_crossed_with_folds_keeps_95():
    res = coverage(
        _draw_paired(**SEEDS),
        _paired(crossed=lambda ids: {"groups": ids}, nested=lambda ids: {"groups": ids, "seeds_crossed": False}),
    )
    assert _keeps(res["crossed"][0]), res
    assert _fails(res["nested"][0]), res  # each fold's seeds read as new ones: the shared seed shift is missed


def test_mean_ci_over_subjects_and_seeds_keeps_95():
    def draw(scenario):
        return lambda rng: mae_benchmark(rng, **scenario)

    one = coverage(draw(IMAGES), _mean(subjects=lambda ids: {"groups": ids}, images=lambda ids: {}))
    assert _keeps(one["subjects"][0]), one
    assert _fails(one["images"][0]), one
    seeds = coverage(draw(dict(seed_sd=0.08)), _mean(subjects=lambda ids: {"groups": ids}), seed=1)
    assert _keeps(seeds["subjects"][0]), seeds


EQUIVALENCE = dict(seeds=DEFAULT_SEEDS, sd=1.2, seed_sd=0.1)  # 3 folds x 40 subjects x 5 images, 5 seeds
MARGIN = 0.3


def _equivalent(
    truth: float, reps: int = R, units: tuple[str, ...] = ("subjects", "images"), scenario: dict = EQUIVALENCE
) -> dict[str, int]:
    """How often "A matches B within MARGIN" is declared ("supported") when the true difference is ``truth``."""
    rng = np.random.default_rng(2)
    declared = dict.fromkeys(units, 0)
    for r in range(reps):
        a, b, ids, _ = paired_benchmark(rng, truth=truth, **scenario)
        for name in units:
            e = paired_mae_difference(a, b, groups=ids if name == "subjects" else None, n_resamples=N_RES, seed=r)
            declared[name] += verdict(e, better="equivalent", margin=MARGIN) == "supported"
    return declared


def test_equivalence_at_the_margin_is_rarely_declared():
    at_margin = _equivalent(MARGIN)
    # a 95% two-sided interval declares a difference that sits on the margin equivalent about 2.5% of the time;
    # the rate must not be significantly above 5%
    assert lower(at_margin["subjects"], R) <= 0.05, at_margin
    assert at_margin["images"] > at_margin["subjects"], at_margin  # the image-unit interval declares it more often
    # and the test has power: with no true difference equivalence is declared often
    assert _equivalent(0.0, reps=100, units=("subjects",))["subjects"] >= 50


def test_the_image_only_interval_declares_a_false_equivalence_too_often():
    # images of one subject more alike (rho 0.6) and little seed noise: read as independent images, the interval is
    # too narrow by about sqrt(1 + 4 rho), and "matches within the margin" is declared for a difference that sits
    # on the margin significantly more often than 5%; over subjects it stays below
    clustered = dict(seeds=DEFAULT_SEEDS, sd=1.2, seed_sd=0.02, rho=0.6)
    at_margin = _equivalent(MARGIN, scenario=clustered)
    assert lower(at_margin["images"], R) > 0.05, at_margin
    assert lower(at_margin["subjects"], R) <= 0.05, at_margin


if __name__ == "__main__":
    import sys
    import time

    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    scenarios = {
        "paired, 1 fold, 1 seed, 100 subjects x 5 (rho 0.4)": (
            _draw_paired(**IMAGES),
            _paired(subjects=lambda ids: {"groups": ids}, images=lambda ids: {}),
        ),
        "paired, 3 folds x 40 subjects x 5, 3 seeds, seed part 3x image part": (
            _draw_paired(**SEEDS),
            _paired(
                crossed=lambda ids: {"groups": ids},
                nested=lambda ids: {"groups": ids, "seeds_crossed": False},
                images=lambda ids: {},
            ),
        ),
        "paired, same, seed part ~ image part": (
            _draw_paired(seed_sd=0.23),
            _paired(crossed=lambda ids: {"groups": ids}, images=lambda ids: {}),
        ),
        "MAE, 1 fold, 1 seed, 100 subjects x 5": (
            lambda rng: mae_benchmark(rng, **IMAGES),
            _mean(subjects=lambda ids: {"groups": ids}, images=lambda ids: {}),
        ),
        "MAE, 3 folds x 40 subjects x 5, 3 seeds, seed sd 8%": (
            lambda rng: mae_benchmark(rng, seed_sd=0.08),
            _mean(subjects=lambda ids: {"groups": ids}, images=lambda ids: {}),
        ),
    }
    for title, (draw, intervals) in scenarios.items():
        t0 = time.time()
        res = coverage(draw, intervals, reps)
        print(f"{title} ({reps} replicates, {time.time() - t0:.0f} s)")
        for name, (hits, width) in res.items():
            print(f"    {name:10s} coverage {100 * hits / reps:5.1f}%  mean half-width {width:.3f}")
    eq = _equivalent(MARGIN, reps)
    print(
        f"equivalence declared at the margin ({reps} replicates): "
        + ", ".join(f"{k} {100 * v / reps:.1f}%" for k, v in eq.items())
    )
