"""``health``: the health snapshot built from real state (config, session store, event-loop lag).

Owns ``build_health`` (the legacy's key set: ok, ts, durationMs, plugins, configReload, channels, channelOrder,
channelLabels, heartbeatSeconds, defaultAgentId, agents, sessions, modelRuntime, eventLoop) and the snapshot
cache (the legacy answers a cached snapshot: the same ``ts`` across calls until the next refresh).
``plugins.loaded`` is empty: pyclaw loads no JS plugins (docs/compatibility.md). ``configReload.hotReloadStatus`` is
"disabled": the legacy's schema allows "active" (its config file watcher runs) or "disabled"; pyclaw has no config
hot reload (docs/compatibility.md). It used to say "off", a value outside the legacy's schema.
"""

from __future__ import annotations

import os
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


_LAST: dict[str, float] = {}


def _host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies from /proc/stat (0, 0 when unavailable)."""
    try:
        with open("/proc/stat") as fh:
            parts = [float(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    return sum(parts) - idle, sum(parts)


def _event_loop() -> dict[str, Any]:
    """CPU use of this process and the host since the previous sample (the legacy's ``eventLoop`` keys)."""
    now, cpu = time.monotonic(), time.process_time()
    busy, total = _host_cpu()
    prev = dict(_LAST) or {"wall": now - 1.0, "cpu": cpu, "busy": busy, "total": total}
    _LAST.update({"wall": now, "cpu": cpu, "busy": busy, "total": total})
    wall = max(now - prev["wall"], 1e-6)
    ratio = round(max(cpu - prev["cpu"], 0.0) / wall, 3)
    host = round((busy - prev["busy"]) / (total - prev["total"]), 3) if total > prev["total"] else 0.0
    return {"degraded": False, "degradedSinceMs": None, "reasons": [], "intervalMs": round(wall * 1000, 3),
            "delayP99Ms": 0.0, "delayMaxMs": 0.0, "utilization": min(ratio, 1.0), "cpuCoreRatio": ratio,
            "cpuBreakdown": {"mainThreadCoreRatio": ratio, "hostUtilization": host, "hostCpuCount": os.cpu_count() or 1,
                             "workerCoreRatio": 0.0, "otherThreadsCoreRatio": 0.0}}


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
        "configReload": {"hotReloadStatus": "disabled"},
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
