"""The sentences of each notebook's "What this shows": computed from the notebook's own numbers, never typed.

A notebook's conclusion must not go stale when a re-run moves its numbers, so every verdict word here is read
from a 95% confidence interval (the same rule as :func:`cilf.stats.verdict`, docs/statistics.md):

* an effect (a paired difference A - B of MAEs, in years) *lowers* the MAE only when its whole CI lies below 0,
  *raises* it only when its whole CI lies above 0, and otherwise shows *no effect larger than X y*, X being the
  larger |CI end| rounded up (the largest effect the interval still allows);
* an effect whose estimate and both CI ends are exactly 0 *changes nothing*: A and B gave the same estimates;
* a rank correlation (e.g. Spearman of predicted against actual |error|) has *useful skill* only when its whole
  CI lies above ``useful`` (0.3 by default, the conventional lower bound of a moderate correlation).

Each function takes an estimate and its CI and returns one sentence; the notebooks print them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

USEFUL_RANK_CORRELATION = 0.3  # the lower end of a "moderate" correlation (Cohen 1988): below it, no useful ranking


def number(x: float, digits: int = 2, sign: bool = False) -> str:
    """``x`` rounded to ``digits`` decimals, never "-0.00"; ``sign``: a leading "+" for positive numbers."""
    r = round(float(x), digits) + 0.0
    return f"{r:+.{digits}f}" if sign and r != 0 else f"{r:.{digits}f}"


def ci_text(ci: Sequence[float], digits: int = 2) -> str:
    """``"[-0.19, 0.23]"``."""
    lo, hi = _check_ci(ci)
    return f"[{number(lo, digits)}, {number(hi, digits)}]"


def bound_up(x: float, digits: int = 2) -> str:
    """|x| rounded *up* to ``digits`` decimals (a bound must not be understated by rounding): 0.231 -> "0.24"."""
    scale = 10**digits
    return f"{math.ceil(abs(float(x)) * scale - 1e-9) / scale:.{digits}f}"


def _check_ci(ci: Sequence[float]) -> tuple[float, float]:
    if len(ci) != 2:
        raise ValueError(f"a CI is [low, high], got {ci!r}")
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"the CI {ci!r} is not finite: no sentence can be read from it")
    if lo > hi:
        raise ValueError(f"the CI {ci!r} has its ends swapped (low > high)")
    return lo, hi


def direction(ci: Sequence[float]) -> str:
    """ "below" (whole CI < 0), "above" (whole CI > 0), "zero" (the CI is exactly [0, 0]) or "contains 0"."""
    lo, hi = _check_ci(ci)
    if lo == 0 and hi == 0:
        return "zero"
    return "below" if hi < 0 else "above" if lo > 0 else "contains 0"


def effect_sentence(
    subject: str,
    estimate: float,
    ci: Sequence[float],
    *,
    measure: str = "the MAE",
    unit: str = "y",
    digits: int = 2,
    what: str = "the paired difference",
) -> str:
    """One sentence on what ``subject`` (the part switched on; the effect is MAE with it minus MAE without it)
    does to ``measure``, read from the 95% CI of the paired difference.

    >>> effect_sentence("The contrastive loss", 0.10, (0.02, 0.18))
    'The contrastive loss raises the MAE: +0.10 y [0.02, 0.18], the whole 95% CI of the paired difference above 0.'
    """
    lo, hi = _check_ci(ci)
    d = direction((lo, hi))
    shown = f"{number(estimate, digits, sign=True)} {unit} {ci_text((lo, hi), digits)}"
    if d == "zero" and estimate == 0:
        return (
            f"{subject} leaves {measure} exactly unchanged: {number(0, digits)} {unit} {ci_text((lo, hi), digits)}, "
            f"every image gets the same estimate with and without it."
        )
    if d == "below":
        return f"{subject} lowers {measure}: {shown}, the whole 95% CI of {what} below 0."
    if d == "above":
        return f"{subject} raises {measure}: {shown}, the whole 95% CI of {what} above 0."
    bound = bound_up(max(abs(lo), abs(hi)), digits)
    return (
        f"{subject} has no effect on {measure} larger than {bound} {unit} either way that this run can detect: "
        f"{shown}, the 95% CI of {what} contains 0."
    )


def comparison_sentence(
    a: str,
    b: str,
    estimate: float,
    ci: Sequence[float],
    *,
    unit: str = "y",
    digits: int = 2,
    where: str = "",
) -> str:
    """One sentence comparing two methods on the same test images from the CI of MAE(a) - MAE(b)
    (``where``, e.g. "At 3 training subjects", opens the sentence).

    >>> comparison_sentence("full", "zero-shot", -0.5, (-1.0, -0.03), where="At 192 subjects")
    'At 192 subjects, full errs less than zero-shot: -0.50 y [-1.00, -0.03], the whole 95% CI below 0.'
    """
    lo, hi = _check_ci(ci)
    d = direction((lo, hi))
    lead = f"{where}, " if where else ""
    shown = f"{number(estimate, digits, sign=True)} {unit} {ci_text((lo, hi), digits)}"
    if d == "zero" and estimate == 0:
        return f"{lead}{a} and {b} give identical estimates on every test image: there is no difference to discuss."
    if d == "below":
        return f"{lead}{a} errs less than {b}: {shown}, the whole 95% CI below 0."
    if d == "above":
        return f"{lead}{a} errs more than {b}: {shown}, the whole 95% CI above 0."
    bound = bound_up(max(abs(lo), abs(hi)), digits)
    return f"{lead}{a} and {b} differ by no more than {bound} {unit} either way: {shown}, the 95% CI contains 0."


def rank_skill_sentence(
    subject: str,
    target: str,
    rho: float,
    ci: Sequence[float],
    *,
    useful: float = USEFUL_RANK_CORRELATION,
    digits: int = 2,
) -> str:
    """Does ``subject`` rank the images by ``target``? Read from a rank correlation ``rho`` and its 95% CI:
    useful skill only when the whole CI lies above ``useful``.

    >>> rank_skill_sentence("E's predicted |e(y0)|", "the actual |y0 - y|", 0.06, (-0.01, 0.13))
    "E's predicted |e(y0)| has no useful skill at ranking the images by the actual |y0 - y|: Spearman 0.06 [-0.01, 0.13], no better than chance (the 95% CI contains 0) and below 0.3 throughout."
    """
    lo, hi = _check_ci(ci)
    if not 0 < useful < 1:
        raise ValueError(f"useful={useful}: a correlation between 0 and 1")
    shown = f"Spearman {number(rho, digits)} {ci_text((lo, hi), digits)}"
    u = number(useful, 1)
    if hi < 0:
        return f"{subject} ranks the images backwards by {target}: {shown}, the whole 95% CI below 0."
    if lo >= useful:
        return f"{subject} has useful skill at ranking the images by {target}: {shown}, the whole 95% CI above {u}."
    if hi < useful:
        chance = (
            "no better than chance (the 95% CI contains 0)"
            if lo <= 0
            else "better than chance (the whole 95% CI above 0) but weakly"
        )
        return (
            f"{subject} has no useful skill at ranking the images by {target}: {shown}, {chance} "
            f"and below {u} throughout."
        )
    return (
        f"Whether {subject} has useful skill at ranking the images by {target} is not resolved: {shown}, "
        f"the 95% CI straddles {u}."
    )


def gate_sentence(applied: Sequence[bool], estimate: float, ci: Sequence[float], digits: int = 2) -> str:
    """Why the correction's effect is what it is, from the held-out gate's decision in every run (``applied``:
    one bool per run, False where the gate switched the correction off) and the effect's CI."""
    runs, off = len(applied), sum(not a for a in applied)
    if runs == 0:
        raise ValueError("no runs: the gate's decisions were not recorded")
    effect = f"{number(estimate, digits)} y {ci_text(ci, digits)}"
    if off == runs:
        exact = direction(ci) == "zero" and estimate == 0
        return (
            f"The held-out gate switched the correction off in all {runs} runs (it raised the MAE of the held-out "
            f"fold of the training split), so x* = y0 for every test image and the effect is "
            f"{'exactly ' if exact else ''}{effect}: this run does not test the correction at all."
        )
    if off == 0:
        return f"The held-out gate left the correction on in all {runs} runs; its effect is {effect}."
    return (
        f"The held-out gate switched the correction off in {off} of {runs} runs (x* = y0 there), so the effect "
        f"{effect} averages {runs - off} corrected run(s) with {off} unchanged one(s)."
    )


def coincide(a, b, atol: float = 0.0) -> bool:
    """Whether two sets of predictions (nested sequences or arrays of one shape) agree everywhere to ``atol``
    years (NaN, no prediction, matching NaN): two such rows of a table are one result, not a comparison."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        return False
    both_nan = np.isnan(x) & np.isnan(y)
    return bool(np.all(both_nan | (np.abs(x - y) <= atol)))
