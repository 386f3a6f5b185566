"""OpenAI-compatible endpoints on the candidate, compared with the legacy's recorded answers (ids/times normalized)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from h4b_support import Candidate

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HI = {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}


def normalize(text: str) -> str:
    """Only what differs between two legacy runs by construction (reference §8): ids and unix-second times."""
    text = re.sub(rf"(chatcmpl|resp|msg)_{UUID}", r"\1_<uuid>", text)
    return re.sub(r'"(created|created_at)":\d+', r'"\1":0', text)


def sse_data(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


def sse_events(text: str) -> list[str]:
    return [line[7:] for line in text.split("\n") if line.startswith("event: ")]


async def test_models_list_and_detail(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    c = candidate.client
    for path, name in (("/v1/models", "models"), ("/v1/models/openclaw", "model_one"),
                       ("/v1/models/openclaw/nope", "model_missing")):
        r = await c.get(path, headers=candidate.auth)
        assert (r.status, await r.text()) == (legacy_capture[name]["status"], legacy_capture[name]["body"]), path
    r = await c.post("/v1/models", headers=candidate.auth)
    assert (r.status, r.headers["Allow"]) == (405, "GET")
    r = await c.get("/v1/models/bogus%20id", headers=candidate.auth)
    assert (r.status, await r.json()) == (400, {"error": {"message": "Invalid model id.",
                                                          "type": "invalid_request_error"}})


async def test_chat_completion_plain_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth, json=HI)
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    assert normalize(await r.text()) == normalize(legacy_capture["cc"]["body"])


@pytest.mark.parametrize(("name", "extra"), [("cc_stream", {}),
                                             ("cc_stream_usage", {"stream_options": {"include_usage": True}})])
async def test_chat_completion_stream_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any],
                                                     name: str, extra: dict[str, Any]) -> None:
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth,
                                    json={**HI, "stream": True, **extra})
    assert r.status == 200
    legacy_headers = dict(legacy_capture[name]["headers"])
    for h in ("Content-Type", "Cache-Control", "Connection"):
        assert r.headers[h] == legacy_headers[h], h
    ours = [normalize(d) for d in sse_data(await r.text())]
    theirs = [normalize(d) for d in sse_data(legacy_capture[name]["body"])]
    assert ours == theirs


async def test_responses_plain_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/v1/responses", headers=candidate.auth, json={"model": "openclaw", "input": "hi"})
    assert r.status == 200
    assert normalize(await r.text()) == normalize(legacy_capture["resp"]["body"])


async def test_responses_stream_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    r = await candidate.client.post("/v1/responses", headers=candidate.auth,
                                    json={"model": "openclaw", "input": "hi", "stream": True})
    text = await r.text()
    legacy = legacy_capture["resp_stream"]["body"]
    assert sse_events(text) == sse_events(legacy)
    assert [normalize(d) for d in sse_data(text)] == [normalize(d) for d in sse_data(legacy)]


async def test_error_texts_match_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    cases = [
        ("cc_get", "GET", "/v1/chat/completions", {}), ("cc_badjson", "POST", "/v1/chat/completions", {"data": b"{nope"}),
        ("cc_nomsg", "POST", "/v1/chat/completions", {"json": {"model": "openclaw", "messages": []}}),
        ("cc_badtype", "POST", "/v1/chat/completions", {"json": {"model": 5}}),
        ("resp_noinput", "POST", "/v1/responses", {"json": {"model": "openclaw"}}),
    ]
    for name, method, path, kw in cases:
        r = await candidate.client.request(method, path, headers=candidate.auth, **kw)
        assert (r.status, await r.text()) == (legacy_capture[name]["status"], legacy_capture[name]["body"]), name


@pytest.mark.parametrize(("body", "message"), [
    ({"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]},
     "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`."),
    ({"model": "openclaw/other", "messages": [{"role": "user", "content": "x"}]}, "Unknown agent 'other'."),
    ({"max_tokens": 0}, "max_tokens: Too small: expected number to be >0"),
    ({"max_tokens": 1.5}, "max_tokens: Invalid input: expected int, received number"),
    ({"stream": "yes"}, "stream: Invalid input: expected boolean, received string"),
    ([1], ": Invalid input: expected object, received array"),
    ({"response_format": {"type": "xml"}, "messages": [{"role": "user", "content": "x"}]},
     "Invalid response_format: response_format.type must be text, json_object, or json_schema"),
])
async def test_chat_validation_texts(candidate: Candidate, body: Any, message: str) -> None:
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth, data=json.dumps(body))
    assert (r.status, await r.json()) == (400, {"error": {"message": message, "type": "invalid_request_error"}})


async def test_reserved_session_key_header_is_400(candidate: Candidate) -> None:
    r = await candidate.client.post("/v1/chat/completions",
                                    headers={**candidate.auth, "x-openclaw-session-key": "cron:x"}, json=HI)
    assert r.status == 400
    assert (await r.json())["error"]["message"] == (
        "`x-openclaw-session-key` cannot use reserved internal session namespaces.")


async def test_user_field_keeps_one_session(candidate: Candidate) -> None:
    from gateway.app import SESSIONS_KEY

    for _ in range(2):
        r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth, json={**HI, "user": "u1"})
        assert r.status == 200
    history = candidate.app[SESSIONS_KEY].history("agent:main:openai-user:u1")
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]


async def test_stream_client_leaving_early_does_not_break_the_server(candidate: Candidate) -> None:
    resp = await candidate.client.post("/v1/chat/completions", headers=candidate.auth, json={**HI, "stream": True})
    first = await resp.content.readline()
    assert first.startswith(b"data: ")
    resp.close()  # drop the connection mid-stream
    r = await candidate.client.get("/healthz")
    assert r.status == 200
    r = await candidate.client.post("/v1/chat/completions", headers=candidate.auth, json=HI)
    assert r.status == 200 and (await r.json())["choices"][0]["message"]["content"] == "PONG from fake model"
