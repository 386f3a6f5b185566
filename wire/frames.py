"""Text to Frame for the OpenClaw WS protocol, and HTTP exchange values from observations.

Owns envelope parsing only (reference section 2.2): ``req`` needs a non-empty string ``id`` and ``method``,
``res`` a string ``id`` and a boolean ``ok``, ``event`` a non-empty string ``event``. Anything else becomes
:class:`~wire.model.Other` carrying the problem -- never an exception, because malformed data from a leg is a
finding. The raw text is kept beside the parsed value so forwarding and recording stay byte-exact.

Parsing uses the stdlib ``json`` (exact integers beyond 64 bits; ``NaN``/``Infinity`` rejected because Node's
``JSON.stringify`` never emits them). Imports only the stdlib and ``wire.model``.
"""

from __future__ import annotations

import json
from typing import Any

from wire.model import (
    Event,
    Frame,
    HttpRequest,
    HttpResponse,
    Kind,
    Observation,
    Other,
    Req,
    Res,
    SseEvent,
)

__all__ = [
    "http_request",
    "http_response",
    "loads",
    "parse_frame",
    "parse_observation",
    "parse_sse",
]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-JSON constant {name}")


def loads(text: str | bytes) -> Any:
    """Strict JSON decode: stdlib ``json``, exact big integers, no ``NaN``/``Infinity``. Raises ``ValueError``."""
    return json.loads(text, parse_constant=_reject_constant)


def parse_frame(text: str, *, t: float = 0.0) -> Frame:
    """Parse one WS text frame into ``Req``/``Res``/``Event``/``Other``. Never raises on bad input."""
    try:
        value = loads(text)
    except (ValueError, RecursionError) as exc:
        return Other(raw=text, problem=f"not JSON: {exc}", t=t)
    if not isinstance(value, dict):
        return Other(raw=text, value=value, problem=f"not a JSON object ({type(value).__name__})", t=t)
    typ = value.get("type")
    if typ == "req":
        fid, method = value.get("id"), value.get("method")
        if not isinstance(fid, str) or not fid:
            return Other(raw=text, value=value, problem="req without a non-empty string id", t=t)
        if not isinstance(method, str) or not method:
            return Other(raw=text, value=value, problem="req without a non-empty string method", t=t)
        return Req(raw=text, value=value, id=fid, method=method, t=t)
    if typ == "res":
        fid, ok = value.get("id"), value.get("ok")
        if not isinstance(fid, str):
            return Other(raw=text, value=value, problem="res without a string id", t=t)
        if not isinstance(ok, bool):
            return Other(raw=text, value=value, problem="res without a boolean ok", t=t)
        return Res(raw=text, value=value, id=fid, ok=ok, t=t)
    if typ == "event":
        name = value.get("event")
        if not isinstance(name, str) or not name:
            return Other(raw=text, value=value, problem="event without a non-empty string event", t=t)
        return Event(raw=text, value=value, event=name, t=t)
    return Other(raw=text, value=value, problem=f"unknown frame type {typ!r}", t=t)


def parse_observation(obs: Observation) -> Frame | None:
    """The frame carried by a ``ws-text`` or ``ws-binary`` observation, else ``None``.

    Binary frames are not part of the OpenClaw protocol: they become ``Other`` with a problem.
    """
    if obs.kind is Kind.WS_TEXT:
        return parse_frame(obs.data or "", t=obs.t)
    if obs.kind is Kind.WS_BINARY:
        return Other(raw=obs.body.decode("utf-8", "replace"), problem="binary frame", t=obs.t)
    return None


def parse_sse(body: str) -> tuple[SseEvent, ...]:
    """Split a ``text/event-stream`` body into events (WHATWG rules: blank line ends an event).

    ``data:`` lines of one event are joined with ``\\n``; comment lines (``:``) are ignored; an event with
    no data is dropped; the type defaults to ``message``. A trailing event without a blank line is kept.
    """
    events: list[SseEvent] = []
    name, data = "", list[str]()
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            if data:
                events.append(SseEvent(event=name or "message", data="\n".join(data)))
            name, data = "", list[str]()
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        events.append(SseEvent(event=name or "message", data="\n".join(data)))
    return tuple(events)


def http_request(obs: Observation) -> HttpRequest:
    """The request value of an ``http-request`` observation."""
    return HttpRequest(method=obs.method or "GET", path=obs.path or "/", headers=obs.headers, body=obs.body, t=obs.t)


def http_response(obs: Observation) -> HttpResponse:
    """The response value of an ``http-response`` observation; SSE bodies are split into events."""
    ctype = (obs.header("content-type") or "").lower()
    body = obs.body
    sse = parse_sse(body.decode("utf-8", "replace")) if ctype.startswith("text/event-stream") else None
    return HttpResponse(status=obs.status or 0, headers=obs.headers, body=body, sse=sse, t=obs.t)
