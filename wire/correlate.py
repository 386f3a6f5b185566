"""Correlator: per connection of one leg, observations in -> exchanges out (sans-I/O state machine).

Owns :class:`Correlator`, its result events and :func:`correlate` (the batch form). Stdlib and ``wire`` only;
never reads a clock: time comes in with each observation and with :meth:`Correlator.expire`.

* A WS ``req`` from the client opens an exchange keyed by its ``id``; ``res`` frames with that id answer it.
  Methods in ``profile.multi_response`` (``agent``, ref §2.6) may answer twice: the exchange completes on the
  second ``res``, or with one at expiry/close. Other methods complete on the first ``res``.
* A ``res`` for no open request is :class:`Orphaned` (key ``orphan:<id>#<k>``) -- an answer-twice bug shows here
  in streaming mode. With ``hold_all=True`` (batch/replay) exchanges stay open until the connection closes, so
  every ``res`` for an id lands in its exchange and a second answer becomes a frame-count finding.
* Server events are :class:`Unsolicited` (key ``event:<name>#<k>``, the k-th of that name on the connection);
  events the profile calls progress updates (``profile.progress``) count apart, as ``progress:<name>#<k>``, so
  a varying number of them never shifts the ordinals of the other events of that name;
  malformed or unknown server frames are unsolicited ``other#<k>``; the server's close is key ``close``.
* HTTP: the n-th ``http-request`` on a connection is answered by the n-th ``http-response`` (key ``http#<n>``).
* Handshake frames (challenge event, ``connect`` req/res) are handled like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from wire.frames import http_request, http_response, parse_observation
from wire.model import (
    Close,
    Direction,
    Event,
    Exchange,
    ExchangeKind,
    HttpRequest,
    Kind,
    Leg,
    Observation,
    Other,
    Req,
    Res,
    Response,
)
from wire.profiles.base import OTHER, Profile

__all__ = [
    "Correlated",
    "CorrelationEvent",
    "Correlator",
    "Orphaned",
    "TimedOut",
    "Unsolicited",
    "correlate",
]


@dataclass(frozen=True, slots=True)
class Correlated:
    """A request with its response(s)."""

    exchange: Exchange


@dataclass(frozen=True, slots=True)
class Unsolicited:
    """A server frame nobody asked for (event, malformed frame) or the connection's close."""

    exchange: Exchange


@dataclass(frozen=True, slots=True)
class Orphaned:
    """A response whose id matches no open request."""

    exchange: Exchange


@dataclass(frozen=True, slots=True)
class TimedOut:
    """A request that got no response before expiry or close (``exchange.timed_out`` is ``True``)."""

    exchange: Exchange


CorrelationEvent = Correlated | Unsolicited | Orphaned | TimedOut


@dataclass(slots=True)
class _Open:
    req: Req | HttpRequest
    key: str
    kind: ExchangeKind
    group: str
    step: str | None
    responses: list[Response] = field(default_factory=list)


class Correlator:
    """Joins one connection's requests and responses.

    Args:
        profile: supplies ``multi_response``, labels and ``response_timeout``.
        leg: the leg every exchange is stamped with.
        conn: the connection id.
        hold_all: keep exchanges open until :meth:`close` (batch mode, see module docstring).
    """

    def __init__(self, profile: Profile, *, leg: Leg, conn: str, hold_all: bool = False) -> None:
        self.profile = profile
        self.leg = leg
        self.conn = conn
        self.hold_all = hold_all
        self._open: dict[str, _Open] = {}
        self._http: list[_Open] = []
        self._counts: dict[str, int] = {}
        self._http_seq = 0
        self.closed = False

    # --- inputs -------------------------------------------------------------------------------------------------

    def receive(self, obs: Observation) -> list[CorrelationEvent]:
        """Feed one observation of this connection; returns what it completed."""
        if obs.kind is Kind.HTTP_REQUEST:
            self._http_seq += 1
            req = http_request(obs)
            group = self.profile.route_template(req.method, req.path)
            self._http.append(_Open(req, f"http#{self._http_seq}", ExchangeKind.HTTP, group, obs.step))
            return []
        if obs.kind is Kind.HTTP_RESPONSE:
            if not self._http:
                resp = http_response(obs)
                return [
                    Orphaned(
                        self._exchange(
                            f"orphan:http#{self._next('orphan:http')}",
                            ExchangeKind.HTTP,
                            OTHER,
                            None,
                            (resp,),
                            resp.t,
                            obs.step,
                        )
                    )
                ]
            op = self._http.pop(0)
            op.responses.append(http_response(obs))
            return [Correlated(self._finish(op))]
        if obs.kind is Kind.WS_CLOSE:
            if obs.dir is Direction.C2S:
                return []
            close = Close(code=obs.code, reason=obs.reason or "", t=obs.t)
            out: list[CorrelationEvent] = [
                Unsolicited(self._exchange("close", ExchangeKind.CLOSE, "<close>", None, (close,), obs.t, obs.step))
            ]
            return self.close() + out
        frame = parse_observation(obs)
        if frame is None:  # ws-open, error
            return []
        if obs.dir is Direction.C2S:
            if isinstance(frame, Req):
                prior = self._open.pop(frame.id, None)
                out = [self._end(prior)] if prior is not None else []
                group = self.profile.route_template(frame.method)
                self._open[frame.id] = _Open(frame, frame.id, ExchangeKind.WS, group, obs.step)
                return out
            return []  # a client frame that is not a request: identical on both legs, nothing to join
        if isinstance(frame, Res):
            pending = self._open.get(frame.id)
            if pending is None:
                key = f"orphan:{frame.id}#{self._next('orphan:' + frame.id)}"
                return [Orphaned(self._exchange(key, ExchangeKind.WS, OTHER, None, (frame,), frame.t, obs.step))]
            pending.responses.append(frame)
            opened = pending.req
            if self.hold_all or (
                isinstance(opened, Req) and opened.method in self.profile.multi_response and len(pending.responses) < 2
            ):
                return []
            del self._open[frame.id]
            return [Correlated(self._finish(pending))]
        if isinstance(frame, Event):
            if self.profile.progress(frame):
                name = f"progress:{frame.event}"
                key = f"{name}#{self._next(name)}"
            else:
                key = f"event:{frame.event}#{self._next(frame.event)}"
            group = self.profile.event_label(frame.event)
            return [Unsolicited(self._exchange(key, ExchangeKind.EVENT, group, None, (frame,), frame.t, obs.step))]
        assert isinstance(frame, Other)
        key = f"other#{self._next('<other>')}"
        return [Unsolicited(self._exchange(key, ExchangeKind.EVENT, OTHER, None, (frame,), frame.t, obs.step))]

    def expire(self, now: float) -> list[CorrelationEvent]:
        """Complete or time out every open exchange older than ``profile.response_timeout`` at ``now``."""
        limit = now - self.profile.response_timeout
        out: list[CorrelationEvent] = []
        for key, op in list(self._open.items()):
            if op.req.t <= limit:
                del self._open[key]
                out.append(self._end(op))
        for op in list(self._http):
            if op.req.t <= limit:
                self._http.remove(op)
                out.append(self._end(op))
        return out

    def close(self) -> list[CorrelationEvent]:
        """End of the connection: every open exchange completes (with what it has) or times out."""
        self.closed = True
        out = [self._end(op) for op in self._open.values()] + [self._end(op) for op in self._http]
        self._open.clear()
        self._http.clear()
        return out

    # --- helpers ------------------------------------------------------------------------------------------------

    def _next(self, name: str) -> int:
        n = self._counts.get(name, 0) + 1
        self._counts[name] = n
        return n

    def _end(self, op: _Open) -> CorrelationEvent:
        if op.responses:
            return Correlated(self._finish(op))
        return TimedOut(replace(self._finish(op), timed_out=True))

    def _finish(self, op: _Open) -> Exchange:
        t_end = op.responses[-1].t if op.responses else None
        return Exchange(
            leg=self.leg,
            conn=self.conn,
            key=op.key,
            kind=op.kind,
            group=op.group,
            request=op.req,
            responses=tuple(op.responses),
            t_start=op.req.t,
            t_end=t_end,
            step=op.step,
        )

    def _exchange(
        self,
        key: str,
        kind: ExchangeKind,
        group: str,
        req: None,
        responses: tuple[Response, ...],
        t: float,
        step: str | None,
    ) -> Exchange:
        return Exchange(
            leg=self.leg,
            conn=self.conn,
            key=key,
            kind=kind,
            group=group,
            request=req,
            responses=responses,
            t_start=t,
            t_end=t,
            step=step,
        )


def correlate(observations: Iterable[Observation], profile: Profile, *, leg: Leg | None = None) -> list[Exchange]:
    """Batch form: every exchange of every connection in ``observations`` (``hold_all`` mode), by start time.

    Observations of other legs are ignored when ``leg`` is given; connections still open at the end are closed.
    """
    correlators: dict[tuple[Leg, str], Correlator] = {}
    out: list[Exchange] = []
    for obs in observations:
        if leg is not None and obs.leg is not leg:
            continue
        c = correlators.get((obs.leg, obs.conn))
        if c is None or c.closed:
            c = correlators[(obs.leg, obs.conn)] = Correlator(profile, leg=obs.leg, conn=obs.conn, hold_all=True)
        out.extend(ev.exchange for ev in c.receive(obs))
    for c in correlators.values():
        out.extend(ev.exchange for ev in c.close())
    out.sort(key=lambda e: e.t_start)
    return out
