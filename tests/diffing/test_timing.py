"""diffing.timing: percentiles, the paired ratio and its seeded bootstrap interval."""

from __future__ import annotations

import random

import pytest

from diffing.timing import latency_stats, leg_percentiles, percentile, ratio_ci


def test_percentiles() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == 50.5 and percentile(xs, 0) == 1 and percentile(xs, 100) == 100
    assert percentile(xs, 99) == pytest.approx(99.01)
    assert percentile([], 50) is None and leg_percentiles([]) == (None, None, None)
    with pytest.raises(ValueError):
        percentile(xs, 101)


def test_ratio_ci_is_deterministic_and_brackets_the_median() -> None:
    rng = random.Random(1)
    pairs = [(x, x * rng.uniform(1.1, 1.3)) for x in (rng.uniform(0.001, 0.01) for _ in range(300))]
    a = ratio_ci(pairs, seed=7)
    assert a == ratio_ci(pairs, seed=7)
    assert a is not None
    point, (low, high) = a
    assert 1.1 < low <= point <= high < 1.3
    assert ratio_ci([(0.0, 1.0)]) is None and ratio_ci([]) is None


def test_ratio_ci_detects_a_slower_candidate_and_an_equal_one() -> None:
    rng = random.Random(2)
    equal = [(x, x * rng.uniform(0.95, 1.05)) for x in (rng.uniform(0.001, 0.01) for _ in range(200))]
    slow = [(x, 2 * y) for x, y in equal]
    eq = ratio_ci(equal)
    sl = ratio_ci(slow)
    assert eq is not None and sl is not None
    assert eq[1][0] < 1.0 < eq[1][1]
    assert sl[1][0] > 1.8


def test_large_samples_use_the_order_statistic_interval() -> None:
    pairs = [(1.0, 1.0 + (i % 100) / 1000) for i in range(50_000)]
    r = ratio_ci(pairs)
    assert r is not None and r[1][0] <= r[0] <= r[1][1] and r[1][1] - r[1][0] < 0.01


def test_latency_stats() -> None:
    s = latency_stats([0.01, 0.02], [0.02, 0.04], [(0.01, 0.02), (0.02, 0.04)])
    assert s.samples == 2 and s.ratio == 2.0 and s.legacy[0] == 0.015
    empty = latency_stats([], [], [])
    assert empty.ratio is None and empty.ratio_ci is None
