"""The same HTTP requests against the real legacy (session fixture) and the candidate: equal status, body, headers.

Only what differs between two legacy runs by construction is normalized (reference §8: Date, ids, unix times).
Requests that would trip the legacy's hook limiter or depend on prior state are kept out; those are covered by the
recorded-answer tests next to this file.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
from h4b_support import Candidate

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HEADERS = ("Content-Type", "Cache-Control", "Allow", "X-Content-Type-Options", "Referrer-Policy",
           "Permissions-Policy", "X-Frame-Options", "Connection", "Keep-Alive", "Server", "WWW-Authenticate")

# (method, path, auth: "gw"|"hook"|None, body kwargs)
CASES: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("GET", "/healthz", None, {}), ("HEAD", "/health", None, {}), ("POST", "/readyz", None, {}),
    ("GET", "/healthz/sub", None, {}), ("POST", "/nowhere", None, {}), ("GET", "/x", None, {"accept": "application/json"}),
    ("GET", "/v1/nothing", "gw", {}), ("GET", "/v1/models", None, {}), ("GET", "/v1/models", "gw", {}),
    ("GET", "/v1/models/openclaw/main", "gw", {}), ("GET", "/v1/models/nope", "gw", {}),
    ("POST", "/v1/models", "gw", {}), ("GET", "/v1/chat/completions", "gw", {}),
    ("POST", "/v1/chat/completions", "gw", {"data": b"{nope"}),
    ("POST", "/v1/chat/completions", "gw", {"json": {"model": "openclaw", "messages": []}}),
    ("POST", "/v1/chat/completions", "gw", {"json": {"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}}),
    ("POST", "/v1/chat/completions", "gw", {"json": {"max_tokens": -1}}),
    ("POST", "/v1/responses", "gw", {"json": {"model": "openclaw"}}),
    ("POST", "/v1/responses", "gw", {"json": {"model": "openclaw", "input": "x", "bogus": 1}}),
    ("POST", "/v1/responses", "gw", {"data": b'{"model":"openclaw","input":"x",}'}),
    ("GET", "/tools/invoke", "gw", {}), ("POST", "/tools/invoke", None, {"json": {}}),
    ("POST", "/tools/invoke", "gw", {"data": b"[1"}), ("POST", "/tools/invoke", "gw", {"json": {"args": {}}}),
    ("POST", "/tools/invoke", "gw", {"json": {"tool": "nodes"}}), ("POST", "/tools/invoke", "gw", {"json": {"name": 5}}),
    ("GET", "/hooks/wake", "hook", {}), ("POST", "/hooks/wake?token=x", "hook", {"json": {"text": "a"}}),
    ("POST", "/hooks", "hook", {"json": {}}), ("POST", "/hooks/nope", "hook", {"json": {}}),
    ("POST", "/hooks/wake", "hook", {"data": b'{"text": 1'}), ("POST", "/hooks/wake", "hook", {"json": {"text": " "}}),
    ("POST", "/hooks/wake", "hook", {"json": {"text": "a", "mode": "next-heartbeat", "sessionKey": "s"}}),
    ("POST", "/hooks/wake", "hook", {"json": {"text": "a", "agentId": 7}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "waitForCompletion": 1}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "sessionMode": "x"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "sessionKey": "k"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "agentId": "Nope"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "model": ""}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "channel": "telegram"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "channel": "last"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "to": ""}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "channel": "last", "to": "x"}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "m", "accountId": "a", "to": "x"}}),
    ("POST", "/hooks/wake", "hook", {"data": b'{"text":"' + b"a" * 270_000 + b'"}'}),
]


def normalize(text: str) -> str:
    text = re.sub(rf"(chatcmpl_|resp_|msg_)?{UUID}", r"\1<uuid>", text)
    return re.sub(r'"(created|created_at|uptimeMs)":\d+', r'"\1":0', text)


async def answer(session: aiohttp.ClientSession, base: str, case: tuple[str, str, str | None, dict[str, Any]],
                 token: str, hook_token: str) -> tuple[int, str, dict[str, str | None]]:
    method, path, auth, kw = case
    kw = dict(kw)
    headers = {"Accept": kw.pop("accept")} if "accept" in kw else {}
    if auth == "gw":
        headers["Authorization"] = f"Bearer {token}"
    elif auth == "hook":
        headers["Authorization"] = f"Bearer {hook_token}"
    async with session.request(method, base + path, headers=headers, **kw) as r:
        body = await r.text()
        return r.status, normalize(body), {h: r.headers.get(h) for h in HEADERS}


async def test_same_answers_as_the_real_legacy(legacy: Any, candidate: Candidate) -> None:
    cand_base = str(candidate.client.make_url("")).rstrip("/")
    mismatches = []
    async with aiohttp.ClientSession() as session:
        for case in CASES:
            theirs = await answer(session, legacy.http_url.rstrip("/"), case, legacy.token, legacy.hook_token)
            ours = await answer(session, cand_base, case, candidate.token, candidate.hook_token)
            if ours != theirs:
                mismatches.append((case[:2], {"legacy": theirs, "candidate": ours}))
    assert not mismatches, mismatches


TURN_CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", "gw", {"json": {"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}}),
    ("POST", "/v1/chat/completions", "gw", {"json": {"model": "openclaw/main", "stream": True,
                                                     "stream_options": {"include_usage": True},
                                                     "messages": [{"role": "system", "content": "be brief"},
                                                                  {"role": "user", "content": "hi"}]}}),
    ("POST", "/v1/responses", "gw", {"json": {"model": "openclaw", "input": "hi"}}),
    ("POST", "/v1/responses", "gw", {"json": {"model": "openclaw", "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}], "stream": True}}),
    ("POST", "/hooks/agent", "hook", {"json": {"message": "live probe", "name": "Live", "deliver": False,
                                               "waitForCompletion": True}}),
]


async def test_same_turn_answers_as_the_real_legacy(legacy: Any, candidate: Candidate) -> None:
    """Real turns on both legs against the same fake model: bodies equal after id/time normalization."""
    cand_base = str(candidate.client.make_url("")).rstrip("/")
    mismatches = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        for case in TURN_CASES:
            theirs = await answer(session, legacy.http_url.rstrip("/"), case, legacy.token, legacy.hook_token)
            ours = await answer(session, cand_base, case, candidate.token, candidate.hook_token)
            if ours != theirs:
                mismatches.append((case[:2], {"legacy": theirs, "candidate": ours}))
        # an identical wake text twice: queued, then coalesced, on both legs (unique text per run)
        text = f"live wake {id(session)}"
        for _ in range(2):
            case = ("POST", "/hooks/wake", "hook", {"json": {"text": text}})
            theirs = await answer(session, legacy.http_url.rstrip("/"), case, legacy.token, legacy.hook_token)
            ours = await answer(session, cand_base, case, candidate.token, candidate.hook_token)
            if ours != theirs:
                mismatches.append((case[:2], {"legacy": theirs, "candidate": ours}))
    assert not mismatches, mismatches
