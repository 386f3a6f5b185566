"""Values shared by every package: legs, directions, observation kinds and the Observation itself.

Owns the vocabulary types. Stdlib only; no I/O, no clocks. Frame, Exchange and Pair values for the
OpenClaw protocol live next to these (see ``wire.frames``, ``wire.correlate``, ``wire.pairing``).

An *observation* is one timestamped thing seen on one connection of one leg: a WS open, a text or binary
frame, a close, an HTTP request or response, or a transport error. Traces are sequences of observations;
everything else (exchanges, pairs, diffs) is interpreted from them later, so a parser fix never forces a
re-recording (opensearch-migrations' lesson).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType, TypeAlias

__all__ = [
    "Close",
    "ConnId",
    "Direction",
    "Event",
    "Exchange",
    "ExchangeKind",
    "Frame",
    "HttpRequest",
    "HttpResponse",
    "Json",
    "Kind",
    "Leg",
    "Observation",
    "Other",
    "Pair",
    "Req",
    "Res",
    "Response",
    "SseEvent",
    "body_fields",
]

Json: TypeAlias = Any
ConnId = NewType("ConnId", str)


class Leg(StrEnum):
    """One side of a comparison."""

    LEGACY = "legacy"
    CANDIDATE = "candidate"

    @property
    def other(self) -> Leg:
        return Leg.CANDIDATE if self is Leg.LEGACY else Leg.LEGACY


class Direction(StrEnum):
    """Who sent it: client to server (``>``) or server to client (``<``)."""

    C2S = "c2s"
    S2C = "s2c"


class Kind(StrEnum):
    """What an observation is."""

    WS_OPEN = "ws-open"
    WS_TEXT = "ws-text"
    WS_BINARY = "ws-binary"
    WS_CLOSE = "ws-close"
    HTTP_REQUEST = "http-request"
    HTTP_RESPONSE = "http-response"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One timestamped event on one connection of one leg.

    Attributes:
        t: monotonic seconds since the start of the trace (never wall-clock).
        conn: connection id, unique within a trace (``c1``, ``c2``, ... or ``h3`` for HTTP exchanges).
        leg: which runtime the connection went to.
        dir: who sent it. ``ws-open`` and ``http-request`` are ``c2s``; their answers ``s2c``.
        kind: see :class:`Kind`.
        data: text payload (WS text, HTTP body decoded as UTF-8, error message), or ``None``.
        data_b64: binary payload as bytes when it is not valid UTF-8 (WS binary, HTTP bodies), else ``None``.
        method, path: HTTP request line, or the WS upgrade path on ``ws-open``.
        status: HTTP status on ``http-response``.
        headers: HTTP headers as an ordered tuple of (name, value) pairs, names as sent.
        code, reason: WS close code and reason on ``ws-close``.
        step: optional scenario step id that produced it (for reports).
    """

    t: float
    conn: str
    leg: Leg = Leg.LEGACY
    dir: Direction
    kind: Kind
    data: str | None = None
    data_b64: bytes | None = None
    method: str | None = None
    path: str | None = None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())
    code: int | None = None
    reason: str | None = None
    step: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as one tuple of field values: the mirror process receives thousands a second, and the
        generated dataclass state functions look the fields up on every call."""
        return (_observation, (self.t, self.conn, self.leg, self.dir, self.kind, self.data, self.data_b64,
                               self.method, self.path, self.status, self.headers, self.code, self.reason, self.step))

    @property
    def body(self) -> bytes:
        """The payload as bytes, whichever field holds it."""
        if self.data_b64 is not None:
            return self.data_b64
        return (self.data or "").encode("utf-8")

    def header(self, name: str) -> str | None:
        """First header value for ``name`` (case-insensitive), or ``None``."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def to_json(self) -> dict[str, Json]:
        """The trace-line mapping (trace format v1, ``docs/trace-format.md``); empty fields omitted."""
        out: dict[str, Json] = {
            "t": round(self.t, 6),
            "conn": self.conn,
            "leg": self.leg.value,
            "dir": self.dir.value,
            "kind": self.kind.value,
        }
        if self.data is not None:
            out["data"] = self.data
        if self.data_b64 is not None:
            out["b64"] = base64.b64encode(self.data_b64).decode("ascii")
        for name in ("method", "path", "status", "code", "reason", "step"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.headers:
            out["headers"] = [list(h) for h in self.headers]
        return out

    @classmethod
    def from_json(cls, d: dict[str, Json]) -> Observation:
        """Inverse of :meth:`to_json`. Raises ``KeyError``/``ValueError``/``TypeError`` on bad input."""
        b64 = d.get("b64")
        headers = d.get("headers") or ()
        return cls(
            t=float(d["t"]),
            conn=str(d["conn"]),
            leg=Leg(d.get("leg", "legacy")),
            dir=Direction(d["dir"]),
            kind=Kind(d["kind"]),
            data=_opt_str(d.get("data")),
            data_b64=base64.b64decode(b64, validate=True) if b64 is not None else None,
            method=_opt_str(d.get("method")),
            path=_opt_str(d.get("path")),
            status=_opt_int(d.get("status")),
            headers=tuple((str(k), str(v)) for k, v in headers),
            code=_opt_int(d.get("code")),
            reason=_opt_str(d.get("reason")),
            step=_opt_str(d.get("step")),
        )


def body_fields(body: bytes) -> dict[str, Any]:
    """An HTTP body as :class:`Observation` keyword arguments: ``data`` when it is UTF-8 text (``""`` when
    empty), ``data_b64`` otherwise."""
    try:
        return {"data": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"data_b64": body}


def _observation(t: float, conn: str, leg: Leg, dir: Direction, kind: Kind, data: str | None,  # noqa: A002
                 data_b64: bytes | None, method: str | None, path: str | None, status: int | None,
                 headers: tuple[tuple[str, str], ...], code: int | None, reason: str | None,
                 step: str | None) -> Observation:
    """Unpickle an :class:`Observation` (see ``Observation.__reduce__``)."""
    return Observation(t=t, conn=conn, leg=leg, dir=dir, kind=kind, data=data, data_b64=data_b64, method=method,
                       path=path, status=status, headers=headers, code=code, reason=reason, step=step)


def _opt_str(v: Json) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _opt_int(v: Json) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {type(v).__name__}")
    return v


# --- Frames, exchanges and pairs (interpreted from observations; see wire.frames / correlate / pairing) ---


@dataclass(frozen=True, slots=True, kw_only=True)
class Req:
    """A WS ``{"type":"req"}`` frame. ``raw`` is the exact text; ``value`` the parsed object."""

    raw: str
    value: dict[str, Json]
    id: str
    method: str
    t: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Res:
    """A WS ``{"type":"res"}`` frame."""

    raw: str
    value: dict[str, Json]
    id: str
    ok: bool
    t: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A WS ``{"type":"event"}`` frame."""

    raw: str
    value: dict[str, Json]
    event: str
    t: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Other:
    """Anything else: not JSON, not an object, unknown ``type``, missing envelope fields, or binary.

    ``problem`` says what is wrong (``None`` for a well-formed frame of an unknown type). A malformed frame
    from a leg is a finding (diff kind ``protocol-error``), never an exception.
    """

    raw: str
    value: Json = None
    problem: str | None = None
    t: float = 0.0


Frame: TypeAlias = Req | Res | Event | Other


@dataclass(frozen=True, slots=True, kw_only=True)
class Close:
    """A WS close seen on a connection (code ``None`` when the transport dropped without a close frame)."""

    code: int | None
    reason: str = ""
    t: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SseEvent:
    """One server-sent event: its ``event:`` type (``message`` when absent) and joined ``data:`` lines."""

    event: str
    data: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    t: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResponse:
    """An HTTP response; ``sse`` holds the split events when the body is ``text/event-stream``."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    sse: tuple[SseEvent, ...] | None = None
    t: float = 0.0

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None


Response: TypeAlias = Res | Event | Other | Close | HttpResponse


class ExchangeKind(StrEnum):
    """What an exchange is: a WS request with its responses, an unsolicited WS frame, a close, or HTTP."""

    WS = "ws"
    EVENT = "event"
    CLOSE = "close"
    HTTP = "http"


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """A request and its response(s) on one leg, or one unsolicited server frame, or a connection's close.

    Attributes:
        leg: the runtime it was seen on.
        conn: connection id (the session key used for pairing).
        key: request key within the connection: the WS request id, ``http#<n>`` for the n-th HTTP exchange,
            ``event:<name>#<k>`` for the k-th unsolicited event of that name, ``progress:<name>#<k>`` for the
            k-th progress update of that name (``Profile.progress``), ``close``, ``other#<k>``.
        kind: see :class:`ExchangeKind`.
        group: bounded label for reports: the method, route template or event name.
        request: the request (``None`` for unsolicited frames and closes).
        responses: response frames in arrival order (``agent`` may have two ``res``); empty when timed out.
        t_start: time of the request (or of the unsolicited frame).
        t_end: time of the last response, ``None`` when there is none.
        step: scenario step id that produced it, when known.
        timed_out: ``True`` when no response arrived before expiry or close.
    """

    leg: Leg
    conn: str
    key: str
    kind: ExchangeKind
    group: str
    request: Req | HttpRequest | None = None
    responses: tuple[Response, ...] = ()
    t_start: float = 0.0
    t_end: float | None = None
    step: str | None = None
    timed_out: bool = False

    @property
    def latency(self) -> float | None:
        """Seconds from request to first response (``None`` for unsolicited frames or no response)."""
        if self.request is None or not self.responses:
            return None
        return self.responses[0].t - self.t_start


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """The legacy and candidate exchanges for one client request (either side ``None`` when unmatched)."""

    conn: str
    key: str
    kind: ExchangeKind
    group: str
    legacy: Exchange | None
    candidate: Exchange | None
    scenario: str | None = None
