"""The ``hello-ok`` payload and the connection snapshot (reference §2.4).

Owns ``build_hello`` and ``build_snapshot``: server identity, ``features`` (only what pyclaw implements: the
method table of ``gateway.dispatch`` and the events it really emits), ``auth``, ``policy`` (the legacy's
constants), and ``snapshot`` (presence, health, stateVersion, uptimeMs, appliedConfigHash, sessionDefaults, ...).
Keys pyclaw cannot back with real behaviour (``pluginSurfaceUrls``, ``controlUiWidgetKinds``,
``controlUiLinkReaders``) are left out and listed in docs/compatibility.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from typing import Any

from aiohttp import web

from gateway.app import CONFIG_KEY, STATE_KEY
from gateway.dispatch import ADMIN, implemented_methods, read_granted
from gateway.state import BUILD_ID, MAX_BUFFERED_BYTES, VERSION, ClientConn

__all__ = ["EVENTS", "applied_config_hash", "build_hello", "build_snapshot", "session_defaults"]

EVENTS = ["connect.challenge", "agent", "chat", "models.snapshot", "presence", "tick", "shutdown", "health",
          "device.pair.requested"]
CAPABILITIES = ["model-catalog-snapshot"]
MAX_PAYLOAD = 26_214_400


@functools.lru_cache(maxsize=64)
def _journal_key_at(state_dir: str) -> bytes:
    path = os.path.join(state_dir, "config-journal-fingerprint.key")
    try:
        with open(path, "rb") as fh:
            key = fh.read()
        if key:
            return key
    except FileNotFoundError:
        pass
    key = os.urandom(32).hex().encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def _journal_key(state_dir: Any) -> bytes:
    """The per-install HMAC key (created on first use, then cached for the process)."""
    return _journal_key_at(str(state_dir))


@functools.lru_cache(maxsize=64)
def _hmac_hex(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def applied_config_hash(app: web.Application) -> str:
    """``hmac-sha256:v1:<hex>`` keyed per install, like the legacy's config journal fingerprint."""
    config = app[CONFIG_KEY]
    body = (config.raw_text or repr(sorted(config.data.items()))).encode("utf-8")
    return "hmac-sha256:v1:" + _hmac_hex(_journal_key(config.state_dir), body)


def session_defaults(app: web.Application) -> dict[str, Any]:
    config = app[CONFIG_KEY]
    return {
        "defaultAgentId": "main", "modelConfigured": bool(config.get("agents.defaults.model.primary")),
        "ownership": "sole", "selectionRequired": False, "mainKey": "main", "mainSessionKey": "agent:main:main",
        "scope": "per-sender",
    }


def build_snapshot(
    app: web.Application, role: str = "operator", scopes: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """hello-ok's snapshot as the legacy projects it for one client (dist ``buildGatewaySnapshot``): presence
    only for operators with read access, ``updateSchedule`` likewise, and the install paths and auth mode only
    for ``operator.admin``."""
    from gateway.methods.health import cached_health

    state, config = app[STATE_KEY], app[CONFIG_KEY]
    readable = role == "operator" and read_granted(scopes)
    snapshot: dict[str, Any] = {
        "suspension": {"phase": "accepting"},
        "presence": state.presence() if readable else [],
        "health": cached_health(app),
        "stateVersion": state.state_version(),
        "uptimeMs": state.uptime_ms(),
        "appliedConfigHash": applied_config_hash(app),
        "sessionDefaults": session_defaults(app),
    }
    if readable:
        snapshot["updateSchedule"] = {"channel": "stable",
                                      "autoEnabled": bool(config.get("update.auto.enabled", False))}
    if ADMIN in scopes:
        snapshot["configPath"] = str(config.path)
        snapshot["stateDir"] = str(config.state_dir)
        snapshot["authMode"] = config.auth.mode
    return snapshot


def build_hello(app: web.Application, conn: ClientConn, *, protocol: int, auth_block: dict[str, Any]) -> dict[str, Any]:
    state, config = app[STATE_KEY], app[CONFIG_KEY]
    return {
        "type": "hello-ok",
        "protocol": protocol,
        "server": {"version": VERSION, "buildId": BUILD_ID, "bootId": state.boot_id, "controlUiBuildSource": "bundled",
                   "connId": conn.conn_id},
        "features": {"methods": implemented_methods(), "events": list(EVENTS), "capabilities": list(CAPABILITIES)},
        "snapshot": build_snapshot(app, conn.role, conn.scopes),
        "auth": auth_block,
        "policy": {
            "maxPayload": MAX_PAYLOAD, "maxBufferedBytes": MAX_BUFFERED_BYTES, "tickIntervalMs": config.tick_interval_ms,
            "attachments": {"maxBytes": 19_464_192, "maxImageBytes": 6_291_456},
            "allowedSessionVisibilities": ["shared", "read-only", "suggest", "draft"],
            "hasMultipleSessionSharingIdentities": False,
        },
    }
