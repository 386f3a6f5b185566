"""Side-effect policy: for each WS method and HTTP route, mirror it to the secondary leg, skip it, or record it only.

Owns :class:`Policy`: the decision per client request and its counting in
``parity_policy_decisions_total{route, decision}``. The tables are the profile's (``wire.profiles.openclaw``:
``write_policies``, ``route_template``), so the proxy and the replayer agree; this module adds only

- config overrides (``[policy]``): exact method / route template first, then the longest ``prefix*`` pattern;
- the dry-run switch: a side-effecting call (``skip`` or ``compare-ack-only`` in the profile) is mirrored when
  the candidate declares a dry-run mode for outbound delivery (``dry_run = true``).

Decisions: ``mirror`` (sent to the secondary leg and compared), ``skip`` (never sent), ``record-only`` (never
sent; always written to the trace whatever the sampling rate, for replay against a sandbox later).
Route labels are bounded: the profile's templates, known method names, or ``other``.
May import: stdlib, ``wire``, ``shadow.metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from shadow.metrics import Metrics
from wire.frames import parse_frame
from wire.model import Req
from wire.profiles.base import Profile, WritePolicy
from wire.profiles.openclaw import get_profile

logger = logging.getLogger(__name__)

__all__ = ["MIRROR", "RECORD_ONLY", "SKIP", "Policy"]

MIRROR, SKIP, RECORD_ONLY = "mirror", "skip", "record-only"
#: client text frames larger than this are not parsed: they mirror under route ``other``
PARSE_LIMIT = 1024 * 1024


class Policy:
    """Decides and counts what reaches the secondary leg.

    Args:
        overrides: method, route template (``POST /hooks/wake``) or ``prefix*`` -> mirror | skip | record-only.
        dry_run: the candidate suppresses outbound delivery, so side-effecting calls may mirror.
        metrics: where decisions are counted.
        profile: the protocol profile (default ``openclaw``).
    """

    def __init__(self, overrides: Mapping[str, str] | None = None, *, dry_run: bool = False,
                 metrics: Metrics | None = None, profile: Profile | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.dry_run = dry_run
        self.metrics = metrics
        self.profile = profile if profile is not None else get_profile("openclaw")
        self._cache: dict[str, str] = {}

    def _override(self, key: str) -> str | None:
        if key in self.overrides:
            return self.overrides[key]
        best: tuple[int, str] | None = None
        for pattern, decision in self.overrides.items():
            if pattern.endswith("*") and key.startswith(pattern[:-1]) and (best is None or len(pattern) > best[0]):
                best = (len(pattern), decision)
        return best[1] if best else None

    def _decide(self, name: str) -> str:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        decision = self._override(name)
        if decision is None:
            wp = self.profile.write_policy(name)
            if wp is WritePolicy.MIRROR:
                decision = MIRROR
            elif wp is WritePolicy.RECORD_ONLY:
                decision = RECORD_ONLY
            else:  # SKIP, COMPARE_ACK_ONLY: only a dry-run candidate may see them
                decision = MIRROR if self.dry_run else SKIP
        if len(self._cache) < 4096:
            self._cache[name] = decision
        return decision

    def side_effecting(self, method_or_route: str) -> bool:
        """True unless the profile says the call only reads (used by write-ahead recording)."""
        return self.profile.write_policy(method_or_route) is not WritePolicy.MIRROR

    def ws_route(self, method: str | None) -> str:
        return self.profile.method_label(method) if method else "other"

    def ws(self, method: str | None) -> tuple[str, str]:
        """(decision, route) for one client WS frame; counted. Frames without a method mirror (protocol probes)."""
        route = self.ws_route(method)
        decision = self._decide(method) if method else MIRROR
        self._count(route, decision)
        return decision, route

    def ws_text(self, text: str) -> tuple[str, str, Req | None]:
        """(decision, route, request) for one client text frame; counted. ``request`` is ``None`` when the
        frame is not a request (or larger than :data:`PARSE_LIMIT`)."""
        frame = parse_frame(text) if len(text) <= PARSE_LIMIT else None
        req = frame if isinstance(frame, Req) else None
        decision, route = self.ws(req.method if req is not None else None)
        return decision, route, req

    def route(self, method: str, path: str) -> str:
        return self.profile.route_template(method.upper(), path)

    def http(self, method: str, path: str) -> tuple[str, str]:
        """(decision, route) for one HTTP request; counted. ``route`` is the bounded template."""
        route = self.route(method, path)
        decision = self._decide(route)
        self._count(route, decision)
        return decision, route

    def _count(self, route: str, decision: str) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.policy_decisions, route, decision).inc()
