"""Agent-side methods: models, agents, tools, sessions, chat history, and starting turns.

Owns ``models.list`` (config providers), ``agents.list`` / ``agent.identity.get`` (config + defaults),
``tools.catalog`` / ``tools.effective`` (H4b's ``ToolRegistry``), ``sessions.list`` / ``chat.history`` (the session
store), and ``chat.send`` / ``agent``: validate, dedupe by ``idempotencyKey`` (TTL 300 s, 1000 entries), answer
``{runId, status:"started"}`` (a replay answers ``in_flight`` or the cached final) and run
``gateway.agent.runner.run_turn`` in the background, whose ``chat``/``agent`` events are broadcast to every
client allowed to read them. Params are checked against the legacy's closed schemas with AJV-style texts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from gateway.app import CONFIG_KEY, SESSIONS_KEY, STATE_KEY, TOOLS_KEY
from gateway.dispatch import WRITE, MethodContext, MethodError, method
from gateway.protocol import ANY, NES, STR, S, format_errors, obj, opt, req, validate
from gateway.sessions import agent_of, canonical_key, is_cron_key, key_rest
from gateway.state import now_ms

__all__: list[str] = []

logger = logging.getLogger(__name__)
_TASKS: set[asyncio.Future[Any]] = set()


def _check(name: str, schema: S, params: Any) -> dict[str, Any]:
    value = {} if params is None else params
    errors = validate(schema, value)
    if errors:
        raise MethodError("INVALID_REQUEST", f"invalid {name} params: {format_errors(errors)}")
    return value


def _anys(*names: str) -> list[tuple[str, S, bool]]:
    return [opt(n, ANY) for n in names]


TOOLS_EFFECTIVE = obj(opt("agentId", NES), req("sessionKey", NES))
TOOLS_CATALOG = obj(opt("agentId", NES), opt("includePlugins", S("boolean")))
AGENTS_LIST = obj()
AGENT_IDENTITY = obj(opt("agentId", NES), opt("sessionKey", STR))
CHAT_HISTORY = obj(
    req("sessionKey", NES), opt("agentId", NES), opt("cursor", STR), opt("limit", S("integer", min=1)),
    opt("maxBytes", S("integer", min=1024)), opt("offset", S("integer", min=0)), opt("pendingBefore", S("integer", min=1)),
    opt("inputRunIds", S("array", items=S("string", min=1, max=256))), opt("messageId", NES), opt("sessionId", NES),
    opt("maxChars", S("integer", min=1)),
)
CHAT_SEND = obj(
    req("sessionKey", S("string", min=1, max=512)), opt("agentId", NES), opt("sessionId", NES), req("message", STR),
    *_anys("mentions", "workContext", "intent", "thinking", "fastMode", "fastAutoOnSeconds", "queueMode", "deliver",
           "originatingChannel", "originatingTo", "originatingAccountId", "originatingThreadId", "replyToId",
           "attachments", "toolBindings", "timeoutMs", "systemInputProvenance", "systemProvenanceReceipt",
           "suppressCommandInterpretation", "expectedLeafEntryId", "expectedSessionRoutingContract",
           "expectedPermissionMode", "expectedToolOverrides"),
    req("idempotencyKey", NES),
)
AGENT = obj(
    req("message", NES), opt("agentId", NES), opt("sessionKey", STR), opt("extraSystemPrompt", STR),
    *_anys("provider", "model", "to", "replyTo", "sessionId", "expectedExistingSessionId", "thinking", "deliver",
           "attachments", "channel", "replyChannel", "accountId", "replyAccountId", "threadId", "groupId",
           "groupChannel", "groupSpace", "timeout", "bestEffortDeliver", "lane", "cwd", "cleanupBundleMcpOnRunEnd",
           "modelRun", "promptMode", "bootstrapContextMode", "bootstrapContextRunKind", "acpTurnSource",
           "internalRuntimeHandoffId", "internalExecutionIdentityRetry", "internalExecutionIdentityRecoveryAttempt",
           "execApprovalFollowupExpectedSessionId", "internalEvents", "inputProvenance", "suppressPromptPersistence",
           "sessionEffects", "sourceReplyDeliveryMode", "disableMessageTool", "swarmCollector", "swarmOutputSchema",
           "forceRestartSafeTools", "forceCodeModeTools", "voiceWakeTrigger", "label"),
    req("idempotencyKey", NES),
)


def _primary(ctx: MethodContext) -> str:
    return str(ctx.app[CONFIG_KEY].get("agents.defaults.model.primary") or "openai/gpt-6-astra")


AGENT_RUNTIME = {"id": "auto", "cloudPlacementSupported": False, "devicePlacementSupported": False, "source": "implicit"}
THINKING = {"thinkingLevels": [{"id": "off", "label": "off"}], "thinkingOptions": ["off"], "thinkingDefault": "off"}
# tools.catalog profile membership of the core tools pyclaw implements (the legacy's catalog, reference §2.11)
DEFAULT_PROFILES = {"sessions_list": ["coding", "messaging"], "sessions_history": ["coding", "messaging"],
                    "session_status": ["minimal", "coding", "messaging"], "agents_list": []}
CATALOG_GROUP_LABELS = {"fs": "Files", "runtime": "Runtime", "web": "Web", "memory": "Memory", "sessions": "Sessions",
                        "agents": "Agents", "messaging": "Messaging", "automation": "Automation", "nodes": "Nodes"}


def _model_defaults(ctx: MethodContext) -> dict[str, Any]:
    provider, _, model = _primary(ctx).partition("/")
    return {"modelProvider": provider, "model": model,
            "contextTokens": _context_window(ctx.app[CONFIG_KEY], provider, model)}


@method("models.list")
async def models_list(ctx: MethodContext, params: Any) -> Any:
    return models_catalog(ctx.app)


def models_catalog(app: web.Application) -> dict[str, Any]:
    """The configured providers' models; the primary model is tagged ``default``."""
    primary = str(app[CONFIG_KEY].get("agents.defaults.model.primary") or "openai/gpt-6-astra")
    out = []
    for provider, spec in (app[CONFIG_KEY].get("models.providers") or {}).items():
        for m in (spec or {}).get("models") or []:
            if not isinstance(m, dict) or not m.get("id"):
                continue
            reasoning = bool(m.get("reasoning", False))
            out.append({
                "id": m["id"], "name": m.get("name") or m["id"], "provider": provider,
                "contextWindow": m.get("contextWindow"), "reasoning": reasoning,
                "tags": ["default"] if f"{provider}/{m['id']}" == primary else [],
                "thinkingLevels": [{"id": "off", "label": "off"}], "thinkingDefault": "off", "available": True,
            })
    return {"models": out}


def _agent_ids(ctx: MethodContext) -> list[str]:
    ids = ["main"]
    for a in ctx.app[CONFIG_KEY].get("agents.list") or []:
        if isinstance(a, dict) and isinstance(a.get("id"), str) and a["id"] not in ids:
            ids.append(a["id"])
    return ids


@method("agents.list")
async def agents_list(ctx: MethodContext, params: Any) -> Any:
    _check("agents.list", AGENTS_LIST, params)
    config = ctx.app[CONFIG_KEY]
    workspace = config.workspace_dir
    git = bool(workspace and (workspace / ".git").exists())
    agents = [{"id": a, "workspace": str(workspace), "workspaceGit": git, "agentRuntime": dict(AGENT_RUNTIME),
               **THINKING, "model": {"primary": _primary(ctx)}, "defaultPermissionMode": "full"} for a in _agent_ids(ctx)]
    return {"defaultId": "main", "ownership": "sole", "selectionRequired": False, "mainKey": "main",
            "scope": "per-sender", "agents": agents}


@method("agent.identity.get")
async def agent_identity(ctx: MethodContext, params: Any) -> Any:
    p = _check("agent.identity.get", AGENT_IDENTITY, params)
    agent_id = p.get("agentId") or "main"
    for a in ctx.app[CONFIG_KEY].get("agents.list") or []:
        ident = a.get("identity") if isinstance(a, dict) and a.get("id") == agent_id else None
        if isinstance(ident, dict) and ident.get("name"):
            return {"agentId": agent_id, "name": str(ident["name"])[:50], "nameSource": "agent",
                    "avatar": ident.get("avatar") or "A"}
    return {"agentId": agent_id, "name": "Assistant", "nameSource": "default", "avatar": "A"}


def _registry(ctx: MethodContext) -> Any:
    reg = ctx.app[TOOLS_KEY]
    if reg is None:
        raise MethodError("UNAVAILABLE", "tool registry unavailable")
    return reg


@method("tools.catalog")
async def tools_catalog(ctx: MethodContext, params: Any) -> Any:
    p = _check("tools.catalog", TOOLS_CATALOG, params)
    specs = _registry(ctx).specs("agent")
    groups: dict[str, list[dict[str, Any]]] = {}
    for spec in specs:
        groups.setdefault(spec.section, []).append({
            "id": spec.name, "label": spec.name, "description": spec.description, "source": "core",
            "defaultProfiles": list(DEFAULT_PROFILES.get(spec.name, []))})
    return {
        "agentId": p.get("agentId") or "main",
        "profiles": [{"id": "minimal", "label": "Minimal"}, {"id": "coding", "label": "Coding"},
                     {"id": "messaging", "label": "Messaging"}, {"id": "full", "label": "Full"}],
        "groups": [{"id": g, "label": CATALOG_GROUP_LABELS.get(g, g.capitalize()), "source": "core", "tools": tools}
                   for g, tools in groups.items()],
    }


@method("tools.effective")
async def tools_effective(ctx: MethodContext, params: Any) -> Any:
    p = _check("tools.effective", TOOLS_EFFECTIVE, params)
    if ctx.app[SESSIONS_KEY].get(p["sessionKey"]) is None:
        raise MethodError("INVALID_REQUEST", f'unknown session key "{p["sessionKey"]}"')
    specs = _registry(ctx).specs("agent")
    tools = [{"id": s.name, "label": s.label, "description": s.description, "rawDescription": s.description,
              "source": "core"} for s in sorted(specs, key=lambda s: s.name)]
    return {"agentId": p.get("agentId") or "main", "profile": "full",
            "groups": [{"id": "core", "label": "Built-in tools", "source": "core", "tools": tools}]}


@method("sessions.list")
async def sessions_list(ctx: MethodContext, params: Any) -> Any:
    p = params if isinstance(params, dict) else {}
    raw_limit, raw_offset = p.get("limit"), p.get("offset")
    limit: int = raw_limit if isinstance(raw_limit, int) and raw_limit >= 1 else 100
    offset: int = raw_offset if isinstance(raw_offset, int) and raw_offset >= 0 else 0
    rows = [r for a in _agent_ids(ctx) for r in ctx.app[SESSIONS_KEY].list(a)]
    page = rows[offset:offset + limit]
    more = offset + limit < len(rows)
    defaults = _model_defaults(ctx)
    return {
        "ts": now_ms(), "path": str(ctx.app[SESSIONS_KEY].store_path()), "count": len(page), "totalCount": len(rows),
        "limitApplied": limit, "nextOffset": offset + limit if more else None, "hasMore": more, "owners": [],
        "defaults": {**defaults, "agentRuntime": dict(AGENT_RUNTIME), **THINKING, "modelSelectionTarget": "session"},
        "sessions": [_session_row(r, defaults) for r in page],
    }


def _session_row(r: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """One sessions.list row. As the legacy's (golden rpc-sessions-list): cron run sessions are classification
    ``cron``, background, created by the system via cron; cron and /v1 (``openai:``/``openresponses:``) sessions
    carry no ``chatType``."""
    is_main = r["key"] == "agent:main:main"
    rest = key_rest(r["key"])
    is_cron = is_cron_key(r["key"])
    row: dict[str, Any] = {"key": r["key"], "visibility": "shared"}
    if is_cron:
        row.update({"createdVia": "cron", "createdActor": {"type": "system"}})
        if r.get("createdAt") is not None:
            row["createdAt"] = r["createdAt"]
    row.update({
        "kind": "direct", "classification": "main" if is_main else "cron" if is_cron else "custom",
        "agentId": agent_of(r["key"]), "isMain": is_main, "isBackground": is_cron,
    })
    if not (is_cron or rest.startswith(("openai:", "openresponses:"))):
        row["chatType"] = "direct"
    row.update({
        "updatedAt": r.get("updatedAt"), "archived": False, "pinned": False, "unread": False,
        "sessionId": r.get("sessionId"), **THINKING, **defaults, "agentRuntime": dict(AGENT_RUNTIME),
        "hasActiveRun": False, "activeRunIds": [],
    })
    for k in ("abortedLastRun", "inputTokens", "outputTokens", "totalTokens", "status"):  # written by each run
        if k in r:
            row[k] = r[k]
    if "totalTokens" in r:
        row["totalTokensFresh"] = True
    return row


def _context_window(config: Any, provider: str, model: str) -> int | None:
    for m in (config.get(f"models.providers.{provider}.models") or []):
        if isinstance(m, dict) and m.get("id") == model:
            value = m.get("contextWindow")
            return value if isinstance(value, int) else None
    return None


@method("chat.history")
async def chat_history(ctx: MethodContext, params: Any) -> Any:
    p = _check("chat.history", CHAT_HISTORY, params)
    key = canonical_key(p["sessionKey"])
    store = ctx.app[SESSIONS_KEY]
    messages = store.history(key)
    limit: int = p.get("limit") or 200
    page = messages[-limit:]
    entry = store.get(key)
    defaults = _model_defaults(ctx)
    is_main = key == "agent:main:main"
    info = {
        "key": key, "permissionModePending": False, "kind": "direct", "classification": "main" if is_main else "custom",
        "agentId": agent_of(key), "isMain": is_main, "isBackground": False,
        "updatedAt": entry.get("updatedAt") if entry else None, "archived": False, "pinned": False, "unread": False,
        "effectiveFastMode": False, "effectiveFastModeSource": "default", "fastAutoOnSeconds": 60,
        "totalTokensFresh": False, "effectiveResponseUsage": "off", "effectiveQueueMode": "steer", **defaults,
        "modelOverrideSource": None, "runtimeSelectionLocked": False, "agentRuntime": dict(AGENT_RUNTIME),
        "snapshotAt": now_ms(), "hasActiveRun": False, "activeRunIds": [], "activeLeafEntryId": None,
    }
    if entry is not None:
        info["sessionId"] = entry["sessionId"]
    return {
        "sessionKey": p["sessionKey"], "messages": page, "pendingInputs": {"items": [], "total": 0},
        "hasMore": len(messages) > len(page), "totalMessages": len(messages),
        "defaults": {**defaults, "agentRuntime": dict(AGENT_RUNTIME), "modelSelectionTarget": "session"},
        "sessionInfo": info,
    }


def _start_turn(ctx: MethodContext, session_key: str, message: str, run_id: str, extra: str | None = None,
                final_response: bool = False) -> None:
    """Run the turn in the background; with ``final_response`` the request gets its second ``res`` at the end."""
    state = ctx.app[STATE_KEY]
    try:
        from gateway.agent.runner import run_turn
    except ImportError as exc:
        raise MethodError("UNAVAILABLE", f"agent runner unavailable: {exc}") from exc

    def emit(event: str, payload: dict[str, Any]) -> None:
        state.broadcast(event, payload, drop_if_slow=event == "agent" and payload.get("stream") == "assistant")

    async def run() -> None:
        started = time.monotonic()
        try:
            # the legacy's `agent` runs carry no chat run_status/preparation events (golden ws-agent-two-responses)
            result = await run_turn(ctx.app, session_key, message, run_id, emit, extra_system_prompt=extra,
                                    chat_run=not final_response)
            state.dedupe.put(run_id, {"runId": run_id, "status": "ok" if result.ok else "error"})
            if final_response and result.ok:
                meta = {"durationMs": int((time.monotonic() - started) * 1000),
                        "agentMeta": {"sessionId": result.session_id, "sessionFile": result.session_key,
                                      "provider": result.provider, "model": result.model},
                        "aborted": False, "stopReason": result.stop_reason}
                ctx.respond_extra(True, {"runId": run_id, "status": "ok", "summary": "completed", "result": {
                    "payloads": [{"text": result.text, "mediaUrl": None}], "meta": meta,
                    "sourceReplyDeliveryState": "missing"}}, None)
            elif final_response:
                ctx.respond_extra(False, None, {"code": "UNAVAILABLE", "message": result.error or "agent run failed"})
        except Exception:
            logger.exception("turn %s failed", run_id)
            state.dedupe.put(run_id, {"runId": run_id, "status": "error"})

    fut = asyncio.ensure_future(run())
    _TASKS.add(fut)
    fut.add_done_callback(_TASKS.discard)


@method("chat.send", WRITE)
async def chat_send(ctx: MethodContext, params: Any) -> Any:
    p = _check("chat.send", CHAT_SEND, params)
    run_id = p["idempotencyKey"]
    state = ctx.app[STATE_KEY]
    cached = state.dedupe.get(run_id)
    if cached is not None:
        return {"runId": run_id, "status": "in_flight" if cached.get("status") == "started" else cached["status"]}
    state.dedupe.put(run_id, {"runId": run_id, "status": "started"})
    _start_turn(ctx, p["sessionKey"], p["message"], run_id)
    return {"runId": run_id, "status": "started"}


@method("agent", WRITE)
async def agent(ctx: MethodContext, params: Any) -> Any:
    p = _check("agent", AGENT, params)
    run_id = p["idempotencyKey"]
    state = ctx.app[STATE_KEY]
    cached = state.dedupe.get(run_id)
    if cached is not None:
        return {"runId": run_id, "status": "in_flight" if cached.get("status") == "started" else cached["status"]}
    state.dedupe.put(run_id, {"runId": run_id, "status": "started"})
    key = p.get("sessionKey") or "main"
    _start_turn(ctx, key, p["message"], run_id, p.get("extraSystemPrompt"), final_response=True)
    session_key = canonical_key(key)
    return {"runId": run_id, "sessionKey": session_key, "agentId": agent_of(session_key),
            "status": "accepted", "acceptedAt": now_ms()}
