"""The candidate's tool registry: the core tools pyclaw implements and the legacy's default HTTP deny list.

Owns ``ToolRegistry(config, sessions)`` (built by ``gateway.app.make_app`` under ``TOOLS_KEY``), ``ToolSpec``,
``ToolResult`` and ``ToolInputError``. Tools answer from real state: ``sessions_list`` and ``sessions_history``
read the ``SessionStore``, ``agents_list`` reads the config. Results have the legacy's ``{content, details}``
shape with ``content[0].text`` = ``JSON.stringify(details, null, 2)``.

The HTTP surface (``/tools/invoke``) hides the deny list (reference §4.3: exec, spawn, shell, fs_write, fs_delete,
fs_move, apply_patch, sessions_spawn, sessions_send, cron, gateway, nodes), adjusted by ``gateway.tools.{allow,
deny}``; a denied and an unknown tool both answer "Tool not available". May import ``gateway.sessions``,
``gateway.config`` and the standard library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import GatewayConfig
from gateway.sessions import SessionStore, agent_of, canonical_key

logger = logging.getLogger(__name__)

DEFAULT_HTTP_DENY = frozenset({
    "exec", "spawn", "shell", "fs_write", "fs_delete", "fs_move", "apply_patch",
    "sessions_spawn", "sessions_send", "cron", "gateway", "nodes",
})
SESSIONS_LIST_DEFAULT_LIMIT = 100


class ToolInputError(ValueError):
    """Bad tool arguments: ``/tools/invoke`` answers 400 ``tool_error`` with this message."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    details: Any

    def to_json(self) -> dict[str, Any]:
        text = json.dumps(self.details, indent=2, ensure_ascii=False)
        return {"content": [{"type": "text", "text": text}], "details": self.details}


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    label: str
    description: str
    parameters: Mapping[str, Any]
    section: str = "sessions"
    run: Callable[[ToolRegistry, Mapping[str, Any], str], ToolResult] | None = field(default=None, compare=False)

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "label": self.label, "description": self.description, "source": "core",
                "section": self.section}


def _session_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    key = str(entry["key"])
    rest = key.split(":", 2)[2] if key.count(":") >= 2 else key
    kind = "main" if rest == "main" else ("cron" if rest.startswith("cron:") else "other")
    row: dict[str, Any] = {
        "key": key, "sessionId": entry.get("sessionId"), "agentId": agent_of(key), "kind": kind,
        "channel": entry.get("channel") or ("internal" if kind == "cron" else "unknown"),
        "archived": bool(entry.get("archived", False)), "pinned": bool(entry.get("pinned", False)),
    }
    if kind == "cron":  # isolated hook/cron runs are created by the system and list no run status (observed)
        row["createdActor"] = {"type": "system"}
    row["updatedAt"] = entry.get("updatedAt")
    for k in ("model", "contextTokens", "totalTokens") + (() if kind == "cron" else ("status", "abortedLastRun")):
        if k in entry:
            row[k] = entry[k]
    return row


def _int_arg(args: Mapping[str, Any], name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
    raw = args.get(name, default)
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != raw:
        raise ToolInputError(f"{name} must be a number")
    return max(lo, min(hi, int(raw)))


def _sessions_list(reg: ToolRegistry, args: Mapping[str, Any], session_key: str) -> ToolResult:
    limit = _int_arg(args, "limit", SESSIONS_LIST_DEFAULT_LIMIT)
    kinds = args.get("kinds")
    rows = [_session_row(e) for e in reg.sessions.list(agent_of(canonical_key(session_key)))]
    if isinstance(kinds, list) and kinds:
        rows = [r for r in rows if r["kind"] in kinds]
    page = rows[:limit]
    return ToolResult({"count": len(page), "sessions": page, "hasMore": len(rows) > limit, "limitApplied": limit})


def _sessions_history(reg: ToolRegistry, args: Mapping[str, Any], session_key: str) -> ToolResult:
    key = args.get("sessionKey", session_key)
    if not isinstance(key, str) or not key.strip():
        raise ToolInputError("sessionKey required")
    limit = _int_arg(args, "limit", 50)
    ck = canonical_key(key)
    return ToolResult({"sessionKey": ck, "messages": reg.sessions.history(ck, limit=limit)})


def _agents_list(reg: ToolRegistry, args: Mapping[str, Any], session_key: str) -> ToolResult:
    agents = []
    for agent_id in reg.agent_ids():
        agents.append({"id": agent_id, "configured": True, "model": reg.primary_model(),
                       "agentRuntime": {"id": "auto", "source": "implicit"}})
    return ToolResult({"requester": agent_of(canonical_key(session_key)), "allowAny": False, "agents": agents})


_CORE_TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("sessions_list", "Sessions", "List sessions with optional filters.",
             {"type": "object", "properties": {"limit": {"type": "number"}, "kinds": {"type": "array"}}},
             run=_sessions_list),
    ToolSpec("sessions_history", "Session History", "Read the transcript of a session.",
             {"type": "object", "properties": {"sessionKey": {"type": "string"}, "limit": {"type": "number"}}},
             run=_sessions_history),
    ToolSpec("agents_list", "Agents", "List the agents this session may target.",
             {"type": "object", "properties": {}}, section="agents", run=_agents_list),
)


class ToolRegistry:
    """Tools pyclaw can run, looked up by name, with the per-surface policy applied."""

    def __init__(self, config: GatewayConfig, sessions: SessionStore) -> None:
        self.config = config
        self.sessions = sessions
        self._tools: dict[str, ToolSpec] = {t.name: t for t in _CORE_TOOLS}

    # -- config views -------------------------------------------------------------------------------------------
    def agent_ids(self) -> list[str]:
        ids = ["main"]
        for a in self.config.get("agents.list") or ():
            if isinstance(a, Mapping) and isinstance(a.get("id"), str) and a["id"] not in ids:
                ids.append(a["id"])
        return ids

    def primary_model(self) -> str:
        model = self.config.get("agents.defaults.model")
        primary = model.get("primary") if isinstance(model, Mapping) else model
        return primary if isinstance(primary, str) and primary else "openai/gpt-6-astra"

    # -- policy ---------------------------------------------------------------------------------------------------
    def http_denied(self, name: str) -> bool:
        allow = set(self.config.get("gateway.tools.allow") or ())
        deny = set(self.config.get("gateway.tools.deny") or ())
        return (name in DEFAULT_HTTP_DENY and name not in allow) or name in deny

    def names(self, surface: str = "agent") -> list[str]:
        return [n for n in self._tools if surface != "http" or not self.http_denied(n)]

    def specs(self, surface: str = "agent") -> list[ToolSpec]:
        return [self._tools[n] for n in self.names(surface)]

    def get(self, name: str, surface: str = "agent") -> ToolSpec | None:
        if surface == "http" and self.http_denied(name):
            return None
        return self._tools.get(name)

    # -- execution ------------------------------------------------------------------------------------------------
    def invoke(self, name: str, args: Mapping[str, Any], session_key: str = "main", surface: str = "agent") -> ToolResult:
        """Run ``name``; raises ``KeyError`` if it is not available on ``surface``, ``ToolInputError`` on bad args."""
        spec = self.get(name, surface)
        if spec is None or spec.run is None:
            raise KeyError(name)
        return spec.run(self, args, session_key)
