"""``POST /tools/invoke`` on the candidate: auth, errors and real tool results, against the legacy's recording."""

from __future__ import annotations

import json
import time
from typing import Any

from h4b_support import Candidate, CandidateFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

JSON_TYPE = "application/json; charset=utf-8"


async def test_get_is_405_allow_post(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.get("/tools/invoke", headers=candidate.auth)
    assert (r.status, await r.text()) == (405, legacy_capture["ti_get"]["body"])
    assert r.headers["Allow"] == "POST"


async def test_wrong_bearer_is_401_after_delay(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    start = time.monotonic()
    r = await candidate.client.post("/tools/invoke", headers={"Authorization": "Bearer nope"},
                                    json={"tool": "sessions_list"})
    assert (r.status, await r.text()) == (401, legacy_capture["ti_wrong"]["body"])
    assert time.monotonic() - start >= 0.25  # the legacy's wrong-secret delay is a floor, not a speed target


async def test_password_mode_accepts_password_as_bearer(candidate_factory: CandidateFactory) -> None:
    over = {"gateway": {"auth": {"mode": "password", "password": "pw-" + "x" * 20}}}
    async with candidate_factory(over) as c:
        r = await c.client.post("/tools/invoke", headers={"Authorization": "Bearer pw-" + "x" * 20},
                                json={"tool": "sessions_list"})
        assert r.status == 200
        r = await c.client.post("/tools/invoke", headers=c.auth, json={"tool": "sessions_list"})
        assert r.status == 401


async def test_rate_limited_with_retry_after(candidate_factory: CandidateFactory) -> None:
    over = {"gateway": {"auth": {"rateLimit": {"maxAttempts": 3, "exemptLoopback": False}}}}
    async with candidate_factory(over) as c:
        for _ in range(3):
            r = await c.client.post("/tools/invoke", headers={"Authorization": "Bearer bad"}, json={})
            assert r.status == 401
        r = await c.client.post("/tools/invoke", headers={"Authorization": "Bearer bad"}, json={})
        assert r.status == 429
        assert int(r.headers["Retry-After"]) > 0
        body = await r.json()
        assert body == {"error": {"message": "Too many failed authentication attempts. Please try again later.",
                                  "type": "rate_limited"}}


async def test_error_bodies_match_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    cases = [
        ("ti_badjson", {"data": b"{nope"}), ("ti_noname", {"json": {"args": {}}}), ("ti_empty", {"data": b""}),
        ("ti_array", {"data": b"[1]"}), ("ti_unknown", {"json": {"tool": "no_such_tool"}}),
        ("ti_exec", {"json": {"tool": "exec", "args": {"command": "id"}}}),
    ]
    for name, kw in cases:
        r = await candidate.client.post("/tools/invoke", headers=candidate.auth, **kw)
        assert r.status == legacy_capture[name]["status"], name
        assert await r.text() == legacy_capture[name]["body"], name
        assert r.headers["Content-Type"] == JSON_TYPE


async def test_sessions_list_reads_real_store_after_a_turn(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/tools/invoke", headers=candidate.auth, json={"tool": "sessions_list", "args": {}})
    assert r.status == 200
    assert await r.json() == {"ok": True, "result": {
        "content": [{"type": "text", "text": json.dumps(
            {"count": 0, "sessions": [], "hasMore": False, "limitApplied": 100}, indent=2)}],
        "details": {"count": 0, "sessions": [], "hasMore": False, "limitApplied": 100}}}
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth,
                                    json={"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 200
    r = await candidate.client.post("/tools/invoke", headers=candidate.auth, json={"name": "sessions_list",
                                                                                  "tool": "ignored"})
    body = await r.json()
    details = body["result"]["details"]
    assert details["count"] == 1
    row = details["sessions"][0]
    assert row["key"].startswith("agent:main:openai:")
    assert body["result"]["content"][0]["text"] == json.dumps(details, indent=2, ensure_ascii=False)
    legacy_rows = json.loads(legacy_capture["ti_list"]["body"])["result"]["details"]["sessions"]
    legacy_openai = next(s for s in legacy_rows if s["key"].startswith("agent:main:openai:"))
    assert list(row) == list(legacy_openai)
    for k in ("agentId", "kind", "channel", "archived", "pinned", "model", "contextTokens", "totalTokens", "status",
              "abortedLastRun"):
        assert row[k] == legacy_openai[k], k


async def test_config_deny_hides_a_tool(candidate_factory: CandidateFactory) -> None:
    async with candidate_factory({"gateway": {"tools": {"deny": ["sessions_list"]}}}) as c:
        r = await c.client.post("/tools/invoke", headers=c.auth, json={"tool": "sessions_list"})
        assert r.status == 404
        assert await r.json() == {"ok": False, "error": {"type": "not_found",
                                                         "message": "Tool not available: sessions_list"}}


async def test_unknown_agent_is_400(candidate: Candidate) -> None:
    r = await candidate.client.post("/tools/invoke", headers=candidate.auth,
                                    json={"tool": "sessions_list", "agentId": "nope"})
    assert r.status == 400
    assert await r.json() == {"ok": False, "error": {"type": "invalid_request", "message": 'Unknown agent id "nope"'}}


async def test_bad_tool_args_are_400_tool_error(candidate: Candidate) -> None:
    r = await candidate.client.post("/tools/invoke", headers=candidate.auth,
                                    json={"tool": "sessions_list", "args": {"limit": "many"}})
    assert r.status == 400
    assert await r.json() == {"ok": False, "error": {"type": "tool_error", "message": "limit must be a number"}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["name", "tool", "args", "action", "sessionKey", "agentId", "x"]), inner, max_size=5),
    max_leaves=20,
)


async def test_random_bodies_never_crash(candidate: Candidate) -> None:
    """Hypothesis: arbitrary JSON and raw bytes get one of the legacy's answers, never a 500 or a hang."""
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
    def run(body: bytes) -> None:
        bodies.append(body)

    bodies: list[bytes] = []
    run()
    for body in bodies:
        r = await candidate.client.post("/tools/invoke", headers=candidate.auth, data=body)
        assert r.status in (200, 400, 404), (body, r.status)
        assert r.headers["Content-Type"] == JSON_TYPE
        payload = await r.json()
        assert ("ok" in payload) or payload["error"]["type"] == "invalid_request_error"
    assert len(bodies) >= 20


async def test_hook_run_sessions_list_like_the_legacys_cron_rows(candidate: Candidate,
                                                                 legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/hooks/agent", headers=candidate.hook_auth,
                                    json={"message": "m", "deliver": False, "waitForCompletion": True})
    assert r.status == 200
    r = await candidate.client.post("/tools/invoke", headers=candidate.auth, json={"tool": "sessions_list"})
    row = (await r.json())["result"]["details"]["sessions"][0]
    legacy_rows = json.loads(legacy_capture["ti_list_after"]["body"])["result"]["details"]["sessions"]
    legacy_cron = next(s for s in legacy_rows if s["kind"] == "cron")
    assert list(row) == list(legacy_cron)
    for k in ("kind", "channel", "createdActor", "model", "contextTokens", "totalTokens", "archived", "pinned"):
        assert row[k] == legacy_cron[k], k
