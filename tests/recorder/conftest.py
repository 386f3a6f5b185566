"""A small OpenClaw-like gateway on loopback (aiohttp, port 0) for fast recorder/replay tests.

It speaks just enough of the protocol to exercise the recorder: a ``connect.challenge`` on open, a connect that
checks the token (or password) and verifies a device signature with the real v3 payload, ``health``, an
``echo`` method, a ``chat.send`` that streams events, closes like the legacy on bad handshakes, and HTTP
routes that echo what they got. It records every frame and request it received in ``.seen`` so tests can
assert what was actually sent on the wire. The real legacy is exercised by the tests marked ``legacy``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from recorder.identity import verify
from wire.device import b64url_decode, device_id_from_public_key, payload_v3


@dataclass(eq=False)
class ToyGateway:
    url: str = ""
    token: str = "toy-token-0123456789abcdef0123456789abcdef01234567"
    password: str | None = None
    hook_token: str = "toy-hook-0123456789abcdef0123456789abcdef0123456"
    seen: list[Any] = field(default_factory=list)
    connects: list[dict[str, Any]] = field(default_factory=list)
    nonces: list[str] = field(default_factory=list)
    #: ``tasked``: None sends its ``task`` event before the ``res``; a number sends it that long after the ``res``.
    task_after_s: float | None = None
    #: ``tasked``: how many ``running`` upserts of the task come first (progress updates, right away).
    task_running: int = 0


GW_KEY: web.AppKey[ToyGateway] = web.AppKey("gw")


async def _ws(request: web.Request) -> web.WebSocketResponse:
    gw: ToyGateway = request.app[GW_KEY]
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    nonce = str(uuid.uuid4())
    ts = int(time.time() * 1000)
    gw.nonces.append(nonce)
    await ws.send_str(json.dumps({"type": "event", "event": "connect.challenge", "payload": {"nonce": nonce, "ts": ts}}))
    authed = False
    seq = 0
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.BINARY:
            gw.seen.append(("binary", len(msg.data)))
            continue
        if msg.type != aiohttp.WSMsgType.TEXT:
            break
        gw.seen.append(msg.data)
        try:
            frame = json.loads(msg.data)
        except ValueError:
            if not authed:
                await ws.close(code=1000)
                break
            continue
        if not authed:
            if frame.get("method") != "connect":
                await ws.send_str(json.dumps({"type": "res", "id": frame.get("id"), "ok": False,
                                              "error": {"code": "INVALID_REQUEST", "message": "invalid handshake"}}))
                await ws.close(code=1008, message=b"invalid handshake")
                break
            params = frame.get("params") or {}
            gw.connects.append(params)
            error = _check_connect(gw, params, nonce)
            if error:
                await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": False,
                                              "error": {"code": "INVALID_REQUEST", "message": error}}))
                await ws.close(code=1008, message=error.encode())
                break
            authed = True
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True,
                                          "payload": {"type": "hello-ok", "protocol": 4, "server": {"connId": str(uuid.uuid4())},
                                                      "auth": {"deviceToken": "issued-device-token-secret"}}}))
            continue
        method = frame.get("method")
        if method == "health":
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": {"ok": True}}))
        elif method == "echo":
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": frame.get("params")}))
        elif method == "chat.send":
            run = (frame.get("params") or {}).get("idempotencyKey")
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": {"runId": run, "status": "started"}}))
            for state in ("status", "delta", "final"):
                await asyncio.sleep(0.02)
                seq += 1
                await ws.send_str(json.dumps({"type": "event", "event": "chat", "seq": seq,
                                              "payload": {"runId": run, "state": state}}))
        elif method == "agent":  # two responses on one id, like the legacy's agent method
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": {"status": "accepted"}}))
            await asyncio.sleep(0.5)  # longer than the replayer's quiet window
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": {"status": "ok"}}))
        elif method == "tasked":  # a background event that may trail the answer, like the legacy's task events
            task = json.dumps({"type": "event", "event": "task",
                               "payload": {"action": "upserted", "task": {"status": "completed"}}})
            for _ in range(gw.task_running):
                await ws.send_str(json.dumps({"type": "event", "event": "task",
                                              "payload": {"action": "upserted", "task": {"status": "running"}}}))
            if gw.task_after_s is None:
                await ws.send_str(task)
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True, "payload": {"status": "ok"}}))
            if gw.task_after_s is not None:
                await asyncio.sleep(gw.task_after_s)
                await ws.send_str(task)
        elif method == "bye":
            await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True}))
            await ws.close(code=4001, message=b"bye")
            break
        elif method == "slow":
            pass  # never answers
        else:
            await ws.send_str(json.dumps({"type": "res", "id": frame.get("id", "invalid"), "ok": False,
                                          "error": {"code": "INVALID_REQUEST", "message": f"unknown method: {method}"}}))
    return ws


def _check_connect(gw: ToyGateway, params: dict[str, Any], nonce: str) -> str | None:
    auth = params.get("auth") or {}
    if gw.password is not None:
        if auth.get("password") != gw.password:
            return "unauthorized: gateway password mismatch"
    elif auth.get("token") != gw.token:
        return "unauthorized: gateway token mismatch"
    device = params.get("device")
    if device is not None:
        client = params.get("client") or {}
        try:
            raw = b64url_decode(device["publicKey"])
            if device_id_from_public_key(raw) != device["id"]:
                return "device identity mismatch"
        except (KeyError, ValueError):
            return "device identity mismatch"
        if device.get("nonce") != nonce:
            return "device nonce mismatch"
        payload = payload_v3(device_id=device["id"], client_id=client.get("id", ""), client_mode=client.get("mode", ""),
                             role=params.get("role", "operator"), scopes=params.get("scopes") or [],
                             signed_at_ms=device["signedAt"], token=auth.get("token"), nonce=nonce,
                             platform=client.get("platform"), device_family=client.get("deviceFamily"))
        if not verify(device["publicKey"], payload, device["signature"]):
            return "device signature invalid"
    return None


async def _http(request: web.Request) -> web.Response:
    gw: ToyGateway = request.app[GW_KEY]
    body = await request.read()
    gw.seen.append((request.method, request.path_qs, dict(request.headers), body))
    if request.path == "/healthz":
        return web.json_response({"ok": True, "status": "live"})
    if request.path == "/hooks/wake":
        if request.headers.get("Authorization") != f"Bearer {gw.hook_token}":
            return web.Response(status=401, text="Unauthorized")
        return web.json_response({"ok": True, "got": json.loads(body or b"null")})
    if request.path == "/slow":
        await asyncio.sleep(2)
        return web.Response(text="late")
    if request.path == "/binary":
        return web.Response(body=b"\xff\xfe\x00binary", content_type="application/octet-stream")
    return web.Response(status=404, text="Not Found")


async def _dispatch(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _ws(request)
    return await _http(request)


async def start_toy(gw: ToyGateway) -> web.AppRunner:
    app = web.Application()
    app[GW_KEY] = gw
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gw.url = f"http://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def toy() -> AsyncIterator[ToyGateway]:
    gw = ToyGateway()
    runner = await start_toy(gw)
    try:
        yield gw
    finally:
        await runner.cleanup()


@pytest.fixture
async def toy_b() -> AsyncIterator[ToyGateway]:
    """A second toy with other credentials (a replay target)."""
    gw = ToyGateway(token="other-token-fedcba9876543210fedcba9876543210fedcba98",
                    hook_token="other-hook-fedcba9876543210fedcba9876543210fedcba9")
    runner = await start_toy(gw)
    try:
        yield gw
    finally:
        await runner.cleanup()
