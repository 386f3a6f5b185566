"""Immediate heartbeat runs, as the legacy starts them after ``/hooks/wake`` with ``mode: "now"``.

Owns ``HeartbeatWaker``: ``request(session_key)`` coalesces wake requests for 250 ms (the legacy's
``COALESCE_MS``), then one heartbeat turn drains that session's queued system events, runs a real model turn on the
session (its chat/agent events are not broadcast; observed on the legacy), stores the result as
``GatewayState.last_heartbeat`` and broadcasts a ``heartbeat`` event. Observed on the pinned legacy with no channel
configured: ``{ts, status:"skipped", preview:<reply>, reason:"no-route", hasMedia:false, durationMs, message}``.
The periodic 30-minute heartbeat is not implemented (the legacy fixtures run with cron skipped).
May import aiohttp, ``gateway.*`` and the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

COALESCE_S = 0.25
PREVIEW_CHARS = 200
HEARTBEAT_PROMPT = (
    "Follow the heartbeat monitor scratch context when provided. Recurring tasks are automations; create or change "
    "their schedules with the automations tool, not heartbeat scratch. Do not infer or repeat old tasks from prior "
    "chats. If nothing needs attention, reply NO_REPLY."
)
NO_ROUTE_MESSAGE = "Heartbeat has no delivery route yet. Message your bot once, or set agents.defaults.heartbeat.target."


class HeartbeatWaker:
    """One pending heartbeat per session; ``drain(key)`` hands over that session's queued system events."""

    def __init__(self, app: web.Application, drain: Callable[[str], list[str]]) -> None:
        self.app = app
        self.drain = drain
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.tasks: set[asyncio.Future[None]] = set()

    def request(self, session_key: str) -> None:
        if session_key in self.pending:
            return
        task = asyncio.ensure_future(self._later(session_key))
        self.pending[session_key] = task
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _later(self, session_key: str) -> None:
        await asyncio.sleep(COALESCE_S)
        self.pending.pop(session_key, None)
        try:
            await self.run(session_key)
        except Exception:  # a failed heartbeat must not take anything else down
            logger.exception("heartbeat for %s failed", session_key)

    async def run(self, session_key: str) -> dict[str, Any]:
        from gateway.agent.runner import run_turn
        from gateway.app import STATE_KEY

        events = self.drain(session_key)
        lines = [HEARTBEAT_PROMPT] + [f"System: {e}" for e in events]
        start = time.monotonic()
        result = await run_turn(self.app, session_key, "\n\n".join(lines), str(uuid.uuid4()),
                                lambda _event, _payload: None, chat_run=False)
        payload: dict[str, Any] = {"ts": int(time.time() * 1000)}
        if result.ok:
            payload.update({"status": "skipped", "preview": result.text[:PREVIEW_CHARS], "reason": "no-route",
                            "hasMedia": False, "durationMs": int((time.monotonic() - start) * 1000),
                            "message": NO_ROUTE_MESSAGE})
        else:
            payload.update({"status": "failed", "reason": result.error or "error",
                            "durationMs": int((time.monotonic() - start) * 1000)})
        state = self.app.get(STATE_KEY)
        if state is not None:
            state.last_heartbeat = payload
            state.broadcast("heartbeat", payload, drop_if_slow=True)
        return payload

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
