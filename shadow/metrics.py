"""Every ``parity_*`` metric of the shadow proxy, built on an injected ``CollectorRegistry``.

Owns the metric names and label sets (dashboards and alert rules are built on exactly these). Updated by
``shadow.pipeline``, ``shadow.forward``, ``shadow.mirror`` and ``shadow.policy`` through :class:`Metrics`;
nothing else creates a collector. May import: stdlib, ``prometheus_client``.

Final list (labels are bounded: never ids or raw paths; ``route`` is a profile template/method or "other"):

- ``parity_requests_total{leg, protocol, route, outcome}`` counter. protocol: http|ws. outcome: match|mismatch|
  skipped|dropped|error|unpaired.
- ``parity_frames_total{leg, direction}`` counter. direction: c2s|s2c.
- ``parity_pairs_total{route, outcome}`` counter. outcome: match|mismatch.
- ``parity_latency_seconds{leg, protocol, route}`` histogram.
- ``parity_queue_depth{queue}`` gauge. queue: a pipeline stage name, or ``mirror_ws`` / ``mirror_bytes``.
- ``parity_dropped_total{stage, reason}`` counter. reason: full|bytes|rss|overload|deadline|closed|worker
  (stage ``remote``: the socket to the mirror process, see ``shadow.remote``).
- ``parity_candidate_errors_total{kind}`` / ``parity_legacy_errors_total{kind}`` counters. kind: connect|timeout|
  closed|protocol|http.
- ``parity_policy_decisions_total{route, decision}`` counter. decision: mirror|skip|record-only.
- ``parity_stage_errors_total{stage}`` counter.
- ``parity_ratio{route}`` gauge: rolling parity (matches / pairs over the last :data:`RATIO_WINDOW` pairs).
- ``parity_mode{mode}`` gauge, 1 for the current mode and 0 for the others.
- ``parity_client_connections{protocol}`` gauge: open client connections.
- ``parity_mirror_process_restarts_total`` counter: unexpected exits of the mirror process, each followed by a
  restart (alert when it keeps rising: the child is crash-looping and mirroring mostly drops).
- ``parity_proxy_rss_bytes`` gauge: resident set size of the proxy process, read on scrape (with
  ``limits.mirror_process``: the proxy's plus the mirror process's).

With ``limits.mirror_process`` the mirror process keeps its own :class:`Metrics`; the proxy serves both as one
exposition (:func:`merge_exposition`): samples with the same name and labels are added up.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

__all__ = ["RATIO_WINDOW", "Metrics", "merge_exposition", "rss_bytes"]

RATIO_WINDOW = 1000
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Window:
    """The last ``RATIO_WINDOW`` outcomes with a running match count (no sum over the window per pair)."""

    __slots__ = ("hits", "items")

    def __init__(self) -> None:
        self.items: deque[bool] = deque()
        self.hits = 0

    def add(self, match: bool) -> float:
        """Record one outcome; returns the window's match ratio."""
        items = self.items
        if len(items) == RATIO_WINDOW:
            self.hits -= items.popleft()
        items.append(match)
        self.hits += match
        return self.hits / len(items)


def rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class Metrics:
    """The proxy's collectors, registered on ``registry`` (a fresh one per proxy, so tests can build many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("parity_requests_total", "Requests and RPCs by leg, protocol, route and outcome",
                                ["leg", "protocol", "route", "outcome"], registry=r)
        self.frames = Counter("parity_frames_total", "WebSocket frames seen, by leg and direction",
                              ["leg", "direction"], registry=r)
        self.pairs = Counter("parity_pairs_total", "Compared pairs by route and outcome", ["route", "outcome"],
                             registry=r)
        self.latency = Histogram("parity_latency_seconds", "Exchange latency per leg", ["leg", "protocol", "route"],
                                 buckets=_BUCKETS, registry=r)
        self.queue_depth = Gauge("parity_queue_depth", "Items waiting per queue", ["queue"], registry=r)
        self.dropped = Counter("parity_dropped_total", "Work dropped instead of waiting", ["stage", "reason"],
                               registry=r)
        self.candidate_errors = Counter("parity_candidate_errors_total", "Candidate leg failures (findings)",
                                        ["kind"], registry=r)
        self.legacy_errors = Counter("parity_legacy_errors_total", "Legacy leg failures", ["kind"], registry=r)
        self.policy_decisions = Counter("parity_policy_decisions_total", "Side-effect policy decisions",
                                        ["route", "decision"], registry=r)
        self.stage_errors = Counter("parity_stage_errors_total", "Items a pipeline stage failed on", ["stage"],
                                    registry=r)
        self.ratio = Gauge("parity_ratio", "Rolling parity ratio (matches / pairs)", ["route"], registry=r)
        self.mode = Gauge("parity_mode", "1 for the current proxy mode", ["mode"], registry=r)
        self.client_connections = Gauge("parity_client_connections", "Open client connections", ["protocol"],
                                        registry=r)
        self.mirror_restarts = Counter("parity_mirror_process_restarts_total",
                                       "Mirror process (limits.mirror_process) exits the proxy restarted it after",
                                       registry=r)
        self.rss = Gauge("parity_proxy_rss_bytes", "Proxy resident set size", registry=r)
        self.rss.set_function(rss_bytes)
        self._windows: dict[str, _Window] = {}
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, kept: the hot paths count per request, and ``labels`` validates and locks
        on every call. Label values are bounded (see the module doc), so is this cache."""
        key = (id(metric), *values)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*values)
        return c

    # -- helpers used by the stages ------------------------------------------------------------------------
    def set_mode(self, mode: str, modes: tuple[str, ...]) -> None:
        for m in modes:
            self.mode.labels(mode=m).set(1 if m == mode else 0)

    def drop(self, stage: str, reason: str) -> None:
        self.child(self.dropped, stage, reason).inc()

    def leg_error(self, leg: str, kind: str) -> None:
        """One failure of leg ``leg`` (``"legacy"`` or ``"candidate"``, a ``Leg`` value): ``parity_legacy_errors_total``
        or ``parity_candidate_errors_total``."""
        self.child(self.legacy_errors if leg == "legacy" else self.candidate_errors, kind).inc()

    def pair(self, route: str, match: bool) -> None:
        outcome = "match" if match else "mismatch"
        self.child(self.pairs, route, outcome).inc()
        window = self._windows.get(route) or self._windows.setdefault(route, _Window())
        self.child(self.ratio, route).set(window.add(match))
        if route != "*":
            all_w = self._windows.get("*") or self._windows.setdefault("*", _Window())
            self.child(self.ratio, "*").set(all_w.add(match))

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current sample value (0.0 when absent) -- for tests and the admin summary."""
        v = self.registry.get_sample_value(name, labels or {})
        return 0.0 if v is None else v

    def total(self, name: str, **match: str) -> float:
        """Sum of every sample of ``name`` whose labels include ``match``."""
        out = 0.0
        for metric in self.registry.collect():
            for s in metric.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in match.items()):
                    out += s.value
        return out


class _Families:
    """A collector returning fixed metric families (the merged ones)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def merge_exposition(*texts: bytes, gauges: bool = True) -> bytes:
    """Prometheus text expositions of processes sharing the metric names, as one: same family, same sample
    name and labels -> values added up (``_created`` timestamps: the earliest). ``gauges=False`` keeps only
    counters, histograms and summaries (what an ended process leaves behind)."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], object]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text.decode("utf-8")):
            if not gauges and fam.type not in ("counter", "histogram", "summary") and not fam.name.endswith("_created"):
                continue  # (a counter's ``_created`` series is written as a gauge family of its own)
            into = merged.setdefault(fam.name, Metric(fam.name, fam.documentation, fam.type, fam.unit))
            samples = values.setdefault(fam.name, {})
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = samples.get(key)
                if old is None:
                    samples[key] = s
                elif s.name.endswith("_created"):
                    samples[key] = old._replace(value=min(old.value, s.value))  # type: ignore[attr-defined]
                else:
                    samples[key] = old._replace(value=old.value + s.value)  # type: ignore[attr-defined]
            del into.samples[:]
    for name, fam in merged.items():
        fam.samples.extend(values[name].values())  # type: ignore[arg-type]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(list(merged.values())))
    return generate_latest(registry)
