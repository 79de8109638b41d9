"""The sentences of "What this shows" (cilf.notebook.conclude): each verdict word follows from the CI alone."""

import math

import numpy as np
import pytest

from cilf.notebook import conclude
from cilf.notebook.conclude import (
    bound_up,
    ci_text,
    coincide,
    comparison_sentence,
    direction,
    effect_sentence,
    gate_sentence,
    number,
    rank_skill_sentence,
)


def test_numbers_never_print_minus_zero_and_bounds_round_up():
    assert number(-0.0001) == "0.00" and number(-0.004, sign=True) == "0.00"
    assert number(0.1, sign=True) == "+0.10" and number(-0.126) == "-0.13" and number(2) == "2.00"
    assert ci_text((-0.19, 0.234)) == "[-0.19, 0.23]"
    assert bound_up(0.231) == "0.24" and bound_up(-0.19) == "0.19" and bound_up(0.0001) == "0.01"
    assert bound_up(0.23) == "0.23"  # exact values are not pushed up by float noise


def test_effect_lowers_only_when_the_whole_ci_is_below_zero():
    s = effect_sentence("The prior", -0.3, (-0.5, -0.1))
    assert s.startswith("The prior lowers the MAE: -0.30 y [-0.50, -0.10]") and "below 0" in s
    # an upper end of exactly 0 is not "below 0": the CI contains 0
    s = effect_sentence("The prior", -0.3, (-0.6, 0.0))
    assert "lowers" not in s and "no effect on the MAE larger than 0.60 y" in s and "contains 0" in s


def test_effect_raises_only_when_the_whole_ci_is_above_zero():
    s = effect_sentence("The contrastive loss", 0.10, (0.02, 0.18))
    assert s.startswith("The contrastive loss raises the MAE: +0.10 y [0.02, 0.18]")
    s = effect_sentence("The contrastive loss", 0.10, (0.0, 0.18))
    assert "raises" not in s and "larger than 0.18 y" in s


def test_no_effect_names_the_larger_ci_end_as_the_bound():
    s = effect_sentence("Context prompting", -0.07, (-0.20, 0.19))
    assert "no effect on the MAE larger than 0.20 y either way" in s and "-0.07 y [-0.20, 0.19]" in s
    s = effect_sentence("Context prompting", 0.01, (-0.05, 0.231))
    assert "larger than 0.24 y" in s  # rounded up, never understated


def test_an_exactly_zero_effect_says_nothing_changed():
    s = effect_sentence("The correction", 0.0, (0.0, 0.0))
    assert "exactly unchanged" in s and "0.00 y [0.00, 0.00]" in s and "no effect" not in s
    # a tiny but nonzero interval is not "exactly unchanged"
    s = effect_sentence("The correction", 0.0001, (-0.0004, 0.0006))
    assert "exactly" not in s and "larger than 0.01 y" in s


def test_bad_intervals_are_refused():
    for ci in ((0.2, 0.1), (float("nan"), 0.1), (0.0, math.inf), (0.1,)):
        with pytest.raises(ValueError):
            effect_sentence("x", 0.0, ci)


def test_direction_agrees_with_the_verdict_of_cilf_stats():
    from cilf.stats import Effect, verdict

    rng = np.random.default_rng(0)
    for _ in range(200):
        lo, hi = sorted(rng.choice([-0.3, -0.1, 0.0, 0.1, 0.3], 2))
        e = Effect(
            estimate=(lo + hi) / 2, ci_low=lo, ci_high=hi, n_images=1, n_runs=1, n_folds=1, confidence=0.95, method=""
        )
        v = verdict(e, better="lower")
        d = direction((lo, hi))
        assert (d == "below") == (v == "supported") and (d == "above") == (v == "contradicted"), (lo, hi, d, v)


def test_comparison_sentences():
    assert "full errs less than zero-shot: -0.53 y [-1.02, -0.03]" in comparison_sentence(
        "full", "zero-shot", -0.53, (-1.02, -0.03)
    )
    s = comparison_sentence("full", "no prior", 0.54, (0.2, 0.9), where="At 3 training subjects")
    assert s.startswith("At 3 training subjects, full errs more than no prior: +0.54 y")
    assert "differ by no more than 0.08 y" in comparison_sentence("a", "b", 0.03, (-0.02, 0.08))
    assert "identical estimates" in comparison_sentence("full", "no correction", 0.0, (0.0, 0.0))


def test_rank_skill_needs_the_whole_ci_above_the_useful_level():
    s = rank_skill_sentence("E", "the actual error", 0.06, (-0.01, 0.13))
    assert "no useful skill" in s and "no better than chance" in s
    s = rank_skill_sentence("E", "the actual error", 0.06, (0.01, 0.13))
    assert "no useful skill" in s and "better than chance" in s and "no better" not in s
    assert "has useful skill" in rank_skill_sentence("E", "x", 0.5, (0.35, 0.6))
    assert "not resolved" in rank_skill_sentence("E", "x", 0.3, (0.2, 0.4))
    assert "backwards" in rank_skill_sentence("E", "x", -0.3, (-0.4, -0.2))
    with pytest.raises(ValueError):
        rank_skill_sentence("E", "x", 0.3, (0.2, 0.4), useful=1.5)


def test_gate_sentence_reads_the_decisions_of_every_run():
    s = gate_sentence([False] * 6, 0.0, (0.0, 0.0))
    assert "off in all 6 runs" in s and "exactly 0.00 y [0.00, 0.00]" in s and "does not test the correction" in s
    s = gate_sentence([True, True], -0.01, (-0.04, 0.0))
    assert "on in all 2 runs" in s and "-0.01 y [-0.04, 0.00]" in s
    s = gate_sentence([True, False, False], -0.01, (-0.03, 0.01))
    assert "off in 2 of 3 runs" in s and "1 corrected run(s)" in s
    with pytest.raises(ValueError):
        gate_sentence([], 0.0, (0.0, 0.0))


def test_coincide_finds_identical_rows_only():
    a = [[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]]
    assert coincide(a, [[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]])
    assert not coincide(a, [[1.0, 2.0, np.nan], [3.0, 4.0, 5.001]])
    assert coincide(a, [[1.0, 2.0, np.nan], [3.0, 4.0, 5.001]], atol=0.01)
    assert not coincide(a, [[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]])  # a prediction against none
    assert not coincide([1.0, 2.0], [1.0, 2.0, 3.0])


def test_the_docstring_examples_hold():
    import doctest

    assert doctest.testmod(conclude).failed == 0
