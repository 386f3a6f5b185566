"""Latency statistics: per-leg percentiles and the paired candidate/legacy latency ratio with a bootstrap CI.

Owns :func:`percentile`, :func:`leg_percentiles`, :func:`ratio_ci` and :class:`LatencyStats`. Pure and
stdlib-only: the bootstrap draws from a seeded ``random.Random`` so the same inputs give the same interval.

The gate uses the CI's upper bound: "the candidate is at most X times slower" holds only if even the
pessimistic end of the interval is under X. Pairs are compared as ratios per request (paired design), which
cancels the per-request cost differences that dominate unpaired comparisons.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["LatencyStats", "latency_stats", "leg_percentiles", "percentile", "ratio_ci"]


_BOOTSTRAP_BUDGET = 2_000_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks; ``None`` when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def leg_percentiles(values: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """(p50, p95, p99)."""
    return percentile(values, 50), percentile(values, 95), percentile(values, 99)


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    n = len(xs)
    mid = n // 2
    return xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2


def ratio_ci(
    pairs: Sequence[tuple[float, float]], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, tuple[float, float]] | None:
    """Median of candidate/legacy latency ratios and its percentile-bootstrap confidence interval.

    Args:
        pairs: (legacy seconds, candidate seconds); pairs with a non-positive legacy latency are ignored.
        resamples: bootstrap resamples.
        confidence: two-sided level of the interval.
        seed: seeds ``random.Random`` (deterministic).

    Returns:
        ``(median, (low, high))``, or ``None`` when no usable pair exists.
    """
    ratios = [c / leg for leg, c in pairs if leg > 0 and c >= 0]
    if not ratios:
        return None
    point = _median(ratios)
    n = len(ratios)
    if n * resamples > _BOOTSTRAP_BUDGET:
        # Large samples: the distribution-free order-statistic interval for the median (normal approximation
        # of the binomial), which the bootstrap converges to anyway, at O(n log n) instead of O(n * resamples).
        xs = sorted(ratios)
        z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
        half = z * math.sqrt(n) / 2
        lo_rank = max(0, int(math.floor(n / 2 - half)))
        hi_rank = min(n - 1, int(math.ceil(n / 2 + half)))
        return point, (xs[lo_rank], xs[hi_rank])
    rng = random.Random(seed)
    meds = sorted(_median([ratios[rng.randrange(n)] for _ in range(n)]) for _ in range(resamples))
    alpha = (1 - confidence) / 2
    low = meds[max(0, int(math.floor(alpha * resamples)))]
    high = meds[min(resamples - 1, int(math.ceil((1 - alpha) * resamples)) - 1)]
    return point, (low, high)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Latency figures for one method/route: per leg p50/p95/p99 (seconds) and the paired ratio."""

    samples: int
    legacy: tuple[float | None, float | None, float | None]
    candidate: tuple[float | None, float | None, float | None]
    ratio: float | None
    ratio_ci: tuple[float, float] | None


def latency_stats(
    legacy: Sequence[float], candidate: Sequence[float], paired: Sequence[tuple[float, float]], *, seed: int = 0
) -> LatencyStats:
    """All latency figures for one group (``paired`` holds pairs where both legs answered)."""
    r = ratio_ci(paired, seed=seed)
    return LatencyStats(
        samples=len(paired),
        legacy=leg_percentiles(legacy),
        candidate=leg_percentiles(candidate),
        ratio=r[0] if r else None,
        ratio_ci=r[1] if r else None,
    )
