"""One agent turn against the configured provider, emitting the legacy's ``chat`` and ``agent`` events.

Owns ``run_turn(app, session_key, message, run_id, emit) -> TurnResult`` (used by H4a's ``chat.send``/``agent``
methods, by ``/hooks/agent`` and by the OpenAI-compatible endpoints), ``TurnResult``, ``PROVIDER_KEY`` and
``provider_ctx`` (the shared ``ProviderClient`` for the app's lifetime).

Event order and payload shapes follow a recording of the pinned legacy with the fake model (reference §2.6;
``tests/gateway/http/data/legacy_2026.9.6_capture.json``): chat/agent ``run_status`` phases preparing_workspace ->
preparing_context, lifecycle ``start``, ``starting_model``, lifecycle ``model``, ``assistant`` deltas (chat
``delta`` at most every 150 ms, the rest flushed before ``final``), ``usage``, lifecycle ``finishing``, the
lane's lifecycle ``model`` with null provider/model, lifecycle ``end`` with terminal receipt, then chat ``final``.
Every payload carries ``runId``, the canonical ``sessionKey``, ``agentId`` and a per-run ``seq`` (chat events
reuse the seq of the latest agent event, as the legacy does). The transcript (user then assistant message) is
persisted to the session store. May import aiohttp, ``gateway.*`` and the standard library.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateway.agent.provider import ModelRef, PreflightCache, ProviderClient, ProviderError, Usage, resolve_primary
from gateway.diagnostics import DIAGNOSTICS_KEY
from gateway.sessions import SessionStore, agent_of, canonical_key

logger = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], Any]
PROVIDER_KEY = web.AppKey("gateway_provider", ProviderClient)
CHAT_DELTA_THROTTLE_S = 0.15


@dataclass(frozen=True, slots=True)
class TurnResult:
    run_id: str
    session_key: str
    session_id: str
    ok: bool
    text: str = ""
    stop_reason: str = "stop"
    usage: Usage | None = None
    provider: str | None = None
    model: str | None = None
    response_id: str | None = None
    error: str | None = None


async def provider_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx``: one ``ClientSession`` + preflight cache for every turn of this app."""
    session = aiohttp.ClientSession()
    app[PROVIDER_KEY] = ProviderClient(session, PreflightCache(), app.get(DIAGNOSTICS_KEY))
    yield
    await session.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _history_messages(sessions: SessionStore, key: str) -> list[dict[str, Any]]:
    out = []
    past: Any = sessions.history(key, limit=40)
    for m in past:
        role = m.get("role")
        if role in ("user", "assistant", "system"):
            text = _text_of(m.get("content"))
            if text:
                out.append({"role": role, "content": text})
    return out


class _Events:
    """Per-run event builder: keeps the run's seq and the legacy's key order."""

    def __init__(self, emit: Emit, run_id: str, session_key: str, agent_id: str, session_id: str,
                 chat_run: bool = True) -> None:
        self.emit, self.run_id, self.key, self.agent_id, self.sid = emit, run_id, session_key, agent_id, session_id
        self.chat_run = chat_run
        self.seq = 0

    def _stamp(self, payload: dict[str, Any]) -> None:
        self.seq += 1
        payload.update({"seq": self.seq, "ts": _now_ms()})
        if self.chat_run:  # runs started by chat.send carry isHeartbeat; HTTP-started runs do not (observed)
            payload["isHeartbeat"] = False

    async def _send(self, event: str, payload: dict[str, Any]) -> None:
        try:
            result = self.emit(event, payload)
            if hasattr(result, "__await__"):
                await result
        except Exception:  # an emit failure (client gone) must not kill the turn
            logger.exception("emit %s failed for run %s", event, self.run_id)

    async def agent(self, stream: str, data: dict[str, Any], *, with_session_id: bool = False) -> None:
        payload: dict[str, Any]
        if with_session_id:
            payload = {"runId": self.run_id, "sessionKey": self.key, "sessionId": self.sid, "agentId": self.agent_id,
                       "stream": stream, "data": data}
        else:
            payload = {"runId": self.run_id, "stream": stream, "data": data, "sessionKey": self.key,
                       "agentId": self.agent_id}
        self._stamp(payload)
        await self._send("agent", payload)

    async def raw_agent(self, payload: dict[str, Any]) -> None:
        self._stamp(payload)
        await self._send("agent", payload)

    async def chat(self, state: str, **fields: Any) -> None:
        payload = {"runId": self.run_id, "sessionKey": self.key, "agentId": self.agent_id, "seq": max(self.seq, 1),
                   "state": state, **fields}
        await self._send("chat", payload)

    async def status(self, phase: str) -> None:
        if not self.chat_run:  # run_status phases come from chat.send's own preparation only
            return
        # chat status carries the seq the agent run_status event is about to take
        self.seq += 1
        await self._send("chat", {"runId": self.run_id, "sessionKey": self.key, "agentId": self.agent_id,
                                  "seq": self.seq, "state": "status", "phase": phase})
        self.seq -= 1
        await self.agent("run_status", {"phase": phase})


def _client(app: web.Application) -> tuple[ProviderClient, aiohttp.ClientSession | None]:
    client = app.get(PROVIDER_KEY)
    if client is not None:
        return client, None
    session = aiohttp.ClientSession()
    return ProviderClient(session), session


async def run_turn(app: web.Application, session_key: str, message: str, run_id: str, emit: Emit,
                   *, extra_system_prompt: str | None = None, history: bool = True,
                   chat_run: bool = True, event_session_key: str | None = None) -> TurnResult:
    """Run one turn for ``message`` in ``session_key``; events go to ``emit(event_name, payload)``.

    ``chat_run=False`` is for turns started over HTTP (``/v1/*``, hooks): the legacy then sends no
    ``run_status``/chat ``status`` events, no ``isHeartbeat`` key and a slightly different ``end`` payload.
    ``event_session_key`` (``{sessionId}`` is filled in) overrides the key the events carry: hook runs are
    isolated cron runs whose events name ``agent:main:cron:<job>:run:<sessionId>``.
    """
    from gateway.app import CONFIG_KEY, SESSIONS_KEY  # the app module imports us lazily; avoid a cycle

    config, sessions = app[CONFIG_KEY], app[SESSIONS_KEY]
    key = canonical_key(session_key)
    agent_id = agent_of(key)
    prior = _history_messages(sessions, key) if history else []
    entry = sessions.ensure(key)
    shown_key = event_session_key.format(sessionId=entry["sessionId"]) if event_session_key else key
    ev = _Events(emit, run_id, shown_key, agent_id, entry["sessionId"], chat_run)
    client, owned = _client(app)
    try:
        await ev.status("preparing_workspace")
        await ev.status("preparing_context")
        try:
            ref: ModelRef | None = resolve_primary(config.data)
        except ProviderError as exc:
            ref = None
            setup_error = str(exc)
        started = _now_ms()
        seq = len(sessions.history(key)) + 1
        sessions.append(key, {"role": "user", "content": message, "timestamp": started,
                              "idempotencyKey": f"{run_id}:user",
                              "__openclaw": {"id": str(uuid.uuid4()), "idempotencyKey": f"{run_id}:user",
                                             "recordTimestampMs": _now_ms(), "seq": seq}})
        sessions.update(key, status="running")
        await ev.agent("lifecycle", {"phase": "start", "startedAt": started}, with_session_id=True)
        await ev.status("starting_model")
        if ref is None:
            return await _fail(ev, sessions, key, run_id, entry["sessionId"], started, setup_error)
        await ev.agent("lifecycle", {"phase": "model", "provider": ref.provider, "model": ref.model},
                       with_session_id=True)
        messages: list[dict[str, Any]] = []
        if extra_system_prompt:
            messages.append({"role": "system", "content": extra_system_prompt})
        messages += prior + [{"role": "user", "content": message}]
        return await _stream(ev, client, ref, messages, sessions, key, run_id, entry["sessionId"], started)
    finally:
        if owned is not None:
            await owned.close()


async def _stream(ev: _Events, client: ProviderClient, ref: ModelRef, messages: list[dict[str, Any]],
                  sessions: SessionStore, key: str, run_id: str, session_id: str, started: int) -> TurnResult:
    item_id = f"{uuid.uuid4()}:1"
    text, pending, last_chat = "", "", 0.0
    usage: Usage | None = None
    finish, resp_id, resp_model = "stop", None, None
    try:
        async for piece in client.stream_chat(ref, messages):
            if piece.done:
                finish = piece.finish_reason or "stop"
                usage, resp_id, resp_model = piece.usage, piece.response_id, piece.response_model
                break
            text += piece.delta
            pending += piece.delta
            await ev.agent("assistant", {"text": text, "delta": piece.delta, "itemId": item_id})
            now = time.monotonic()
            if now - last_chat >= CHAT_DELTA_THROTTLE_S:
                last_chat = now
                await ev.chat("delta", deltaText=pending, message=_assistant_message(text))
                pending = ""
    except ProviderError as exc:
        return await _fail(ev, sessions, key, run_id, session_id, started, str(exc))
    stop = "length" if finish == "length" else "stop"
    if usage is not None:
        await ev.raw_agent({"runId": run_id, "sessionKey": ev.key, "stream": "usage",
                            "data": {"outputTokens": usage.output}, "agentId": ev.agent_id})
    ended = _now_ms()
    await ev.agent("lifecycle", {"phase": "finishing", "stopReason": stop, "aborted": False,
                                 "livenessState": "working", "endedAt": ended}, with_session_id=True)
    lane: dict[str, Any] = {"runId": run_id, "agentId": ev.agent_id, "sessionId": session_id, "sessionKey": ev.key}
    if ev.chat_run:
        lane["lane"] = "main"
    lane.update({"stream": "lifecycle", "data": {"phase": "model", "provider": None, "model": None}})
    await ev.raw_agent(lane)
    receipt = {
        "runId": run_id, "sessionId": session_id, "turnId": run_id,
        "requested": {"provider": ref.provider, "model": ref.model},
        "effective": {"provider": ref.provider, "model": ref.model, "responseModel": resp_model or ref.model},
        "successfulToolNames": [], "rerouted": False, "terminalDisposition": "visible",
    }
    reply = {"disposition": "visible", "text": text}
    if ev.chat_run:
        end = {"stopReason": stop, "aborted": False, "livenessState": "working", "phase": "end", "endedAt": ended,
               "startedAt": started, "replayInvalid": False, "terminalReply": reply, "terminalReceipt": receipt,
               "executionSettled": True}
    else:
        end = {"phase": "end", "startedAt": started, "endedAt": ended, "aborted": False, "stopReason": stop,
               "livenessState": "working", "executionSettled": True, "terminalReceipt": receipt,
               "terminalReply": reply}
    await ev.raw_agent({"runId": run_id, "stream": "lifecycle", "data": end, "sessionKey": ev.key,
                        "sessionId": session_id, "agentId": ev.agent_id} if not ev.chat_run else
                       {"runId": run_id, "sessionKey": ev.key, "stream": "lifecycle", "data": end,
                        "sessionId": session_id, "agentId": ev.agent_id})
    final_message = _assistant_message(text)
    if pending:
        await ev.chat("delta", deltaText=pending, message=final_message)
    await ev.chat("final", stopReason=stop, message=final_message)
    u = usage or Usage()
    sessions.append(key, {
        "role": "assistant", "content": [{"type": "text", "text": text}], "api": ref.api, "provider": ref.provider,
        "model": ref.model, "usage": {"input": u.input, "output": u.output, "totalTokens": u.total, "cacheRead": 0,
                                      "cacheWrite": 0, "cost": _cost(ref, u)},
        "stopReason": stop, "timestamp": final_message["timestamp"], "responseId": resp_id,
        "__openclaw": {"runId": run_id, "id": str(uuid.uuid4()), "recordTimestampMs": _now_ms(),
                       "seq": len(sessions.history(key)) + 1},
    })
    sessions.update(key, model=ref.model, modelProvider=ref.provider, contextTokens=ref.context_window,
                    totalTokens=u.input, inputTokens=u.input, outputTokens=u.output, status="done", abortedLastRun=False)
    return TurnResult(run_id=run_id, session_key=key, session_id=session_id, ok=True, text=text, stop_reason=stop,
                      usage=usage, provider=ref.provider, model=ref.model, response_id=resp_id)


def _cost(ref: ModelRef, usage: Usage) -> dict[str, float]:
    """Cost per the model's ``cost`` block (USD per million tokens, as the provider catalog states it)."""
    rate = ref.cost or {}
    i = float(rate.get("input") or 0) * usage.input / 1e6
    o = float(rate.get("output") or 0) * usage.output / 1e6
    return {"input": i, "output": o, "cacheRead": 0, "cacheWrite": 0, "total": i + o}


def _assistant_message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": _now_ms()}


async def _fail(ev: _Events, sessions: SessionStore, key: str, run_id: str, session_id: str, started: int,
                error: str) -> TurnResult:
    logger.warning("agent run %s failed: %s", run_id, error)
    ended = _now_ms()
    await ev.agent("lifecycle", {"phase": "error", "error": error, "startedAt": started, "endedAt": ended},
                   with_session_id=True)
    await ev.chat("error", errorMessage=error)
    sessions.update(key, status="error", abortedLastRun=False)
    return TurnResult(run_id=run_id, session_key=key, session_id=session_id, ok=False, stop_reason="error",
                      error=error)
