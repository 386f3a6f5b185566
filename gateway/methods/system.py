"""System and inventory methods answered from this process's real state.

Owns: ``status``, ``system-presence``, ``system.info``, ``last-heartbeat``, ``gateway.identity.get``,
``usage.status``, ``cron.status``, ``cron.list``, ``channels.status``, ``commands.list``, ``hooks.status``,
``node.list``, ``device.pair.list``. Key sets follow reference §2.11; values come from the OS, the config, the
device store and the session store. pyclaw runs no channels, no cron jobs and no nodes, so those lists are empty
because they ARE empty here, not because they are stubbed.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
from typing import Any

from gateway.app import CONFIG_KEY, DEVICES_KEY, IDENTITY_KEY, SESSIONS_KEY, STATE_KEY
from gateway.diagnostics import DIAGNOSTICS_KEY, query_from_params
from gateway.dispatch import PAIRING, MethodContext, MethodError, method
from gateway.methods.health import _event_loop, session_summary
from gateway.sessions import agent_of, is_cron_key
from gateway.state import VERSION, now_ms

__all__: list[str] = []


def _process_memory() -> dict[str, int]:
    rss = 0
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rssBytes": rss, "heapUsedBytes": 0, "heapTotalBytes": 0, "externalBytes": 0, "arrayBuffersBytes": 0}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo() -> tuple[int, int]:
    total = free = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                if k == "MemTotal":
                    total = int(v.split()[0]) * 1024
                elif k == "MemAvailable":
                    free = int(v.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return total, free


def _status_row(r: dict[str, Any], primary: str, model: str, window: int | None) -> dict[str, Any]:
    """A ``status`` recent-session row from the session entry (the legacy's keys for what pyclaw tracks: no cache
    token counts, no systemSent, no runtime label)."""
    now = now_ms()
    cron = is_cron_key(r["key"])  # cron run rows: kind cron, no abortedLastRun (golden)
    row: dict[str, Any] = {"agentId": agent_of(r["key"]), "key": r["key"], "kind": "cron" if cron else "direct",
                           "sessionId": r.get("sessionId"), "updatedAt": r.get("updatedAt"),
                           "age": now - int(r.get("updatedAt") or now)}
    for k in ("abortedLastRun", "inputTokens", "outputTokens", "totalTokens"):
        if k in r and not (cron and k == "abortedLastRun"):
            row[k] = r[k]
    context = r.get("contextTokens") or window
    total = r.get("totalTokens")
    if isinstance(total, int):
        row["totalTokensFresh"] = True  # written at the end of every run
        if isinstance(context, int) and context > 0:
            row["remainingTokens"] = max(0, context - total)
            row["percentUsed"] = round(total * 100 / context)
    row.update({"model": r.get("model") or model or None, "configuredModel": primary, "selectedModel": primary,
                "modelSelectionReason": None})
    if context is not None:
        row["contextTokens"] = context
    row["flags"] = [f"id:{r['sessionId']}"] if r.get("sessionId") else []
    return row


@method("status")
async def status(ctx: MethodContext, params: Any) -> Any:
    summary = session_summary(ctx.app)
    config = ctx.app[CONFIG_KEY]
    primary = str(config.get("agents.defaults.model.primary") or "openai/gpt-6-astra")
    provider, _, model = primary.partition("/")
    window = next((m.get("contextWindow") for m in config.get(f"models.providers.{provider}.models") or []
                   if isinstance(m, dict) and m.get("id") == model), None)
    recent = [_status_row(r, primary, model, window) for r in ctx.app[SESSIONS_KEY].list()[:5]]
    busy = max(0, ctx.app[STATE_KEY].active_requests - 1)  # other requests in flight (the legacy excludes the current)
    return {
        "runtimeVersion": VERSION, "pid": os.getpid(), "processMemory": _process_memory(), "eventLoop": _event_loop(),
        "workerPools": {}, "degradedPlugins": [], "degradedSecretOwners": [],
        "modelRuntime": {"degraded": False, "pendingAgents": []},
        "heartbeat": {"defaultAgentId": "main", "agents": [{"agentId": "main", "enabled": True, "every": "30m",
                                                            "everyMs": 1_800_000, "waitingForRoute": True}]},
        "channelSummary": [], "queuedSystemEvents": [],
        "tasks": {"total": 0, "active": 0, "terminal": 0, "failures": 0,
                  "byStatus": {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "lost": 0},
                  "byRuntime": {"subagent": 0, "acp": 0, "cli": 0, "cron": 0}},
        "taskAudit": {"total": 0, "warnings": 0, "errors": 0, "byCode": {
            "stale_queued": 0, "stale_running": 0, "lost": 0, "delivery_failed": 0, "missing_cleanup": 0,
            "inconsistent_timestamps": 0}},
        "sessions": {"paths": [summary["path"]], "count": summary["count"], "defaults": {"model": model or None, "contextTokens": window},
                     "recent": recent, "byAgent": [{"agentId": "main", **summary, "recent": recent}]},
        "hostDesktop": {"enabled": False, "state": "disabled", "port": 5900},
        "shutdownBudget": {"timeoutMs": 3000, "reserveMs": 0, "nativeStopBudget": False,
                           "activeWork": {"rootRequests": busy, "cronRuns": 0, "sessionMutations": 0,
                                          "terminalPersistence": 0, "lifecycleWrites": 0}, "writeCustody": []},
    }


@method("system-presence")
async def system_presence(ctx: MethodContext, params: Any) -> Any:
    return ctx.app[STATE_KEY].presence()


@method("system.info")
async def system_info(ctx: MethodContext, params: Any) -> Any:
    state, config = ctx.app[STATE_KEY], ctx.app[CONFIG_KEY]
    disk = shutil.disk_usage(config.state_dir if config.state_dir.exists() else "/")
    total, free = _meminfo()
    root = shutil.disk_usage("/")
    return {
        "arch": {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "cpuCount": os.cpu_count() or 1, "cpuModel": _cpu_model(),
        "defaultAgentUtilityModel": {"status": "unavailable"},
        "diskAvailableBytes": disk.free, "diskPath": str(config.state_dir), "diskTotalBytes": disk.total,
        "disks": [{"path": "/", "totalBytes": root.total, "availableBytes": root.free}],
        "eventLoop": _event_loop(), "hostname": state.host, "loadAverage": list(os.getloadavg()),
        "machineName": state.host, "memoryFreeBytes": free, "memoryTotalBytes": total,
        "nodeVersion": f"python-{platform.python_version()}", "osLabel": f"{platform.system()} {platform.release()}",
        "pid": os.getpid(), "platform": sys.platform, "port": config.port, "processInstanceId": state.instance_id,
        "processMemory": _process_memory(), "release": platform.release(), "uptimeMs": state.uptime_ms(),
    }


@method("last-heartbeat")
async def last_heartbeat(ctx: MethodContext, params: Any) -> Any:
    return ctx.app[STATE_KEY].last_heartbeat


@method("gateway.identity.get")
async def identity_get(ctx: MethodContext, params: Any) -> Any:
    ident = ctx.app[IDENTITY_KEY]
    return {"deviceId": ident.device_id, "publicKey": ident.public_key}


@method("usage.status")
async def usage_status(ctx: MethodContext, params: Any) -> Any:
    return {"updatedAt": now_ms(), "providers": []}


@method("cron.status")
async def cron_status(ctx: MethodContext, params: Any) -> Any:
    config = ctx.app[CONFIG_KEY]
    store = config.state_dir / "cron"
    return {"enabled": bool(config.get("cron.enabled", True)), "jobs": 0, "nextWakeAtMs": None,
            "sqlitePath": str(store / "cron.sqlite"), "storage": "sqlite", "storePath": str(store),
            "triggersEnabled": False}


@method("cron.list")
async def cron_list(ctx: MethodContext, params: Any) -> Any:
    p = params if isinstance(params, dict) else {}
    limit = p.get("limit") if isinstance(p.get("limit"), int) else 50
    offset = p.get("offset") if isinstance(p.get("offset"), int) else 0
    return {"deliveryPreviews": {}, "hasMore": False, "jobs": [], "limit": limit, "nextOffset": None, "offset": offset,
            "snapshotRevision": 0, "total": 0}


@method("channels.status")
async def channels_status(ctx: MethodContext, params: Any) -> Any:
    return {"channelAccounts": {}, "channelDefaultAccountId": {}, "channelDetailLabels": {}, "channelLabels": {},
            "channelMeta": [], "channelOrder": [], "channelSystemImages": {}, "channels": {},
            "eventLoop": _event_loop(), "statusIssues": [], "ts": now_ms()}


@method("commands.list")
async def commands_list(ctx: MethodContext, params: Any) -> Any:
    """pyclaw implements no chat slash commands yet, so the list is empty (docs/compatibility.md)."""
    return {"commands": []}


@method("hooks.status")
async def hooks_status(ctx: MethodContext, params: Any) -> Any:
    config = ctx.app[CONFIG_KEY]
    return {"hooks": [], "managedHooksDir": str(config.state_dir / "hooks"), "workspaceDir": str(config.workspace_dir)}


@method("node.list")
async def node_list(ctx: MethodContext, params: Any) -> Any:
    return {"ts": now_ms(), "nodes": []}


@method("device.pair.list", PAIRING)
async def device_pair_list(ctx: MethodContext, params: Any) -> Any:
    return {"paired": ctx.app[DEVICES_KEY].list_paired(), "pending": []}


@method("diagnostics.stability")
async def diagnostics_stability(ctx: MethodContext, params: Any) -> Any:
    """The diagnostic event ring (``gateway.diagnostics``), filtered by ``limit``/``type``/``sinceSeq``."""
    try:
        query = query_from_params(params)
    except ValueError as exc:
        raise MethodError("INVALID_REQUEST", str(exc)) from exc
    return ctx.app[DIAGNOSTICS_KEY].snapshot(query)
