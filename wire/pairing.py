"""Pairer: a legacy exchange <-> the candidate exchange for the same client request.

Owns :class:`Pairer` (streaming, for the shadow proxy) and :func:`pair_exchanges` (batch, for replay). Stdlib
and ``wire`` only; no clocks (``expire(now)`` takes the time).

Join key: (connection, request key). The request key is the WS request id or ``http#<n>`` (see
``wire.correlate``). WS events are keyed ``event:<name>#<k>`` -- the k-th event of that name on the
connection -- so events pair as multisets by name, never by position among other events. Timer events
(``profile.timer_events``, ref §2.7) and progress updates (key ``progress:<name>#<k>``, ``profile.progress``)
are excluded and counted in :attr:`Pairer.skipped`. In batch mode,
requests left over after the key join are joined by (connection, group, ordinal) so clients that generate
random request ids still pair. Anything still alone becomes a one-sided :class:`~wire.model.Pair` (an explicit
result, never silently dropped).
"""

from __future__ import annotations

from collections.abc import Iterable

from wire.model import Exchange, ExchangeKind, Leg, Pair
from wire.profiles.base import Profile

__all__ = ["Pairer", "pair_exchanges"]


def _event_name(ex: Exchange) -> str | None:
    if ex.kind is not ExchangeKind.EVENT or not ex.key.startswith("event:"):
        return None
    return ex.key[len("event:") :].rsplit("#", 1)[0]


def _skipped(ex: Exchange, profile: Profile) -> bool:
    """A timer event or a progress update: never paired, never compared."""
    if ex.kind is not ExchangeKind.EVENT:
        return False
    if ex.key.startswith("progress:"):
        return True
    name = _event_name(ex)
    return name is not None and name in profile.timer_events


def _make(legacy: Exchange | None, candidate: Exchange | None, scenario: str | None) -> Pair:
    ex = legacy or candidate
    assert ex is not None
    return Pair(
        conn=ex.conn, key=ex.key, kind=ex.kind, group=ex.group, legacy=legacy, candidate=candidate, scenario=scenario
    )


class Pairer:
    """Streaming pairer: :meth:`add` each exchange as its leg completes it.

    Args:
        profile: supplies ``timer_events``, ``event_window`` (events) and ``response_timeout`` (requests).
        scenario: stamped on every pair (trace or session name).
    """

    def __init__(self, profile: Profile, *, scenario: str | None = None) -> None:
        self.profile = profile
        self.scenario = scenario
        self._waiting: dict[tuple[str, str], Exchange] = {}
        self.skipped = 0

    def add(self, ex: Exchange) -> Pair | None:
        """Returns the pair when the other leg's exchange is already here, else ``None`` (it waits)."""
        if _skipped(ex, self.profile):
            self.skipped += 1
            return None
        k = (ex.conn, ex.key)
        other = self._waiting.get(k)
        if other is not None and other.leg is not ex.leg:
            del self._waiting[k]
            legacy, candidate = (other, ex) if ex.leg is Leg.CANDIDATE else (ex, other)
            return _make(legacy, candidate, self.scenario)
        if other is not None:  # same leg, same key again (client reused an id): flush the older one
            self._waiting[k] = ex
            return self._alone(other)
        self._waiting[k] = ex
        return None

    def expire(self, now: float) -> list[Pair]:
        """One-sided pairs for exchanges that waited longer than the window (events) or timeout (requests)."""
        out = []
        for k, ex in list(self._waiting.items()):
            wait = self.profile.event_window if ex.kind is ExchangeKind.EVENT else self.profile.response_timeout
            if (ex.t_end if ex.t_end is not None else ex.t_start) + wait <= now:
                del self._waiting[k]
                out.append(self._alone(ex))
        return out

    def flush(self) -> list[Pair]:
        """Every waiting exchange as a one-sided pair (end of run)."""
        out = [self._alone(ex) for ex in self._waiting.values()]
        self._waiting.clear()
        return out

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _alone(self, ex: Exchange) -> Pair:
        return _make(ex, None, self.scenario) if ex.leg is Leg.LEGACY else _make(None, ex, self.scenario)


def pair_exchanges(
    legacy: Iterable[Exchange], candidate: Iterable[Exchange], profile: Profile, *, scenario: str | None = None
) -> list[Pair]:
    """Batch pairing of two legs' exchanges (see module docstring); pairs in legacy order, then extras."""
    lx = [e for e in legacy if not _skipped(e, profile)]
    cx = [e for e in candidate if not _skipped(e, profile)]
    cindex = {(e.conn, e.key): e for e in cx}
    pairs: list[Pair] = []
    lonely_l: list[Exchange] = []
    for e in lx:
        c = cindex.pop((e.conn, e.key), None)
        if c is None:
            lonely_l.append(e)
        else:
            pairs.append(_make(e, c, scenario))
    lonely_c = [e for e in cx if (e.conn, e.key) in cindex]

    # Second chance for requests: (conn, group, ordinal among the leftovers).
    def ordinal_keys(items: list[Exchange]) -> dict[tuple[str, str, int], Exchange]:
        seen: dict[tuple[str, str], int] = {}
        out: dict[tuple[str, str, int], Exchange] = {}
        for e in items:
            if e.kind in (ExchangeKind.WS, ExchangeKind.HTTP) and e.request is not None:
                n = seen[(e.conn, e.group)] = seen.get((e.conn, e.group), 0) + 1
                out[(e.conn, e.group, n)] = e
        return out

    lo, co = ordinal_keys(lonely_l), ordinal_keys(lonely_c)
    matched: set[int] = set()
    for k, e in lo.items():
        c = co.get(k)
        if c is not None:
            pairs.append(_make(e, c, scenario))
            matched.update((id(e), id(c)))
    pairs.extend(_make(e, None, scenario) for e in lonely_l if id(e) not in matched)
    pairs.extend(_make(None, e, scenario) for e in lonely_c if id(e) not in matched)
    return pairs
