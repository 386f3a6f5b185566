"""Inventory methods whose honest answer in pyclaw is "none here": plugins, skills, TTS, users, session previews.

Owns ``plugins.list`` (pyclaw loads no JS plugins), ``skills.status`` (no skills), ``tts.status`` (no TTS provider:
disabled), ``users.self`` (shared-secret connections carry no user: FORBIDDEN, as the legacy) and
``sessions.preview`` (the legacy's params check, then previews from the session store). Key sets follow the
legacy's answers; the lists are empty because pyclaw has nothing to list (docs: the plugin sidecar closes this).
"""

from __future__ import annotations

from typing import Any

from gateway.app import CONFIG_KEY, SESSIONS_KEY
from gateway.dispatch import MethodContext, MethodError, method
from gateway.methods.agents import _check
from gateway.protocol import NES, S, obj, opt, req
from gateway.sessions import canonical_key
from gateway.state import now_ms

__all__: list[str] = []

SESSIONS_PREVIEW = obj(req("keys", S("array", items=NES)), opt("limit", S("integer", min=1)),
                       opt("maxChars", S("integer", min=1)))


@method("plugins.list")
async def plugins_list(ctx: MethodContext, params: Any) -> Any:
    return {"plugins": [], "diagnostics": [], "generation": 0, "mutationAllowed": False}


@method("skills.status")
async def skills_status(ctx: MethodContext, params: Any) -> Any:
    config = ctx.app[CONFIG_KEY]
    return {"workspaceDir": str(config.workspace_dir), "managedSkillsDir": str(config.state_dir / "skills"),
            "agentId": "main", "skills": []}


@method("tts.status")
async def tts_status(ctx: MethodContext, params: Any) -> Any:
    config = ctx.app[CONFIG_KEY]
    return {"enabled": False, "auto": "off", "provider": "", "persona": None, "personas": [], "fallbackProvider": None,
            "fallbackProviders": [], "prefsPath": str(config.state_dir / "settings" / "tts.json"), "providerStates": []}


@method("users.self")
async def users_self(ctx: MethodContext, params: Any) -> Any:
    raise MethodError("FORBIDDEN", "users.self requires an authenticated user")


@method("sessions.preview")
async def sessions_preview(ctx: MethodContext, params: Any) -> Any:
    p = _check("sessions.preview", SESSIONS_PREVIEW, params)
    limit = p.get("limit") or 12
    max_chars = p.get("maxChars") or 240
    store = ctx.app[SESSIONS_KEY]
    previews = []
    for key in p["keys"]:
        entry = store.get(key)
        if entry is None:
            previews.append({"key": key, "status": "missing", "items": []})
            continue
        items = [{"role": m.get("role"), "text": str(m.get("content", ""))[:max_chars]} for m in store.history(key)[-limit:]]
        previews.append({"key": key, "status": "ok" if items else "empty", "items": items})
    return {"ts": now_ms(), "previews": previews, "sessionKeys": [canonical_key(k) for k in p["keys"]]}
