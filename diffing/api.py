"""The programmatic face of ``diffing``: what the shadow proxy, the gate and tests call.

Owns :func:`diff_observations` (observations of two legs -> pairs and results) and :func:`record` (results into
a store run), and re-exports the store, differ, timing and noise entry points. Pure except where it awaits the
store.

Typical use::

    store = await Store.open("sqlite:///parity.db")
    run = await store.start_run(name="nightly", source="replay")
    for pair, result in diff_observations(legacy_trace.observations, candidate_trace.observations, OPENCLAW):
        store.add_pair(run, result, legacy=pair.legacy, candidate=pair.candidate)
    await store.finish_run(run)
    stats = await store.route_stats(run)        # per method/route: pairs, matches after noise, latencies, ...
    await store.close()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from diffing.diff import Diff, DiffKind, PairResult, compare_exchanges, compare_pair, compare_pairs
from diffing.noise import NoiseCounter, is_real_difference, propose
from diffing.store import NoiseRuleRow, RouteStats, RunInfo, SignatureRow, Store, StoreError, signature_path
from diffing.timing import LatencyStats, latency_stats, ratio_ci
from wire.correlate import correlate
from wire.model import Exchange, Leg, Observation, Pair
from wire.pairing import pair_exchanges
from wire.profiles.base import Profile

__all__ = [
    "Diff",
    "DiffKind",
    "LatencyStats",
    "NoiseCounter",
    "NoiseRuleRow",
    "PairResult",
    "RouteStats",
    "RunInfo",
    "SignatureRow",
    "Store",
    "StoreError",
    "compare_exchanges",
    "compare_pair",
    "compare_pairs",
    "diff_observations",
    "is_real_difference",
    "latency_stats",
    "propose",
    "ratio_ci",
    "record",
    "signature_path",
]


def diff_observations(
    legacy: Iterable[Observation], candidate: Iterable[Observation], profile: Profile, *, scenario: str | None = None
) -> list[tuple[Pair, PairResult]]:
    """Correlate each leg, pair them, and compare every pair (plus per-connection monotonic checks).

    Observations' own ``leg`` fields are ignored: the first argument is the legacy side.
    """
    lx = correlate(legacy, profile)
    cx = correlate(candidate, profile)
    # correlate() keys connections by (leg, conn); stamp the leg the caller means.
    lx = [e if e.leg is Leg.LEGACY else _as_leg(e, Leg.LEGACY) for e in lx]
    cx = [e if e.leg is Leg.CANDIDATE else _as_leg(e, Leg.CANDIDATE) for e in cx]
    pairs = pair_exchanges(lx, cx, profile, scenario=scenario)
    results = list(compare_pairs(pairs, profile))
    out: list[tuple[Pair, PairResult]] = list(zip(pairs, results[: len(pairs)], strict=True))
    for extra in results[len(pairs) :]:  # monotonic findings: no exchanges of their own
        out.append(
            (
                Pair(
                    conn=extra.conn,
                    key=extra.key,
                    kind=extra.kind,
                    group=extra.group,
                    legacy=None,
                    candidate=None,
                    scenario=extra.scenario,
                ),
                extra,
            )
        )
    return out


def _as_leg(e: Exchange, leg: Leg) -> Exchange:
    return replace(e, leg=leg)


def record(store: Store, run_id: int, items: Iterable[tuple[Pair, PairResult]]) -> int:
    """Enqueue every (pair, result) into ``run_id``; returns how many. Await ``store.flush()`` after."""
    n = 0
    for pair, result in items:
        store.add_pair(run_id, result, legacy=pair.legacy, candidate=pair.candidate)
        n += 1
    return n
