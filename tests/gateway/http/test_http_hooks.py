"""Webhooks on the candidate: check order, auth + limiter, wake coalescing, agent runs, mappings, provider 502."""

from __future__ import annotations

import re
import socket
import uuid
from typing import Any

import pytest
from h4b_support import Candidate, CandidateFactory, offline_config

from gateway.app import SESSIONS_KEY
from gateway.http.hook_mappings import HookMapping, TemplateContext, apply_mappings, render_template
from gateway.http.hooks import HOOKS_KEY, HookAuthLimiter

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def expect(capture: dict[str, Any], name: str) -> tuple[int, str]:
    return capture[name]["status"], capture[name]["body"]


async def test_check_order_and_texts_match_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    c, H = candidate.client, candidate.hook_auth
    cases = [
        ("hk_noauth", "POST", "/hooks/wake", {}, {"json": {"text": "ping"}}),
        ("hk_gwtoken", "POST", "/hooks/wake", candidate.auth, {"json": {"text": "ping"}}),
        ("hk_query", "POST", "/hooks/wake?token=" + candidate.hook_token, H, {"json": {"text": "ping"}}),
        ("hk_get", "GET", "/hooks/wake", H, {}),
        ("hk_badjson", "POST", "/hooks/wake", H, {"data": b"{nope"}),
        ("hk_notext", "POST", "/hooks/wake", H, {"json": {"text": ""}}),
        ("hk_big", "POST", "/hooks/wake", H, {"data": b'{"text":"' + b"a" * 300 * 1024 + b'"}'}),
        ("hk_base", "POST", "/hooks", H, {"json": {}}),
        ("hk_unknown", "POST", "/hooks/unknown-mapping", H, {"json": {}}),
        ("hk_agent_nomsg", "POST", "/hooks/agent", H, {"json": {"name": "Probe"}}),
        ("hk_agent_badagent", "POST", "/hooks/agent", H, {"json": {"message": "m", "agentId": "nope"}}),
    ]
    for name, method, path, headers, kw in cases:
        r = await c.request(method, path, headers=headers, **kw)
        assert (r.status, await r.text()) == expect(legacy_capture, name), name
        legacy_ct = dict(legacy_capture[name]["headers"]).get("Content-Type")
        assert r.headers.get("Content-Type") == legacy_ct, name
        if name == "hk_get":
            assert r.headers["Allow"] == "POST"
        if name == "hk_big":  # the legacy's request rejection closes the connection
            assert r.headers["Connection"] == dict(legacy_capture[name]["headers"])["Connection"] == "close"


async def test_wake_queued_then_coalesced(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    c = candidate.client
    first = await c.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "ping"})
    again = await c.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "ping"})
    xtok = await c.post("/hooks/wake", headers={"X-OpenClaw-Token": candidate.hook_token},
                        json={"text": "ping2", "mode": "next-heartbeat"})
    assert (first.status, await first.text()) == expect(legacy_capture, "hk_wake")
    assert (again.status, await again.text()) == expect(legacy_capture, "hk_wake2")
    assert (xtok.status, await xtok.text()) == expect(legacy_capture, "hk_wake_xtok")
    r = await c.post("/hooks/wake", headers=candidate.hook_auth, data=b"")  # no body: {} -> text required
    assert (r.status, await r.json()) == (400, {"ok": False, "error": "text required"})


async def test_limiter_locks_after_20_failures_but_valid_token_still_works(
        candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    c = candidate.client
    for i in range(20):
        r = await c.post("/hooks/wake", headers={"Authorization": "Bearer bad"}, json={"text": "x"})
        assert r.status == 401, i
    r = await c.post("/hooks/wake", headers={"Authorization": "Bearer bad"}, json={"text": "x"})
    assert (r.status, await r.text()) == expect(legacy_capture, "hk_fail_20")
    assert r.headers["Retry-After"] == dict(legacy_capture["hk_fail_20"]["headers"])["Retry-After"] == "60"
    r = await c.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "zz"})
    assert (r.status, await r.json()) == (200, {"ok": True, "mode": "now", "eventOutcome": "queued"})


def test_limiter_window_and_lockout_expire() -> None:
    now = [0.0]
    lim = HookAuthLimiter(clock=lambda: now[0])
    for _ in range(19):
        lim.record_failure("1.2.3.4")
    assert lim.retry_after_s("1.2.3.4") is None
    now[0] = 61.0  # old failures leave the window
    lim.record_failure("1.2.3.4")
    assert lim.retry_after_s("1.2.3.4") is None
    for _ in range(19):
        lim.record_failure("1.2.3.4")
    assert lim.retry_after_s("1.2.3.4") == 60
    now[0] = 121.5
    assert lim.retry_after_s("1.2.3.4") is None


async def test_agent_runs_a_real_turn(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/hooks/agent", headers=candidate.hook_auth,
                                    json={"message": "hello from probe", "name": "Probe", "deliver": False,
                                          "waitForCompletion": True})
    body = await r.json()
    legacy = legacy_capture["hk_agent_wait"]
    assert r.status == legacy["status"] == 200
    import json

    legacy_body = json.loads(legacy["body"])
    assert body["completion"] == legacy_body["completion"]
    assert set(body) == set(legacy_body)
    uuid.UUID(body["runId"])
    rows = candidate.app[SESSIONS_KEY].list("main")
    hook_rows = [row for row in rows if row["key"].startswith("agent:main:cron:")]
    assert len(hook_rows) == 1
    history = candidate.app[SESSIONS_KEY].history(hook_rows[0]["key"])
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[1]["content"][0]["text"] == "PONG from fake model"


async def test_agent_without_wait_answers_run_id(candidate: Candidate) -> None:
    r = await candidate.client.post("/hooks/agent", headers=candidate.hook_auth, json={"message": "m"})
    body = await r.json()
    assert r.status == 200 and set(body) == {"ok", "runId"}
    r = await candidate.client.post("/hooks/agent", headers=candidate.hook_auth,
                                    json={"message": "m", "waitForCompletion": "yes"})
    assert await r.json() == {"ok": False, "error": "waitForCompletion must be boolean"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_agent_502_when_provider_down_and_stays_cached(candidate_factory: CandidateFactory) -> None:
    from parity.legacy import FakeModelServer

    port = _free_port()
    data = offline_config(f"http://127.0.0.1:{port}/v1", "t" * 48, "h" * 48)
    async with candidate_factory(replace=data) as c:
        r = await c.client.post("/hooks/agent", headers={"Authorization": "Bearer " + "h" * 48},
                                json={"message": "m"})
        body = await r.json()
        assert r.status == 502
        assert body["error"] == "hook agent run failed before entering the agent runner" and body["ok"] is False
        with FakeModelServer(port=port):
            r = await c.client.post("/hooks/agent", headers={"Authorization": "Bearer " + "h" * 48},
                                    json={"message": "m"})
            assert r.status == 502  # the failed preflight is cached for 5 minutes, as in the legacy (§1.9)


async def test_mapping_renders_templates_and_queues(candidate_factory: CandidateFactory) -> None:
    mapping = {"id": "gh", "match": {"path": "github"}, "action": "wake",
               "textTemplate": "gh {{payload.x}} {{headers.x-y}} {{query.q}} {{path}}"}
    async with candidate_factory({"hooks": {"mappings": [mapping]}}) as c:
        r = await c.client.post("/hooks/github?q=qq", headers={**c.hook_auth, "X-Y": "hy"}, json={"x": "px"})
        assert (r.status, await r.json()) == (200, {"ok": True, "mode": "now", "eventOutcome": "queued"})
        # the rendered text is queued for the main session, then handed to the heartbeat turn 250 ms later
        import asyncio

        queued = c.app[HOOKS_KEY].wakes.queues.get("agent:main:main")
        for _ in range(200):
            history = c.app[SESSIONS_KEY].history("main")
            if history:
                break
            await asyncio.sleep(0.05)
        seen = queued or history[0]["content"]
        assert "gh px hy qq github" in (seen if isinstance(seen, str) else seen[0])
        r = await c.client.post("/hooks/gitlab", headers=c.hook_auth, json={})
        assert (r.status, await r.text()) == (404, "Not Found")


@pytest.mark.parametrize(("template", "expected"), [
    ("{{payload.a.b[1]}}", "y"), ("{{a.b}}", '["x","y"]'), ("{{ payload.n }}", "3"), ("{{payload.t}}", "true"),
    ("{{payload.__proto__}}", ""), ("{{payload.missing}}!", "!"), ("{{path}}/{{query.q}}", "p/1"),
    ("{{headers.h}}", "hv"), ("{{now}}", "2026-11-23T00:00:00.000Z"),
])
def test_render_template(template: str, expected: str) -> None:
    ctx = TemplateContext({"a": {"b": ["x", "y"]}, "n": 3, "t": True}, {"h": "hv"}, {"q": "1"}, "p",
                          "2026-11-23T00:00:00.000Z")
    assert render_template(template, ctx) == expected


def test_mapping_first_match_and_validation() -> None:
    maps = [HookMapping.from_config({"match": {"source": "s1"}, "action": "wake", "textTemplate": "one"}, 0),
            HookMapping.from_config({"match": {"path": "p"}, "messageTemplate": "{{payload.m}}"}, 1)]
    ctx = TemplateContext({"source": "s1"}, {}, {}, "p", "now")
    got = apply_mappings(maps, ctx)
    assert got is not None and got.ok and got.actions[0].kind == "wake" and got.actions[0].mapping_id == "mapping-1"
    got = apply_mappings(maps, TemplateContext({}, {}, {}, "p", "now"))
    assert got is not None and not got.ok and got.error == "hook mapping requires message"
    assert apply_mappings(maps, TemplateContext({}, {}, {}, "other", "now")) is None
    fan = HookMapping.from_config({"forEach": "items", "messageTemplate": "{{payload.items[0]}}"}, 0)
    got = apply_mappings([fan], TemplateContext({"items": list(range(205))}, {}, {}, "x", "now"))
    assert got is not None and got.fanout and len(got.actions) == 200 and got.dropped == 5
    assert got.actions[7].message == "7"


async def test_random_hook_bodies_get_legacy_answers(candidate: Candidate) -> None:
    """Hypothesis: arbitrary bytes/JSON to /hooks/wake and /hooks/agent: a 200/400 JSON answer, never 5xx or a hang."""
    import json as _json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                              st.sampled_from(["text", "mode", "agentId", "sessionKey", "name", "deliver",
                                               "sessionMode", "model", "waitForCompletion"]), inner, max_size=5),
                          max_leaves=12)
    bodies: list[bytes] = []

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(values.map(lambda v: _json.dumps(v).encode()), st.binary(max_size=48)))
    def collect(body: bytes) -> None:
        bodies.append(body)

    collect()
    for body in bodies:
        for path in ("/hooks/wake", "/hooks/agent"):
            r = await candidate.client.post(path, headers=candidate.hook_auth, data=body)
            assert r.status in (200, 400), (path, body, r.status, await r.text())
            assert r.headers["Content-Type"] == "application/json; charset=utf-8"
            payload = await r.json()
            assert payload["ok"] is (r.status == 200)


async def test_agent_idempotency_key_replays_the_run(candidate: Candidate) -> None:
    c, H = candidate.client, candidate.hook_auth
    first = await (await c.post("/hooks/agent", headers=H, json={"message": "m", "idempotencyKey": "k1",
                                                                 "waitForCompletion": True})).json()
    again = await (await c.post("/hooks/agent", headers={**H, "Idempotency-Key": "k1"},
                                json={"message": "m", "waitForCompletion": True})).json()
    other = await (await c.post("/hooks/agent", headers=H, json={"message": "other", "idempotencyKey": "k1"})).json()
    plain = await (await c.post("/hooks/agent", headers=H, json={"message": "m"})).json()
    assert again == first and first["ok"]
    assert other["runId"] != first["runId"] and plain["runId"] != first["runId"]
    runs = [r for r in candidate.app[SESSIONS_KEY].list("main") if r["key"].startswith("agent:main:cron:")]
    assert len(runs) == 3  # the replay did not start a fourth turn


async def test_mapping_fanout_dispatches_every_item(candidate_factory: CandidateFactory) -> None:
    mapping = {"match": {"path": "batch"}, "forEach": "items", "messageTemplate": "item {{payload.items[0].n}}"}
    async with candidate_factory({"hooks": {"mappings": [mapping]}}) as c:
        r = await c.client.post("/hooks/batch", headers=c.hook_auth, json={"items": [{"n": 1}, {"n": 2}]})
        body = await r.json()
        assert r.status == 200 and body["ok"] and body["dispatched"] == 2 and body["runId"] == body["runIds"][0]
        r = await c.client.post("/hooks/batch", headers=c.hook_auth, json={"items": []})
        assert r.status == 204
        r = await c.client.post("/hooks/batch", headers=c.hook_auth, json={"items": [{"n": 3}]})
        body = await r.json()
        assert r.status == 200 and set(body) == {"ok", "runId"}


async def test_hook_run_events_name_the_run_session(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    """Hook agent runs broadcast agent/chat events like the legacy's isolated cron runs (recorded shapes)."""
    from gateway.app import STATE_KEY

    sent: list[tuple[str, dict[str, Any]]] = []
    state = candidate.app[STATE_KEY]
    original = state.broadcast

    def spy(event: str, payload: Any, **kw: Any) -> int:
        if event in ("agent", "chat"):
            sent.append((event, payload))
        return original(event, payload, **kw)

    state.broadcast = spy  # type: ignore[method-assign]
    r = await candidate.client.post("/hooks/agent", headers=candidate.hook_auth,
                                    json={"message": "hello", "deliver": False, "waitForCompletion": True})
    assert r.status == 200
    legacy = legacy_capture["http_run_events"]["hook_agent"]
    ours = [(e, p.get("stream") or p.get("state")) for e, p in sent]
    theirs = [(f["event"], f["payload"].get("stream") or f["payload"].get("state")) for f in legacy]
    assert ours == theirs
    key_shape = re.compile(rf"^agent:main:cron:{UUID}:run:{UUID}$")
    assert all(key_shape.match(p["sessionKey"]) for _, p in sent)
    assert all(key_shape.match(f["payload"]["sessionKey"]) for f in legacy)


async def test_wake_now_runs_a_heartbeat_like_the_legacy(candidate: Candidate, fake_model: Any) -> None:
    """Observed on the legacy: wake mode=now -> 250 ms later one hidden model turn on the main session, then a
    ``heartbeat`` event {status: skipped, reason: no-route, preview: reply} and ``last-heartbeat`` set."""
    import asyncio

    from gateway.app import STATE_KEY

    before = fake_model.request_count("POST /v1/chat/completions")
    r1 = await candidate.client.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "hb one"})
    r2 = await candidate.client.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "hb one"})
    assert [(await r.json())["eventOutcome"] for r in (r1, r2)] == ["queued", "coalesced"]
    state = candidate.app[STATE_KEY]
    for _ in range(200):
        if state.last_heartbeat is not None:
            break
        await asyncio.sleep(0.05)
    hb = state.last_heartbeat
    assert hb is not None
    assert {k: hb[k] for k in ("status", "preview", "reason", "hasMedia", "message")} == {
        "status": "skipped", "preview": "PONG from fake model", "reason": "no-route", "hasMedia": False,
        "message": "Heartbeat has no delivery route yet. Message your bot once, or set agents.defaults.heartbeat.target."}
    assert fake_model.request_count("POST /v1/chat/completions") == before + 1  # one turn for both wakes
    assert candidate.app[HOOKS_KEY].wakes.queues.get("agent:main:main") is None  # drained by the heartbeat
    r3 = await candidate.client.post("/hooks/wake", headers=candidate.hook_auth, json={"text": "hb one"})
    assert (await r3.json())["eventOutcome"] == "queued"
    history = candidate.app[SESSIONS_KEY].history("main")
    assert [m["role"] for m in history] == ["user", "assistant"] and "System: hb one" in history[0]["content"]
