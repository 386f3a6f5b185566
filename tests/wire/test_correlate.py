"""wire.correlate: req/res by id, the agent's two answers, orphans, timeouts, events, closes, HTTP."""

from __future__ import annotations

import json
from typing import Any

from wire.correlate import Correlated, Correlator, Orphaned, TimedOut, Unsolicited, correlate
from wire.model import Close, Direction, ExchangeKind, HttpResponse, Kind, Leg, Observation, Other
from wire.profiles.openclaw import OPENCLAW

C2S, S2C = Direction.C2S, Direction.S2C


def ws(t: float, d: Direction, frame: Any, conn: str = "c1", step: str | None = None) -> Observation:
    data = frame if isinstance(frame, str) else json.dumps(frame)
    return Observation(t=t, conn=conn, dir=d, kind=Kind.WS_TEXT, data=data, step=step)


def req(i: str, method: str = "health") -> dict[str, Any]:
    return {"type": "req", "id": i, "method": method}


def res(i: str, **payload: Any) -> dict[str, Any]:
    return {"type": "res", "id": i, "ok": True, "payload": payload}


def make(hold_all: bool = False) -> Correlator:
    return Correlator(OPENCLAW, leg=Leg.CANDIDATE, conn="c1", hold_all=hold_all)


def test_request_and_response_by_id_with_latency() -> None:
    c = make()
    assert c.receive(ws(1.0, C2S, req("a"), step="s1")) == []
    (ev,) = c.receive(ws(1.25, S2C, res("a")))
    assert isinstance(ev, Correlated)
    ex = ev.exchange
    assert (ex.key, ex.kind, ex.group, ex.leg, ex.step) == ("a", ExchangeKind.WS, "health", Leg.CANDIDATE, "s1")
    assert ex.latency == 0.25 and ex.t_end == 1.25


def test_interleaved_responses_match_by_id_not_order() -> None:
    c = make()
    c.receive(ws(0, C2S, req("a")))
    c.receive(ws(0, C2S, req("b", "status")))
    (first,) = c.receive(ws(1, S2C, res("b")))
    (second,) = c.receive(ws(2, S2C, res("a")))
    assert [first.exchange.group, second.exchange.group] == ["status", "health"]


def test_agent_may_answer_twice() -> None:
    c = make()
    c.receive(ws(0, C2S, req("r", "agent")))
    assert c.receive(ws(1, S2C, res("r", status="accepted"))) == []
    (ev,) = c.receive(ws(2, S2C, res("r", status="ok")))
    assert isinstance(ev, Correlated) and len(ev.exchange.responses) == 2


def test_agent_with_one_answer_completes_at_expiry() -> None:
    c = make()
    c.receive(ws(0, C2S, req("r", "agent")))
    c.receive(ws(1, S2C, res("r")))
    assert c.expire(now=10) == []
    (ev,) = c.expire(now=31)
    assert isinstance(ev, Correlated) and len(ev.exchange.responses) == 1


def test_timeout_and_close_flush_open_requests() -> None:
    c = make()
    c.receive(ws(0, C2S, req("a")))
    (ev,) = c.expire(now=30.0)
    assert isinstance(ev, TimedOut) and ev.exchange.timed_out and ev.exchange.responses == ()
    assert ev.exchange.latency is None
    c.receive(ws(40, C2S, req("b")))
    closed = c.receive(Observation(t=41, conn="c1", dir=S2C, kind=Kind.WS_CLOSE, code=1008, reason="bye"))
    assert isinstance(closed[0], TimedOut) and closed[0].exchange.key == "b"
    assert isinstance(closed[1], Unsolicited)
    close = closed[1].exchange
    assert (close.key, close.kind, close.group) == ("close", ExchangeKind.CLOSE, "<close>")
    assert close.responses == (Close(code=1008, reason="bye", t=41),)
    assert c.closed


def test_client_close_is_not_an_exchange() -> None:
    c = make()
    assert c.receive(Observation(t=1, conn="c1", dir=C2S, kind=Kind.WS_CLOSE, code=1000)) == []


def test_orphans_and_answer_twice_in_streaming_mode() -> None:
    c = make()
    (orphan,) = c.receive(ws(0, S2C, res("nobody")))
    assert isinstance(orphan, Orphaned) and orphan.exchange.key == "orphan:nobody#1"
    c.receive(ws(1, C2S, req("a")))
    c.receive(ws(2, S2C, res("a")))
    (again,) = c.receive(ws(3, S2C, res("a")))
    assert isinstance(again, Orphaned) and again.exchange.key == "orphan:a#1"


def test_hold_all_keeps_every_answer_in_its_exchange() -> None:
    c = make(hold_all=True)
    c.receive(ws(1, C2S, req("a")))
    assert c.receive(ws(2, S2C, res("a"))) == []
    assert c.receive(ws(3, S2C, res("a"))) == []
    (ev,) = c.close()
    assert isinstance(ev, Correlated) and len(ev.exchange.responses) == 2


def test_events_are_numbered_per_name_and_malformed_frames_kept() -> None:
    c = make()
    keys = []
    for t, frame in enumerate([{"type": "event", "event": "chat"}, {"type": "event", "event": "tick"},
                               {"type": "event", "event": "chat"}, {"type": "event", "event": "zzz.unknown"}]):
        (ev,) = c.receive(ws(t, S2C, frame))
        assert isinstance(ev, Unsolicited)
        keys.append((ev.exchange.key, ev.exchange.group))
    assert keys == [("event:chat#1", "chat"), ("event:tick#1", "tick"), ("event:chat#2", "chat"),
                    ("event:zzz.unknown#1", "other")]
    (bad,) = c.receive(ws(9, S2C, "{oops"))
    assert bad.exchange.key == "other#1" and isinstance(bad.exchange.responses[0], Other)


def test_progress_events_count_apart_so_final_events_keep_their_ordinals() -> None:
    """Open-task upserts (``profile.progress``) are keyed ``progress:task#k``: however many arrive, the final
    upserts are ``event:task#1``, ``#2``... on every run."""
    def task(status: str) -> dict[str, Any]:
        return {"type": "event", "event": "task", "payload": {"action": "upserted", "task": {"status": status}}}

    for running in (0, 1, 4):
        c = make()
        frames = [task("running")] * running + [task("completed")] + [task("queued"), task("failed")]
        keys = [ev.exchange.key for t, f in enumerate(frames) for ev in c.receive(ws(t, S2C, f))]
        finals = [k for k in keys if k.startswith("event:")]
        assert finals == ["event:task#1", "event:task#2"], keys
        assert [k for k in keys if not k.startswith("event:")] == [f"progress:task#{i}" for i in range(1, running + 2)]


def test_client_frames_that_are_not_requests_and_reused_ids() -> None:
    c = make()
    assert c.receive(ws(0, C2S, "{not json")) == []
    c.receive(ws(1, C2S, req("a")))
    (prior,) = c.receive(ws(2, C2S, req("a", "status")))  # id reused before an answer: the first times out
    assert isinstance(prior, TimedOut) and prior.exchange.group == "health"
    assert c.receive(Observation(t=3, conn="c1", dir=C2S, kind=Kind.WS_OPEN, path="/")) == []


def test_http_exchanges_in_order() -> None:
    c = make()
    for n in (1, 2):
        c.receive(Observation(t=n, conn="h1", dir=C2S, kind=Kind.HTTP_REQUEST, method="GET", path="/healthz"))
    (a,) = c.receive(Observation(t=3, conn="h1", dir=S2C, kind=Kind.HTTP_RESPONSE, status=200))
    (b,) = c.receive(Observation(t=4, conn="h1", dir=S2C, kind=Kind.HTTP_RESPONSE, status=503))
    assert [a.exchange.key, b.exchange.key] == ["http#1", "http#2"]
    assert a.exchange.group == "GET /healthz" and a.exchange.latency == 2
    resp = b.exchange.responses[0]
    assert isinstance(resp, HttpResponse) and resp.status == 503
    (orphan,) = c.receive(Observation(t=5, conn="h1", dir=S2C, kind=Kind.HTTP_RESPONSE, status=200))
    assert isinstance(orphan, Orphaned) and orphan.exchange.key == "orphan:http#1"
    c.receive(Observation(t=6, conn="h1", dir=C2S, kind=Kind.HTTP_REQUEST, method="GET", path="/x"))
    (late,) = c.expire(now=100)
    assert isinstance(late, TimedOut) and late.exchange.kind is ExchangeKind.HTTP
    c.receive(Observation(t=7, conn="h1", dir=C2S, kind=Kind.HTTP_REQUEST, method="GET", path="/x"))
    (flushed,) = c.close()
    assert isinstance(flushed, TimedOut)


def test_batch_correlate_splits_legs_and_connections() -> None:
    obs = [
        ws(0, C2S, req("a")),
        ws(0.1, S2C, res("a")),
        ws(0.2, C2S, req("a"), conn="c2"),
        Observation(t=0.3, conn="c1", leg=Leg.CANDIDATE, dir=C2S, kind=Kind.WS_TEXT, data=json.dumps(req("z"))),
        ws(0.4, S2C, res("a"), conn="c2"),
        ws(0.5, S2C, res("a"), conn="c2"),
        Observation(t=0.6, conn="c1", dir=S2C, kind=Kind.WS_CLOSE, code=1000),
        ws(0.7, C2S, req("b")),  # same conn id after a close: a new connection
    ]
    legacy = correlate(obs, OPENCLAW, leg=Leg.LEGACY)
    assert [(e.conn, e.key, len(e.responses)) for e in legacy] == [
        ("c1", "a", 1), ("c2", "a", 2), ("c1", "close", 1), ("c1", "b", 0)]
    assert legacy[-1].timed_out
    everything = correlate(obs, OPENCLAW)
    assert any(e.leg is Leg.CANDIDATE and e.key == "z" for e in everything)
