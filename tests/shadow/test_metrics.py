"""shadow.metrics: the rolling parity ratio and the cached label children."""

from __future__ import annotations

import random
from collections import deque

from prometheus_client import CollectorRegistry

from shadow.metrics import RATIO_WINDOW, Metrics


def test_parity_ratio_is_the_share_of_matches_among_the_last_window_of_pairs() -> None:
    rng = random.Random(7)
    m = Metrics(CollectorRegistry())
    last: dict[str, deque[bool]] = {"health": deque(maxlen=RATIO_WINDOW), "status": deque(maxlen=RATIO_WINDOW)}
    every: deque[bool] = deque(maxlen=RATIO_WINDOW)
    for i in range(3 * RATIO_WINDOW + 17):
        route = "health" if rng.random() < 0.7 else "status"
        match = rng.random() < (0.9 if i < RATIO_WINDOW else 0.4)  # the ratio moves: old outcomes must leave
        m.pair(route, match)
        last[route].append(match)
        every.append(match)
        if i % 97 == 0 or i > 3 * RATIO_WINDOW:
            for r, w in last.items():
                if w:
                    assert m.value("parity_ratio", {"route": r}) == sum(w) / len(w)
            assert m.value("parity_ratio", {"route": "*"}) == sum(every) / len(every)
    counted = {r: m.value("parity_pairs_total", {"route": r, "outcome": "match"})
               + m.value("parity_pairs_total", {"route": r, "outcome": "mismatch"}) for r in last}
    assert sum(counted.values()) == 3 * RATIO_WINDOW + 17 and all(counted.values())


def test_counts_through_cached_children_land_on_the_right_series() -> None:
    m = Metrics(CollectorRegistry())
    for _ in range(3):
        m.drop("mirror", "full")
    m.drop("pair", "bytes")
    m.child(m.requests, "candidate", "http", "GET /healthz", "match").inc()
    m.child(m.requests, "candidate", "http", "GET /healthz", "match").inc()
    assert m.value("parity_dropped_total", {"stage": "mirror", "reason": "full"}) == 3
    assert m.value("parity_dropped_total", {"stage": "pair", "reason": "bytes"}) == 1
    assert m.value("parity_requests_total", {"leg": "candidate", "protocol": "http", "route": "GET /healthz",
                                             "outcome": "match"}) == 2
