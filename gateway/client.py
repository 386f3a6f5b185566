"""A minimal protocol-4 WS client for ``pyclaw gateway call|health|status`` (the legacy CLI's JSON shapes).

Owns ``call(url, method, params, token=…, password=…, timeout_ms=…, expect_final=…)`` which connects as
``client {id:"cli", mode:"cli"}`` with every operator scope, answers the challenge, sends one request and returns
``(exit_code, stdout_json, stderr_text)`` in the shapes of reference §6.3: ``gateway_request_error`` (with
``code``, ``message``, ``details``, ``retryable``), ``gateway_transport_error`` (``kind`` closed|timeout) and
``gateway_credentials_required``. May import ``websockets`` and the standard library.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlparse

import websockets

__all__ = ["ALL_SCOPES", "call"]

ALL_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing",
              "operator.talk.secrets"]


def _transport_error(url: str, source: str, kind: str, message: str, reason: str | None = None,
                     timeout_ms: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"type": "gateway_transport_error", "kind": kind, "message": message}
    if reason is not None:
        err["reason"] = reason
    if timeout_ms is not None:
        err["timeoutMs"] = timeout_ms
    return {"ok": False, "error": err, "gateway": {"url": url, "urlSource": source}}


def _request_error(error: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "gateway_request_error", "code": error.get("code"), "message": error.get("message")}
    for k in ("details", "retryable", "retryAfterMs"):
        if k in error:
            out[k] = error[k]
    if "retryable" not in out and "details" not in out:
        out["retryable"] = False
    return {"ok": False, "error": out}


async def _call(url: str, method: str, params: Any, token: str | None, password: str | None, expect_final: bool) -> tuple[int, Any, str]:
    async with websockets.connect(url, max_size=32 * 1024 * 1024, open_timeout=None) as ws:
        challenge = json.loads(await ws.recv())
        if challenge.get("event") != "connect.challenge":
            return 1, _transport_error(url, "cli --url", "closed", "unexpected first frame"), "unexpected first frame"
        auth: dict[str, str] = {}
        if token:
            auth["token"] = token
        if password:
            auth["password"] = password
        await ws.send(json.dumps({"type": "req", "id": str(uuid.uuid4()), "method": "connect", "params": {
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "pyclaw", "platform": "linux", "mode": "cli"},
            "role": "operator", "scopes": ALL_SCOPES, "caps": [], "auth": auth}}))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "res":
                break
        if not frame.get("ok"):
            err = frame.get("error") or {}
            return 1, _request_error(err), f"gateway connect failed: GatewayClientRequestError: {err.get('message')}"
        rid = str(uuid.uuid4())
        req: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        await ws.send(json.dumps(req))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") != "res" or frame.get("id") != rid:
                continue
            if not frame.get("ok"):
                err = frame.get("error") or {}
                return 1, _request_error(err), f"Gateway call failed: GatewayClientRequestError: {err.get('message')}"
            payload = frame.get("payload")
            if expect_final and isinstance(payload, dict) and payload.get("status") in ("accepted", "started", "in_flight"):
                continue
            return 0, payload, ""


async def call(url: str, method: str, params: Any = None, *, token: str | None = None, password: str | None = None,
               timeout_ms: int = 10_000, expect_final: bool = False, url_source: str = "cli --url") -> tuple[int, Any, str]:
    """Run one RPC; returns ``(exit code, JSON for stdout, text for stderr)``."""
    if url_source == "cli --url" and not (token or password):
        msg = ("gateway url override requires explicit credentials\n"
               "Fix: pass --token or --password with --url.\n"
               "For the default local or SSH-tunneled Gateway, remove --url to use the configured target.")
        return 1, {"ok": False, "error": {"type": "gateway_credentials_required", "message": msg}}, msg
    try:
        return await asyncio.wait_for(_call(url, method, params, token, password, expect_final), timeout_ms / 1000)
    except TimeoutError:
        secs = timeout_ms / 1000
        text = f"Gateway not reachable after waiting {secs:g} s."
        return 1, _transport_error(url, url_source, "timeout", text, timeout_ms=timeout_ms), text
    except OSError as exc:
        parsed = urlparse(url)
        code = "ECONNREFUSED" if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower() else type(exc).__name__
        reason = f"connect {code} {parsed.hostname}:{parsed.port}"
        text = f"Gateway not reachable at {url} ({code})."
        return 1, _transport_error(url, url_source, "closed", text, reason=reason), text
    except websockets.ConnectionClosed as exc:
        rcvd = exc.rcvd
        reason = f"gateway closed ({rcvd.code if rcvd else 1006}): {rcvd.reason if rcvd else ''}"
        return 1, _transport_error(url, url_source, "closed", reason), reason
    except (websockets.InvalidHandshake, ValueError) as exc:
        return 1, _transport_error(url, url_source, "closed", f"Gateway handshake failed: {exc}"), str(exc)
