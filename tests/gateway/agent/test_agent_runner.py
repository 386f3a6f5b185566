"""Agent turns: the candidate's chat/agent event stream against the legacy's recorded turn, and the transcript."""

from __future__ import annotations

import socket
from typing import Any

from h4b_support import Candidate, CandidateFactory, offline_config

from gateway.agent.runner import run_turn
from gateway.app import SESSIONS_KEY


def shape(frames: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(event, stream|state, phase) per chat/agent event, the order a client sees."""
    out = []
    for f in frames:
        event, p = f["event"], f["payload"]
        if event not in ("chat", "agent"):
            continue
        kind = p.get("stream") if event == "agent" else p.get("state")
        phase = (p.get("data") or {}).get("phase") if event == "agent" else p.get("phase")
        out.append((event, kind, phase))
    return out


def legacy_turn(capture: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in capture["ws_turn"] if f.get("type") == "event" and f.get("event") in ("chat", "agent")]


async def record_turn(c: Candidate, key: str = "main", run_id: str = "idem-1") -> tuple[Any, list[dict[str, Any]]]:
    frames: list[dict[str, Any]] = []
    result = await run_turn(c.app, key, "hi there", run_id,
                            lambda e, p: frames.append({"type": "event", "event": e, "payload": p}))
    return result, frames


async def test_event_order_matches_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    result, frames = await record_turn(candidate)
    assert result.ok and result.text == "PONG from fake model"
    assert shape(frames) == shape(legacy_turn(legacy_capture))


async def test_payload_keys_and_values_match_legacy(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    _, frames = await record_turn(candidate)
    legacy = legacy_turn(legacy_capture)
    assert len(frames) == len(legacy)
    for ours, theirs in zip(frames, legacy, strict=True):
        p, q = ours["payload"], theirs["payload"]
        assert list(p) == list(q), (p, q)
        for k in ("sessionKey", "agentId", "stream", "state", "phase", "isHeartbeat", "stopReason", "deltaText"):
            assert p.get(k) == q.get(k), k
        # per-run seq is volatile only as an absolute value; the candidate follows the same numbering
        assert p["seq"] == q["seq"], (p, q)
        if "data" in q:
            assert set(p["data"]) == set(q["data"]), q["data"]
            for k in ("phase", "provider", "model", "text", "delta", "outputTokens", "stopReason", "aborted",
                      "livenessState", "replayInvalid", "terminalReply", "executionSettled"):
                assert p["data"].get(k) == q["data"].get(k), k
        if "message" in q:
            assert {k: v for k, v in p["message"].items() if k != "timestamp"} == {
                k: v for k, v in q["message"].items() if k != "timestamp"}


async def test_transcript_and_session_entry_persisted(candidate: Candidate) -> None:
    result, _ = await record_turn(candidate)
    store = candidate.app[SESSIONS_KEY]
    history = store.history("main")
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "hi there"
    assert history[1]["content"] == [{"type": "text", "text": "PONG from fake model"}]
    assert history[1]["usage"]["output"] == 2
    assert history[1]["usage"]["cost"] == {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0, "total": 0}
    assert history[0]["idempotencyKey"] == "idem-1:user"
    assert [m["__openclaw"]["seq"] for m in history] == [1, 2]
    assert history[1]["__openclaw"]["runId"] == "idem-1"
    entry = store.get("agent:main:main")
    assert entry is not None and entry["sessionId"] == result.session_id
    assert (entry["model"], entry["status"], entry["contextTokens"]) == ("fake-model", "done", 32000)


async def test_second_turn_sends_history_to_provider(candidate: Candidate) -> None:
    await record_turn(candidate, run_id="a")
    result, frames = await record_turn(candidate, run_id="b")
    assert result.ok
    assert [m["role"] for m in candidate.app[SESSIONS_KEY].history("main")] == ["user", "assistant"] * 2
    assert {f["payload"]["runId"] for f in frames} == {"b"}


async def test_provider_down_emits_error_events(candidate_factory: CandidateFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with candidate_factory(replace=offline_config(f"http://127.0.0.1:{port}/v1", "t" * 48, "h" * 48)) as c:
        result, frames = await record_turn(c)
        assert not result.ok and result.error
        last_agent = [f for f in frames if f["event"] == "agent"][-1]["payload"]
        assert last_agent["data"]["phase"] == "error"
        assert frames[-1]["event"] == "chat" and frames[-1]["payload"]["state"] == "error"
        entry = c.app[SESSIONS_KEY].get("main")
        assert entry is not None and entry["status"] == "error"


async def test_http_started_turn_matches_legacy_http_run(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    """Turns started over HTTP: no run_status/chat status, no isHeartbeat, the HTTP-run end payload."""
    frames: list[dict[str, Any]] = []
    result = await run_turn(candidate.app, "agent:main:openresponses:x", "hi", "resp_1",
                            lambda e, p: frames.append({"type": "event", "event": e, "payload": p}), chat_run=False)
    assert result.ok
    legacy = legacy_capture["http_run_events"]["resp"]
    assert shape(frames) == shape(legacy)
    for ours, theirs in zip(frames, legacy, strict=True):
        p, q = ours["payload"], theirs["payload"]
        assert list(p) == list(q), (p, q)
        assert p["seq"] == q["seq"]
        if "data" in q:
            assert list(p["data"]) == list(q["data"])
