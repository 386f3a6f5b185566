"""``config.get`` and ``config.schema``: the loaded config with secrets redacted, and pyclaw's schema.

``config.get`` answers like the legacy: ``parsed`` is the file as read, ``sourceConfig``/``resolved`` add the
default agent roster (``materialize_source``), ``runtimeConfig``/``config`` also the runtime defaults
(``materialize_runtime``; the plugin-manifest-driven model catalog defaults are not applied).

Owns ``redact_config`` (every sensitive key -> ``__OPENCLAW_REDACTED__``, as the legacy's ``.register(sensitive)``
keys: gateway.auth.token/password, gateway.remote.token/password, hooks.token, provider apiKey, and any key named
token/password/apiKey/secret) and the raw text redacted by value. ``config.get`` is a read method in protocol 4.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from gateway.app import CONFIG_KEY
from gateway.config_schema import (
    OPENCLAW_SCHEMA,
    Any_,
    Arr,
    Bool,
    Enum,
    Node,
    NotImplemented_,
    Num,
    Obj,
    Rec,
    Secret,
    Str,
)
from gateway.dispatch import ADMIN, READ, MethodContext, method
from gateway.hello import _hmac_hex, _journal_key, applied_config_hash

__all__ = ["REDACTED", "materialize_runtime", "materialize_source", "redact_config"]

REDACTED = "__OPENCLAW_REDACTED__"
_SENSITIVE = {"token", "password", "apikey", "secret", "clientsecret", "privatekey", "sessionkey"}


def redact_config(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (REDACTED if k.lower() in _SENSITIVE and v not in (None, "") else redact_config(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_config(v) for v in node]
    return node


def redact_text(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


def materialize_source(data: dict[str, Any]) -> dict[str, Any]:
    """The legacy's resolved source config: the parsed file plus the default agent roster (``agents.entries``
    ``{"main": {}}`` when neither ``entries`` (non-empty) nor ``list`` is configured; ``legacy.roster``)."""
    out = copy.deepcopy(data)
    agents = out.get("agents")
    if agents is None:
        agents = out["agents"] = {}
    if isinstance(agents, dict) and "list" not in agents and not agents.get("entries"):
        agents["entries"] = {"main": {}}
    return out


def materialize_runtime(source: dict[str, Any]) -> dict[str, Any]:
    """The legacy's ``materializeRuntimeConfig`` defaults (``config/materialize.ts`` and the zod defaults) that do not
    depend on its plugin manifests: ``messages.ackReactionScope``, agent and subagent concurrency, compaction mode,
    ``commands`` and each provider model's ``api``/``reasoning``/``input``. Explicit values are kept."""
    out = copy.deepcopy(source)
    messages = out.setdefault("messages", {})
    if isinstance(messages, dict):
        messages.setdefault("ackReactionScope", "group-mentions")
    agents = out.get("agents")
    if isinstance(agents, dict):
        defaults = agents.setdefault("defaults", {})
        if isinstance(defaults, dict):
            if not _finite(defaults.get("maxConcurrent")):
                defaults["maxConcurrent"] = 8
            sub = defaults.setdefault("subagents", {})
            if isinstance(sub, dict):
                if not _finite(sub.get("maxConcurrent")):
                    sub["maxConcurrent"] = 8
                if not _finite(sub.get("archiveAfterMinutes")):
                    sub["archiveAfterMinutes"] = 60
            compaction = defaults.get("compaction")
            if not (isinstance(compaction, dict) and compaction.get("mode")):
                defaults["compaction"] = {**(compaction if isinstance(compaction, dict) else {}), "mode": "safeguard"}
    commands = out.setdefault("commands", {})
    if isinstance(commands, dict):
        for key, value in (("native", "auto"), ("nativeSkills", "auto"), ("restart", True)):
            commands.setdefault(key, value)
    providers = (out.get("models") or {}).get("providers") if isinstance(out.get("models"), dict) else None
    for provider in (providers or {}).values() if isinstance(providers, dict) else ():
        if not isinstance(provider, dict) or not isinstance(provider.get("models"), list):
            continue
        for row in provider["models"]:
            if isinstance(row, dict):
                if not isinstance(row.get("reasoning"), bool):
                    row["reasoning"] = False
                row.setdefault("input", ["text"])
                if row.get("api") is None and provider.get("api") is not None:
                    row["api"] = provider["api"]
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@method("config.get", READ)
async def config_get(ctx: MethodContext, params: Any) -> Any:
    config = ctx.app[CONFIG_KEY]
    redacted = redact_config(dict(config.data))
    source = materialize_source(redacted)
    runtime = materialize_runtime(source)
    raw = redact_text(config.raw_text, config.secrets())
    digest = _hmac_hex(_journal_key(config.state_dir), (config.raw_text or "").encode())
    return {
        "agentRosterIncludeOwned": False, "appliedConfigHash": applied_config_hash(ctx.app), "bindingsIncludeOwned": False,
        "config": runtime, "configRevisionHash": f"hmac-sha256:v1:{digest}", "exists": config.exists,
        "hash": digest, "includeProvenance": [], "includedPaths": list(config.included_paths),
        "issues": [], "legacyIssues": [], "parsed": redacted, "path": str(config.path), "raw": raw,
        "resolved": source, "runtimeConfig": runtime, "sourceConfig": source, "valid": True,
        "warnings": [{"path": "<root>", "message": w} for w in config.warnings]
        + [{"path": p, "message": "accepted but not implemented by pyclaw"} for p in config.not_implemented],
    }


def _json_schema(node: Node) -> dict[str, Any]:
    if isinstance(node, Obj):
        out: dict[str, Any] = {"type": "object", "properties": {k: _json_schema(v) for k, v in node.keys.items()}}
        if node.strict:
            out["additionalProperties"] = False
        return out
    if isinstance(node, Str):
        return {"type": "string", **({"minLength": node.min_len} if node.min_len else {})}
    if isinstance(node, Bool):
        return {"type": "boolean"}
    if isinstance(node, Num):
        out = {"type": "integer" if node.integer else "number"}
        if node.lo is not None:
            out["minimum"] = node.lo
        if node.hi is not None:
            out["maximum"] = node.hi
        return out
    if isinstance(node, Enum):
        return {"type": "string", "enum": list(node.values)}
    if isinstance(node, Arr):
        return {"type": "array", "items": _json_schema(node.item)}
    if isinstance(node, Rec):
        return {"type": "object", "additionalProperties": _json_schema(node.value)}
    if isinstance(node, Secret):
        return {"anyOf": [{"type": "string"}, {"type": "object"}], "sensitive": True}
    if isinstance(node, NotImplemented_):
        return {"description": "accepted; not implemented by pyclaw"}
    assert isinstance(node, Any_ | Node)
    return {}


@method("config.schema", ADMIN)
async def config_schema(ctx: MethodContext, params: Any) -> Any:
    schema = _json_schema(OPENCLAW_SCHEMA)
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "OpenClawConfig"
    return {"schema": schema, "uiHints": {}, "version": "2026.9.6", "generatedAt": None}
