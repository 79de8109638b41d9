"""Metrics against hand-computed values."""

import pytest

from cilf import metrics


def test_metrics_against_hand_computed_values():
    t = [20, 30, 40, 50]
    p = [21, 35, 40, 61]  # abs errors 1, 5, 0, 11
    assert metrics.mae(t, p) == pytest.approx(17 / 4)
    assert metrics.cumulative_score(t, p, 0) == pytest.approx(25.0)
    assert metrics.cumulative_score(t, p, 1) == pytest.approx(50.0)
    assert metrics.cumulative_score(t, p, 5) == pytest.approx(75.0)
    curve = metrics.cs_curve(t, p)
    assert list(curve) == list(range(11)) and curve[10] == pytest.approx(75.0)
    assert metrics.group_accuracy([0, 3, 5, 7], [0, 4, 2, 7]) == (50.0, 75.0)
    assert metrics.age_group(1) == 0 and metrics.age_group(35) == 4 and metrics.age_group(90) == 7
    import math

    assert metrics.epsilon_error([10, 20], [10, 22], [1, 2]) == pytest.approx((1 - math.exp(-0.5)) / 2)
    assert metrics.mean_std([1.0, 2.0, 3.0]) == (2.0, pytest.approx(1.0))
    with pytest.raises(ValueError):
        metrics.mae([1, 2], [1])
