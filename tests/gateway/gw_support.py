"""Helpers and fixtures for the candidate's WS/core tests (imported by tests/gateway/conftest.py): ``gateway.make_app`` served by a real aiohttp runner on 127.0.0.1.

- ``gw_factory(overrides=None, env=None)``: async context manager yielding a ``RunningGateway`` (``url``,
  ``port``, ``token``, ``app``, ``state_dir``) for the offline config of reference §1.4 (token auth), with
  ``overrides`` deep-merged on top.
- ``gw``: one default gateway per test.
- ``WsClient``: a tiny ``websockets`` client that reads the challenge, connects and calls methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from aiohttp import web

from gateway.app import make_app
from gateway.config import config_from_mapping, deep_merge

CLI_CLIENT = {"id": "cli", "version": "0.0.1-test", "platform": "linux", "mode": "cli"}
ALL_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing",
              "operator.talk.secrets"]


def offline_config(token: str, model_url: str = "http://127.0.0.1:9/v1") -> dict[str, Any]:
    return {
        "gateway": {"mode": "local", "bind": "loopback", "auth": {"mode": "token", "token": token}},
        "models": {"providers": {"fakellm": {
            "baseUrl": model_url, "apiKey": "fake-key", "api": "openai-completions",
            "models": [{"id": "fake-model", "name": "Fake", "reasoning": False, "input": ["text"],
                        "contextWindow": 32000, "maxTokens": 1024}]}}},
        "agents": {"defaults": {"model": {"primary": "fakellm/fake-model"}}},
    }


@dataclass
class RunningGateway:
    app: web.Application
    port: int
    token: str
    state_dir: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


class WsClient:
    """One WS connection: ``challenge`` holds the first frame; ``connect()`` sends a connect request."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.challenge: dict[str, Any] = {}
        self.pending: list[dict[str, Any]] = []  # frames skipped while waiting for a response

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))  # type: ignore[no-any-return]

    async def send(self, obj: Any) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else json.dumps(obj))

    async def connect(self, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        p: dict[str, Any] = {"minProtocol": 4, "maxProtocol": 4, "client": dict(CLI_CLIENT), "role": "operator",
                             "scopes": list(ALL_SCOPES)}
        p.update(params or {})
        p.update(kw)
        await self.send({"type": "req", "id": "c1", "method": "connect", "params": p})
        return await self.response("c1")

    async def response(self, rid: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic())))
            if frame.get("type") == "res" and frame.get("id") == rid:
                return frame  # type: ignore[no-any-return]
            self.pending.append(frame)

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        rid = str(uuid.uuid4())
        req: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        await self.send(req)
        return await self.response(rid)

    async def chat_turn(self, message: str, key: str, *, session: str = "main", timeout: float = 30.0) -> dict[str, Any]:
        """``chat.send`` (must be accepted), then wait for the turn's last ``chat`` event (final or error)."""
        ack = await self.call("chat.send", {"sessionKey": session, "message": message, "idempotencyKey": key})
        assert ack["ok"], ack
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame.get("event") == "chat" and frame["payload"].get("state") in ("final", "error"):
                    return frame

    async def closed(self, timeout: float = 10.0) -> tuple[int, str]:
        """Drain until the server closes; return ``(code, reason)``."""
        with contextlib.suppress(websockets.ConnectionClosed):
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        rcvd = self.ws.protocol.close_rcvd
        return (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")


@contextlib.asynccontextmanager
async def open_client(url: str, **kw: Any) -> AsyncIterator[WsClient]:
    async with websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=10, **kw) as ws:
        client = WsClient(ws)
        client.challenge = client_frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert client_frame["event"] == "connect.challenge"
        yield client


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningGateway]]


@pytest.fixture
def gw_factory(tmp_path: Path) -> GatewayFactory:
    counter = iter(range(1000))

    @contextlib.asynccontextmanager
    async def make(overrides: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                   data: dict[str, Any] | None = None) -> AsyncIterator[RunningGateway]:
        token = secrets.token_hex(24)
        cfg = data if data is not None else offline_config(token)
        if overrides:
            cfg = deep_merge(cfg, overrides)
        state_dir = tmp_path / f"gw{next(counter)}"
        state_dir.mkdir()
        app = make_app(config_from_mapping(cfg, state_dir, env=env or {}))
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield RunningGateway(app=app, port=port, token=token, state_dir=state_dir)
        finally:
            await runner.cleanup()

    return make


@pytest.fixture
async def gw(gw_factory: GatewayFactory) -> AsyncIterator[RunningGateway]:
    async with gw_factory() as running:
        yield running
