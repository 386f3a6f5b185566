"""wire.frames: envelope parsing never raises on leg data; SSE splitting; HTTP values from observations."""

from __future__ import annotations

import pytest

from wire.frames import http_request, http_response, loads, parse_frame, parse_observation, parse_sse
from wire.model import Direction, Event, Kind, Observation, Other, Req, Res, SseEvent


@pytest.mark.parametrize(
    ("text", "cls", "problem"),
    [
        ('{"type":"req","id":"1","method":"health"}', Req, None),
        ('{"type":"res","id":"1","ok":true,"payload":{}}', Res, None),
        ('{"type":"event","event":"tick","payload":{"ts":1},"seq":3}', Event, None),
        ("{not json", Other, "not JSON"),
        ("[1,2]", Other, "not a JSON object (list)"),
        ('{"type":"req","method":"health"}', Other, "req without a non-empty string id"),
        ('{"type":"req","id":"","method":"health"}', Other, "req without a non-empty string id"),
        ('{"type":"req","id":"1"}', Other, "req without a non-empty string method"),
        ('{"type":"res","ok":true}', Other, "res without a string id"),
        ('{"type":"res","id":"1","ok":1}', Other, "res without a boolean ok"),
        ('{"type":"event","event":""}', Other, "event without a non-empty string event"),
        ('{"type":"hello"}', Other, "unknown frame type 'hello'"),
        ('{"type":"res","id":"1","ok":true,"payload":NaN}', Other, "not JSON"),
    ],
)
def test_parse_frame_classifies_and_keeps_raw(text: str, cls: type, problem: str | None) -> None:
    frame = parse_frame(text, t=1.5)
    assert isinstance(frame, cls)
    assert frame.raw == text and frame.t == 1.5
    if problem is None:
        assert not isinstance(frame, Other)
    else:
        assert isinstance(frame, Other) and frame.problem is not None and frame.problem.startswith(problem)


def test_parsed_fields() -> None:
    req = parse_frame('{"type":"req","id":"a","method":"m","params":{}}')
    res = parse_frame('{"type":"res","id":"a","ok":false,"error":{"code":"X"}}')
    ev = parse_frame('{"type":"event","event":"chat"}')
    assert isinstance(req, Req) and (req.id, req.method) == ("a", "m")
    assert isinstance(res, Res) and (res.id, res.ok) == ("a", False)
    assert isinstance(ev, Event) and ev.event == "chat" and ev.value == {"type": "event", "event": "chat"}


def test_big_integers_are_exact() -> None:
    big = 2**70 + 1
    assert loads(f'{{"n":{big}}}')["n"] == big
    with pytest.raises(ValueError):
        loads('{"n":Infinity}')


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    frame = parse_frame("[" * 100_000 + "]" * 100_000)
    assert isinstance(frame, Other) and frame.problem


def _obs(kind: Kind, **kw: object) -> Observation:
    return Observation(t=2.0, conn="c1", dir=kw.pop("dir", Direction.S2C), kind=kind, **kw)  # type: ignore[arg-type]


def test_parse_observation() -> None:
    assert isinstance(parse_observation(_obs(Kind.WS_TEXT, data='{"type":"event","event":"x"}')), Event)
    binary = parse_observation(_obs(Kind.WS_BINARY, data_b64=b"\xff\x00"))
    assert isinstance(binary, Other) and binary.problem == "binary frame"
    assert parse_observation(_obs(Kind.WS_OPEN, dir=Direction.C2S, path="/")) is None


def test_parse_sse_joins_data_lines_and_defaults_the_type() -> None:
    body = ": comment\r\nevent: response.created\ndata: {\"a\":1}\n\ndata: one\ndata: two\n\nevent: x\n\ndata:tail"
    assert parse_sse(body) == (
        SseEvent(event="response.created", data='{"a":1}'),
        SseEvent(event="message", data="one\ntwo"),
        SseEvent(event="message", data="tail"),
    )
    assert parse_sse("data: [DONE]\r\r") == (SseEvent(event="message", data="[DONE]"),)


def test_http_values() -> None:
    req = http_request(_obs(Kind.HTTP_REQUEST, dir=Direction.C2S, method="POST", path="/v1/x", data="{}"))
    assert (req.method, req.path, req.body) == ("POST", "/v1/x", b"{}")
    plain = http_response(_obs(Kind.HTTP_RESPONSE, status=200, headers=(("Content-Type", "application/json"),),
                               data='{"ok":true}'))
    assert plain.status == 200 and plain.sse is None and plain.header("content-type") == "application/json"
    assert plain.header("x-missing") is None
    sse = http_response(_obs(Kind.HTTP_RESPONSE, status=200, headers=(("content-type", "text/event-stream"),),
                             data="data: a\n\ndata: b\n\n"))
    assert sse.sse is not None and [e.data for e in sse.sse] == ["a", "b"]
    bare = http_request(_obs(Kind.HTTP_REQUEST, dir=Direction.C2S))
    assert (bare.method, bare.path) == ("GET", "/")
    assert http_response(_obs(Kind.HTTP_RESPONSE)).status == 0
