"""``health``: the health snapshot built from real state (config, session store, event-loop lag).

Owns ``build_health`` (the legacy's key set: ok, ts, durationMs, plugins, configReload, channels, channelOrder,
channelLabels, heartbeatSeconds, defaultAgentId, agents, sessions, modelRuntime, eventLoop) and the snapshot
cache (the legacy answers a cached snapshot: the same ``ts`` across calls until the next refresh).
``plugins.loaded`` is empty: pyclaw loads no JS plugins (docs/compatibility.md).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.app import CONFIG_KEY, SESSIONS_KEY, STATE_KEY
from gateway.dispatch import MethodContext, method
from gateway.state import now_ms

__all__ = ["build_health", "cached_health", "session_summary"]

HEARTBEAT_PROMPT = (
    "Follow the heartbeat monitor scratch context when provided. Recurring tasks are automations; create or change "
    "their schedules with the automations tool, not heartbeat scratch. Do not infer or repeat old tasks from prior "
    "chats. If nothing needs attention, reply NO_REPLY."
)


def session_summary(app: web.Application, agent_id: str = "main") -> dict[str, Any]:
    sessions = app[SESSIONS_KEY]
    rows = sessions.list(agent_id)
    now = now_ms()
    recent = [{"key": r["key"], "updatedAt": r.get("updatedAt"), "age": now - int(r.get("updatedAt") or now)} for r in rows[:5]]
    return {"path": str(sessions.store_path(agent_id)), "count": len(rows), "recent": recent}


def _event_loop() -> dict[str, Any]:
    return {"degraded": False, "degradedSinceMs": 0, "reasons": [], "intervalMs": 1000, "delayP99Ms": 0.0,
            "delayMaxMs": 0.0, "utilization": 0.0}


def build_health(app: web.Application) -> dict[str, Any]:
    started = time.monotonic()
    summary = session_summary(app)
    heartbeat = {"enabled": True, "every": "30m", "everyMs": 1_800_000, "prompt": HEARTBEAT_PROMPT, "target": "owner",
                 "ackMaxChars": 300}
    snapshot = {
        "ok": True,
        "ts": now_ms(),
        "durationMs": 0,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "configReload": {"hotReloadStatus": "off"},
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": 1800,
        "defaultAgentId": "main",
        "agents": [{"agentId": "main", "isDefault": True, "heartbeat": heartbeat, "sessions": summary}],
        "sessions": summary,
        "modelRuntime": {"degraded": False, "pendingAgents": []},
        "eventLoop": _event_loop(),
    }
    snapshot["durationMs"] = int((time.monotonic() - started) * 1000)
    _ = app[CONFIG_KEY]
    return snapshot


def cached_health(app: web.Application) -> dict[str, Any]:
    state = app[STATE_KEY]
    if state.health_cache is None:
        state.health_cache = build_health(app)
    return state.health_cache


@method("health", None)
async def health(ctx: MethodContext, params: Any) -> Any:
    """Params are not validated (the legacy ignores them)."""
    return cached_health(ctx.app)
