"""ToolRegistry: HTTP deny list and config overrides, sessions_list over a real on-disk session store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.agent.tools import DEFAULT_HTTP_DENY, ToolInputError, ToolRegistry
from gateway.config import config_from_mapping
from gateway.sessions import SessionStore


def registry(tmp_path: Path, tools: dict[str, list[str]] | None = None) -> ToolRegistry:
    data = {"gateway": {"mode": "local", "auth": {"mode": "token", "token": "t" * 32}, **({"tools": tools} if tools else {})}}
    cfg = config_from_mapping(data, tmp_path)
    return ToolRegistry(cfg, SessionStore(tmp_path))


def test_default_deny_list_is_the_legacys() -> None:
    assert DEFAULT_HTTP_DENY == {"exec", "spawn", "shell", "fs_write", "fs_delete", "fs_move", "apply_patch",
                                 "sessions_spawn", "sessions_send", "cron", "gateway", "nodes"}


def test_deny_and_allow(tmp_path: Path) -> None:
    reg = registry(tmp_path, {"deny": ["agents_list"], "allow": ["exec"]})
    assert reg.http_denied("agents_list") and not reg.http_denied("exec") and reg.http_denied("shell")
    assert reg.get("agents_list", "http") is None and reg.get("agents_list", "agent") is not None
    assert "agents_list" not in reg.names("http")


def test_sessions_list_pages_real_entries(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    for i in range(3):
        reg.sessions.ensure(f"s{i}")
    result = reg.invoke("sessions_list", {"limit": 2}, surface="http").to_json()
    details = result["details"]
    assert (details["count"], details["hasMore"], details["limitApplied"]) == (2, True, 2)
    assert result["content"][0]["text"] == json.dumps(details, indent=2)
    assert {r["kind"] for r in details["sessions"]} == {"other"}
    with pytest.raises(ToolInputError):
        reg.invoke("sessions_list", {"limit": "x"})
    with pytest.raises(KeyError):
        reg.invoke("exec", {}, surface="http")


def test_agents_list(tmp_path: Path) -> None:
    details = registry(tmp_path).invoke("agents_list", {}).details
    assert details == {"requester": "main", "allowAny": False, "agents": [
        {"id": "main", "configured": True, "model": "openai/gpt-6-astra",
         "agentRuntime": {"id": "auto", "source": "implicit"}}]}
