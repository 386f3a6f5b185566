"""The openclaw profile: volatile fields of reference §8 hidden, real differences kept, labels bounded,
write policies, SSE lifting, every rule carrying a reason."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from wire.frames import parse_frame
from wire.model import Direction, Event, Kind, Observation, SseEvent
from wire.normalize import Context, When, apply
from wire.profiles.base import OTHER, Profile, WritePolicy
from wire.profiles.openclaw import OPENCLAW, RULES, get_profile, lift_sse
from wire.redact import Redactor

UUID1 = "f51daa81-7691-437b-b783-d7350bba0998"
UUID2 = "0c8f6a2e-1d5b-4f7e-9a3c-2b1e4d6f8a90"


def norm(doc: Any, **ctx: str) -> Any:
    return apply(RULES, doc, Context(**ctx))


def test_every_rule_has_a_reason_citing_the_reference() -> None:
    def walk(rules: Any) -> Any:
        for r in rules:
            yield r
            if isinstance(r, When):
                yield from walk(r.rules)

    for rule in walk(RULES):
        assert "ref §" in rule.reason, rule


def hello(conn_id: str, boot: str, ts: int, token: str, methods: list[str]) -> dict[str, Any]:
    return {"type": "res", "id": "1", "ok": True, "payload": {
        "type": "hello-ok", "protocol": 4,
        "server": {"version": "2026.9.6", "buildId": "b", "bootId": boot, "connId": conn_id},
        "features": {"methods": methods, "events": ["tick", "chat"], "capabilities": []},
        "auth": {"method": "token", "role": "operator", "scopes": ["operator.read"], "deviceToken": token,
                 "issuedAtMs": ts},
        "policy": {"maxPayload": 26214400, "attachments": {"maxBytes": ts, "maxImageBytes": 6291456}},
        "pluginSurfaceUrls": {"canvas": f"http://127.0.0.1:{ts % 60000}/__openclaw__/cap/{token}"},
        "snapshot": {"uptimeMs": ts, "stateVersion": {"presence": ts, "health": 1}, "health": {"ts": ts},
                     "presence": [{"host": f"h{ts}", "ip": "1", "platform": "linux", "instanceId": token,
                                   "text": "x", "ts": ts, "mode": "gateway"}],
                     "appliedConfigHash": f"hmac:{ts}", "configPath": f"/tmp/{ts}/c.json", "stateDir": f"/s/{ts}",
                     "sessionDefaults": {"mainKey": "main"}},
    }}


def test_hello_ok_volatile_fields_are_hidden_but_real_fields_kept() -> None:
    a = norm(hello(UUID1, UUID2, 1000, "tokA", ["health", "status"]), method="connect")
    b = norm(hello(UUID2, UUID1, 2000, "tokB", ["status", "health"]), method="connect")
    assert a == b
    c = hello(UUID1, UUID2, 1000, "tokA", ["health"])  # a missing method is a real difference
    assert norm(c, method="connect") != a
    d = hello(UUID1, UUID2, 1000, "tokA", ["health", "status"])
    d["payload"]["snapshot"]["sessionDefaults"]["mainKey"] = "other"
    assert norm(d, method="connect") != a
    d2 = hello(UUID1, UUID2, 1000, "tokA", ["health", "status"])
    d2["payload"]["snapshot"]["presence"][0]["mode"] = "node"
    assert norm(d2, method="connect") != a


def test_challenge_nonce_and_ts() -> None:
    def ch(nonce: str, ts: int) -> dict[str, Any]:
        return {"type": "event", "event": "connect.challenge",
                "payload": {"nonce": nonce, "ts": ts, "capabilities": ["model-catalog-snapshot"]}}

    assert norm(ch(UUID1, 1), event="connect.challenge") == norm(ch(UUID2, 2), event="connect.challenge")
    other = ch(UUID1, 1)
    other["payload"]["capabilities"] = []
    assert norm(other, event="connect.challenge") != norm(ch(UUID1, 1), event="connect.challenge")


def test_seq_and_state_version_are_monotonic_not_compared() -> None:
    a = {"type": "event", "event": "chat", "seq": 3, "stateVersion": {"presence": 1, "health": 2},
         "payload": {"seq": 1, "state": "delta", "runId": UUID1}}
    b = {"type": "event", "event": "chat", "seq": 9, "stateVersion": {"presence": 5, "health": 7},
         "payload": {"seq": 4, "state": "delta", "runId": UUID2}}
    assert norm(a, event="chat") == norm(b, event="chat")
    b["payload"]["state"] = "final"
    assert norm(a, event="chat") != norm(b, event="chat")


@pytest.mark.parametrize(
    ("a", "b", "ctx"),
    [
        ({"payload": {"ts": 1, "durationMs": 4, "eventLoop": {"x": 1}, "pid": 1}},
         {"payload": {"ts": 2, "durationMs": 9, "eventLoop": {"x": 2}, "pid": 2}}, {"method": "health"}),
        ({"body": {"id": f"chatcmpl_{UUID1}", "created": 1, "usage": {"total_tokens": 4}}},
         {"body": {"id": f"chatcmpl_{UUID2}", "created": 2, "usage": {"total_tokens": 5}}},
         {"route": "POST /v1/chat/completions"}),
        ({"body": {"ok": True, "runId": UUID1}}, {"body": {"ok": True, "runId": UUID2}}, {"route": "POST /hooks/agent"}),
        ({"body": {"sessionKey": f"hook:{UUID1}"}}, {"body": {"sessionKey": f"hook:{UUID2}"}}, {}),
        ({"payload": {"path": "/tmp/a/sessions.db", "hash": "1"}}, {"payload": {"path": "/var/b/x", "hash": "2"}}, {}),
        ({"headers": {"date": "Mon", "connection": "keep-alive", "keep-alive": "timeout=5", "content-length": "12"}},
         {"headers": {"date": "Tue", "transfer-encoding": "chunked"}}, {}),
        ({"body": {"error": {"message": "Expected property name or '}' in JSON at position 1 (line 1 column 2)",
                             "type": "invalid_request_error"}}},
         {"body": {"error": {"message": "Unexpected token n in JSON at position 1", "type": "invalid_request_error"}}},
         {}),
        ({"body": {"ok": False, "error": "Expected property name or '}' in JSON at position 1"}},
         {"body": {"ok": False, "error": "Unexpected end of JSON input"}}, {}),
        ({"error": {"code": "INVALID_REQUEST", "message": "invalid connect params: at /client/id: must be equal"}},
         {"error": {"code": "INVALID_REQUEST", "message": "invalid connect params: client.id is not allowed"}}, {}),
        ({"close": {"code": 1008, "reason": "invalid request frame: at root: x"}},
         {"close": {"code": 1008, "reason": "invalid request frame: something else"}}, {}),
        ({"payload": {"deviceId": "a", "publicKey": "k"}}, {"payload": {"deviceId": "b", "publicKey": "j"}},
         {"method": "gateway.identity.get"}),
        ({"payload": {"plugins": {"loaded": ["a", "b"]}, "channelOrder": ["x", "y"]}},
         {"payload": {"plugins": {"loaded": ["b", "a"]}, "channelOrder": ["y", "x"]}}, {}),
        ({"payload": {"data": {"itemId": f"{UUID1}:1"}}}, {"payload": {"data": {"itemId": f"{UUID2}:1"}}},
         {"event": "agent"}),
        ({"payload": {"sessions": {"recent": [{"key": f"agent:main:cron:{UUID1}"}]}}},
         {"payload": {"sessions": {"recent": [{"key": f"agent:main:cron:{UUID2}"}]}}}, {"method": "health"}),
        ({"payload": {"sessions": {"recent": [{"flags": ["system", f"id:{UUID1}"]}]}}},
         {"payload": {"sessions": {"recent": [{"flags": ["system", f"id:{UUID2}"]}]}}}, {"method": "status"}),
    ],
)
def test_volatile_pairs_normalize_equal(a: Any, b: Any, ctx: dict[str, str]) -> None:
    assert norm(a, **ctx) == norm(b, **ctx)


@pytest.mark.parametrize(
    ("a", "b", "ctx"),
    [
        ({"payload": {"ok": True}}, {"payload": {"ok": False}}, {"method": "health"}),
        ({"payload": {"ts": 1}}, {"payload": {"ts": "1"}}, {"method": "health"}),  # a type change stays visible
        ({"payload": {"ts": 1}}, {"payload": {}}, {"method": "health"}),  # absence stays visible
        ({"body": {"id": "chatcmpl_x"}}, {"body": {"id": "chatcmpl_y"}}, {}),  # not a uuid: compared
        ({"error": {"message": "unknown method: x"}}, {"error": {"message": "unknown method: y"}}, {}),
        ({"headers": {"content-type": "application/json"}}, {"headers": {"content-type": "text/plain"}}, {}),
        ({"close": {"code": 1008, "reason": "device identity required"}},
         {"close": {"code": 1008, "reason": "pairing required"}}, {}),
        ({"body": {"error": "text required"}}, {"body": {"error": "message required"}}, {}),
        # the item ordinal after the run uuid, and a session key's kind and agent, are still compared
        ({"payload": {"data": {"itemId": f"{UUID1}:1"}}}, {"payload": {"data": {"itemId": f"{UUID2}:2"}}},
         {"event": "agent"}),
        ({"payload": {"key": f"agent:main:cron:{UUID1}"}}, {"payload": {"key": f"agent:ops:cron:{UUID2}"}}, {}),
        ({"payload": {"key": f"agent:main:parity-{UUID1}"}}, {"payload": {"key": f"agent:main:parity-{UUID2}"}}, {}),
        ({"payload": {"flags": [f"id:{UUID1}"]}}, {"payload": {"flags": ["system", f"id:{UUID2}"]}}, {}),
    ],
)
def test_real_differences_survive(a: Any, b: Any, ctx: dict[str, str]) -> None:
    assert norm(a, **ctx) != norm(b, **ctx)


def test_sse_chunk_boundaries_do_not_matter_but_text_and_fields_do() -> None:
    def chunk(text: str) -> SseEvent:
        return SseEvent(event="message", data=json.dumps({"object": "chunk", "choices": [{"delta": {"content": text}}]}))

    two = (chunk("PONG"), chunk(" from fake model"), SseEvent(event="message", data="[DONE]"))
    one = (chunk("PONG from fake model"), SseEvent(event="message", data="[DONE]"))
    assert lift_sse(two) == lift_sse(one)
    assert lift_sse((chunk("PONG"), SseEvent(event="message", data="[DONE]"))) != lift_sse(one)
    responses = (SseEvent(event="response.output_text.delta", data='{"delta":"a"}'),
                 SseEvent(event="response.output_text.delta", data='{"delta":"b"}'))
    assert lift_sse(responses)["response.output_text.delta"]["text"] == "ab"
    odd = (SseEvent(event="message", data='["not", "an", "object"]'),)
    assert lift_sse(odd) == {"message": {"text": "", "frames": [["not", "an", "object"]]}}


def test_labels_are_bounded() -> None:
    assert OPENCLAW.route_template("health") == "health"
    assert OPENCLAW.route_template("connect") == "connect"
    assert OPENCLAW.route_template("made.up.method") == OTHER
    assert OPENCLAW.route_template("POST", "/hooks/wake?x=1") == "POST /hooks/wake"
    assert OPENCLAW.route_template("POST", "/hooks/custom-mapping") == "POST /hooks/*"
    assert OPENCLAW.route_template("GET", "/healthz") == "GET /healthz"
    assert OPENCLAW.route_template("GET", "/some/spa/route/123") == "GET /<spa>"
    assert OPENCLAW.route_template("DELETE", "/random/999") == OTHER
    assert OPENCLAW.event_label("chat") == "chat" and OPENCLAW.event_label("nope") == OTHER


@pytest.mark.parametrize(
    ("name", "policy"),
    [
        ("health", WritePolicy.MIRROR), ("sessions.list", WritePolicy.MIRROR), ("config.get", WritePolicy.MIRROR),
        ("send", WritePolicy.SKIP), ("agent", WritePolicy.SKIP), ("chat.send", WritePolicy.SKIP),
        ("sessions.send", WritePolicy.SKIP), ("config.set", WritePolicy.SKIP), ("config.apply", WritePolicy.SKIP),
        ("config.patch", WritePolicy.SKIP), ("tts.setProvider", WritePolicy.SKIP), ("cron.add", WritePolicy.SKIP),
        ("POST /hooks/agent", WritePolicy.SKIP), ("POST /hooks/wake", WritePolicy.SKIP),
        ("POST /tools/invoke", WritePolicy.SKIP), ("GET /healthz", WritePolicy.MIRROR),
    ],
)
def test_write_policy(name: str, policy: WritePolicy) -> None:
    assert OPENCLAW.write_policy(name) is policy


def test_classify_redact_profile_lookup_and_layering() -> None:
    assert OPENCLAW.classify(parse_frame('{"type":"req","id":"1","method":"m"}')) == ("req", "1")
    assert OPENCLAW.classify(parse_frame('{"type":"res","id":"1","ok":true}')) == ("res", "1")
    assert OPENCLAW.classify(parse_frame('{"type":"event","event":"tick"}')) == ("event", "tick")
    assert OPENCLAW.classify(parse_frame("nope")) == ("other", "")
    assert isinstance(parse_frame('{"type":"event","event":"tick"}'), Event)
    assert get_profile("openclaw") is OPENCLAW
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")
    layered = OPENCLAW.with_rules(())
    assert layered.rules == OPENCLAW.rules and layered is not OPENCLAW
    for f in dataclasses.fields(Profile):  # every other field carries over (a forgotten one would reset to default)
        if f.name not in ("rules", "_normalizer"):
            assert getattr(layered, f.name) is getattr(OPENCLAW, f.name), f.name
    assert layered.normalizer is layered.normalizer
    prof = Profile(name="x", redactor=Redactor({"GW_TOKEN": "sekret"}))
    obs = Observation(t=0, conn="c", dir=Direction.C2S, kind=Kind.WS_TEXT, data='{"auth":{"token":"sekret"}}')
    assert "sekret" not in (prof.redact(obs).data or "")
    assert prof.write_policy("anything") is WritePolicy.MIRROR


def test_base_profile_default_sse_lift_joins_data_per_type() -> None:
    prof = Profile(name="plain")
    events = (SseEvent(event="a", data="1"), SseEvent(event="b", data="x"), SseEvent(event="a", data="2"))
    assert prof.lift_sse(events) == {"a": "12", "b": "x"}


def _event(name: str, payload: Any) -> Event:
    frame = parse_frame(json.dumps({"type": "event", "event": name, "payload": payload}))
    assert isinstance(frame, Event)
    return frame


def test_only_open_task_upserts_are_progress() -> None:
    """A/A: the number of ``running`` task upserts varies run to run; the final upsert is still compared."""
    assert OPENCLAW.progress(_event("task", {"action": "upserted", "task": {"id": UUID1, "status": "running"}}))
    assert OPENCLAW.progress(_event("task", {"action": "upserted", "task": {"id": UUID1, "status": "queued"}}))
    for status in ("completed", "failed", "cancelled", "timed_out", None):
        assert not OPENCLAW.progress(_event("task", {"action": "upserted", "task": {"id": UUID1, "status": status}}))
    assert not OPENCLAW.progress(_event("agent", {"task": {"status": "running"}}))  # another event name
    assert not OPENCLAW.progress(_event("task", "running"))  # a malformed payload is compared, never skipped
