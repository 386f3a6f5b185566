"""recorder.replay.replay_trace against the loopback toy gateway: record on one, replay on another."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from recorder.format import Trace, read_trace
from recorder.replay import replay_trace
from recorder.runner import run_scenario
from recorder.scenario import parse_text
from recorder.target import Target
from tests.recorder.conftest import ToyGateway
from wire.model import Direction, Kind, Leg, Observation

STEPS = """\
scenarios:
  - id: r
    steps:
      - ws_connect: {conn: c1, device: true}
      - ws_rpc: {conn: c1, method: echo, id: fixed-id, params: {idempotencyKey: "{{uuid:k}}", text: "ping {{uuid:k}}"}}
      - ws_rpc: {conn: c1, method: chat.send, params: {idempotencyKey: "{{uuid}}"}}
      - ws_expect: {conn: c1, until: {event: chat, state: final}}
      - ws_connect: {conn: c2, auth: {token: deliberately-wrong}}
      - http: {method: POST, path: /hooks/wake, headers: {Authorization: "Bearer {{hook_token}}"}, json: {text: "wake {{uuid}}"}}
      - ws_close: {conn: c1}
"""


async def _record(toy: ToyGateway) -> Trace:
    sc = parse_text(STEPS, "r.yaml")[0]
    buf = io.StringIO()
    target = Target(url=toy.url, token=toy.token, hook_token=toy.hook_token)
    result = await run_scenario(sc, target, stream=buf, recorded_at="t0")
    assert result.ok, result.error
    return read_trace(io.StringIO(buf.getvalue()), strict=True)


async def test_replay_to_another_gateway_reproduces_the_exchange(toy: ToyGateway, toy_b: ToyGateway) -> None:
    recorded = await _record(toy)
    target = Target(url=toy_b.url, token=toy_b.token, hook_token=toy_b.hook_token)
    out = await replay_trace(recorded, target, leg=Leg.CANDIDATE)
    assert out.complete, out.error
    assert out.header.scenario == "r" and out.header.meta["leg"] == "candidate"
    assert all(o.leg is Leg.CANDIDATE for o in out.observations)
    # Same connections, same steps, same shape per connection (connections run concurrently).
    def per_conn(tr: Trace) -> dict[str, list[tuple[object, ...]]]:
        out: dict[str, list[tuple[object, ...]]] = {}
        for o in tr.observations:
            out.setdefault(o.conn, []).append((o.dir, o.kind, o.step))
        return out

    assert per_conn(out) == per_conn(recorded)
    # toy_b accepted the connect: its own token went out and the device was re-signed against ITS nonce.
    good = toy_b.connects[0]
    assert good["auth"] == {"token": toy_b.token} and good["device"]["nonce"] in toy_b.nonces
    assert good["device"]["id"] == target.identity.device_id
    # The deliberately wrong token stayed wrong (it is "<REDACTED>" in the trace, and sent as such).
    assert toy_b.connects[1]["auth"] == {"token": "<REDACTED>"}
    closes = [o for o in out.observations if o.conn == "c2" and o.kind is Kind.WS_CLOSE]
    assert closes and closes[0].code == 1008
    # Request ids kept; other UUIDs fresh but consistent within the replay.
    echo_sent = next(json.loads(f) for f in toy_b.seen if isinstance(f, str) and '"echo"' in f)
    echo_rec = next(json.loads(o.data or "") for o in recorded.observations if '"echo"' in (o.data or ""))
    assert echo_sent["id"] == "fixed-id"
    key = echo_sent["params"]["idempotencyKey"]
    assert key != echo_rec["params"]["idempotencyKey"] and echo_sent["params"]["text"] == f"ping {key}"
    # HTTP: the hook token placeholder became toy_b's hook token.
    method, path, headers, _ = next(s for s in toy_b.seen if isinstance(s, tuple) and len(s) == 4)
    assert (method, path, headers["Authorization"]) == ("POST", "/hooks/wake", f"Bearer {toy_b.hook_token}")
    # Nothing secret comes back.
    text = "\n".join(json.dumps(o.to_json()) for o in out.observations)
    assert toy_b.token not in text and toy_b.hook_token not in text


async def test_events_recorded_under_an_expect_step_keep_that_step(toy: ToyGateway, toy_b: ToyGateway) -> None:
    recorded = await _record(toy)
    out = await replay_trace(recorded, Target(url=toy_b.url, token=toy_b.token, hook_token=toy_b.hook_token),
                             leg=Leg.CANDIDATE)
    final = [o for o in out.observations if '"final"' in (o.data or "")]
    assert [o.step for o in final] == ["s4"]


async def test_a_down_target_gives_an_incomplete_trace_not_an_exception(toy: ToyGateway) -> None:
    recorded = await _record(toy)
    out = await replay_trace(recorded, Target(url="http://127.0.0.1:9", token="x"), leg=Leg.CANDIDATE, timeout=2)
    assert not out.complete and "cannot open" in (out.error or "")
    assert any(o.kind is Kind.ERROR for o in out.observations)


async def test_speed_keeps_recorded_spacing(toy: ToyGateway, toy_b: ToyGateway) -> None:
    sc = parse_text("scenarios:\n  - id: s\n    steps:\n      - ws_connect: {conn: c1}\n      - sleep_ms: 2000\n"
                    "      - ws_rpc: {conn: c1, method: health}\n", "s.yaml")[0]
    buf = io.StringIO()
    assert (await run_scenario(sc, Target(url=toy.url, token=toy.token), stream=buf)).ok
    recorded = read_trace(io.StringIO(buf.getvalue()))
    target = Target(url=toy_b.url, token=toy_b.token)
    fast = await replay_trace(recorded, target, leg=Leg.CANDIDATE)
    paced = await replay_trace(recorded, target, leg=Leg.CANDIDATE, speed=1.0)

    def health_t(tr: Trace) -> float:
        return next(o.t for o in tr.observations if o.dir is Direction.C2S and '"health"' in (o.data or ""))

    # paced waits out the recorded 2 s gap (a lower bound by construction); fast sends right after the hello.
    assert health_t(paced) >= 2.0 and health_t(fast) < health_t(paced)


async def test_replay_waits_for_every_answer_the_recording_got(toy: ToyGateway, toy_b: ToyGateway) -> None:
    sc = parse_text("scenarios:\n  - id: a\n    steps:\n      - ws_connect: {conn: c1}\n"
                    "      - ws_send: {conn: c1, frame: {type: req, id: a1, method: agent}}\n"
                    "      - ws_expect: {conn: c1, until: {res: a1, nth: 2}}\n"
                    "      - ws_close: {conn: c1}\n", "a.yaml")[0]
    buf = io.StringIO()
    assert (await run_scenario(sc, Target(url=toy.url, token=toy.token), stream=buf)).ok
    out = await replay_trace(read_trace(io.StringIO(buf.getvalue())), Target(url=toy_b.url, token=toy_b.token),
                             leg=Leg.CANDIDATE)
    answers = [o.step for o in out.observations if o.dir is Direction.S2C and '"a1"' in (o.data or "")]
    assert answers == ["s3", "s3"]  # both answers arrived before the close was sent, under the expect step


async def _tasked_replay(toy: ToyGateway, toy_b: ToyGateway) -> tuple[list[Observation], Observation]:
    """Record connect / ``tasked`` / close on ``toy`` (one completed task upsert before the res), replay it on
    ``toy_b``; returns the replayed task events and the replayer's close."""
    sc = parse_text("scenarios:\n  - id: t\n    steps:\n      - ws_connect: {conn: c1}\n"
                    "      - ws_rpc: {conn: c1, method: tasked, id: t1}\n"
                    "      - ws_close: {conn: c1}\n", "t.yaml")[0]
    buf = io.StringIO()
    assert (await run_scenario(sc, Target(url=toy.url, token=toy.token), stream=buf)).ok
    recorded = read_trace(io.StringIO(buf.getvalue()))
    assert sum('"task"' in (o.data or "") for o in recorded.observations) == 1
    out = await replay_trace(recorded, Target(url=toy_b.url, token=toy_b.token), leg=Leg.CANDIDATE)
    tasks = [o for o in out.observations if o.dir is Direction.S2C and '"task"' in (o.data or "")]
    close = next(o for o in out.observations if o.dir is Direction.C2S and o.kind is Kind.WS_CLOSE)
    return tasks, close


async def test_an_expected_event_trailing_the_last_answer_is_still_captured(toy: ToyGateway, toy_b: ToyGateway) -> None:
    # Replayed on a target that sends the task event 1 s AFTER the res (what the legacy's agent runs do on a
    # loaded machine): the replay must not end the step at the res.
    toy_b.task_after_s = 1.0
    tasks, close = await _tasked_replay(toy, toy_b)
    assert len(tasks) == 1
    assert tasks[0].t < close.t  # captured under its step, before the replay closed the connection


async def test_progress_upserts_do_not_stand_in_for_the_final_one(toy: ToyGateway, toy_b: ToyGateway) -> None:
    # Replayed on a target that first sends 3 running upserts (progress updates, whose number varies run to run)
    # and the completed one 1 s after the res: the running ones must not count as the expected task event, or the
    # replay closes before the completed one arrives.
    toy_b.task_running, toy_b.task_after_s = 3, 1.0
    tasks, close = await _tasked_replay(toy, toy_b)
    assert ['"completed"' in (o.data or "") for o in tasks] == [False, False, False, True]
    assert tasks[-1].t < close.t  # the completed upsert was waited for


# --- against the real legacy -------------------------------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def _outcomes(tr: Trace) -> list[tuple[str, object]]:
    """Per observation that matters: connect/res ok flags, close codes, HTTP statuses (per connection order)."""
    out: list[tuple[str, object]] = []
    for o in tr.observations:
        if o.kind is Kind.HTTP_RESPONSE:
            out.append((o.conn, o.status))
        elif o.kind is Kind.WS_CLOSE and o.dir is Direction.S2C:
            out.append((o.conn, o.code))
        elif o.kind is Kind.WS_TEXT and o.dir is Direction.S2C and (o.data or "").startswith('{"type":"res"'):
            out.append((o.conn, json.loads(o.data or "{}").get("ok")))
    return sorted(out, key=lambda x: x[0])


@pytest.mark.parametrize("sid", [
    "ws-connect-device-v3", "ws-connect-device-v3-family", "ws-connect-wrong-token", "ws-connect-bogus-device",
    "ws-second-connect", "ws-chat-send-turn", "hooks-wake-ok-bearer", "hooks-wake-coalesced", "tools-invoke-ok",
    "v1-models", "ws-preauth-oversize",
])
async def test_golden_traces_replay_against_the_legacy_with_the_same_outcomes(legacy: Any, sid: str) -> None:
    with (GOLDEN / f"{sid}.jsonl").open() as f:
        golden = read_trace(f, strict=True)
    target = Target(url=legacy.http_url, token=legacy.token, hook_token=legacy.hook_token, name="legacy")
    out = await replay_trace(golden, target, leg=Leg.LEGACY)
    assert out.complete, out.error
    # A re-signed device connect is accepted by the real gateway; every status and close code is reproduced.
    assert _outcomes(out) == _outcomes(golden)
    text = "\n".join(json.dumps(o.to_json()) for o in out.observations)
    assert legacy.token not in text and legacy.hook_token not in text
