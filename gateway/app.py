"""The aiohttp application of the candidate gateway: ``make_app(config)``, its typed ``AppKey``s and lifecycle.

Owns the wiring: which objects live on the app (config, authenticator, runtime state, session store, device
store, gateway identity, the tool registry, the broadcast callable), the WebSocket upgrade on any path (a
middleware hands every ``Upgrade: websocket`` request to ``gateway.ws``), HTTP routes from ``gateway.http.routes``
(H4b) when importable, and ``cleanup_ctx`` (tick and health timers; ``shutdown`` event + close 1012 on stop).

HTTP handlers read what they need through the keys below, e.g. ``request.app[AUTH_KEY].check_http_bearer(req)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from gateway.auth import Authenticator
from gateway.config import GatewayConfig
from gateway.device import DeviceStore, GatewayIdentity
from gateway.diagnostics import DIAGNOSTICS_KEY, DiagnosticRecorder
from gateway.sessions import SessionStore
from gateway.state import GatewayState, now_ms

__all__ = [
    "AUTH_KEY",
    "BROADCAST_KEY",
    "CONFIG_KEY",
    "DEVICES_KEY",
    "IDENTITY_KEY",
    "SESSIONS_KEY",
    "STATE_KEY",
    "TOOLS_KEY",
    "Broadcast",
    "make_app",
]

logger = logging.getLogger(__name__)


class Broadcast(Protocol):
    """``broadcast(event, payload, drop_if_slow=False)`` -> number of clients that got it (each with its own seq)."""

    def __call__(self, event: str, payload: Any, *, drop_if_slow: bool = False) -> int: ...


CONFIG_KEY = web.AppKey("config", GatewayConfig)
AUTH_KEY = web.AppKey("auth", Authenticator)
STATE_KEY = web.AppKey("state", GatewayState)
SESSIONS_KEY = web.AppKey("sessions", SessionStore)
DEVICES_KEY = web.AppKey("devices", DeviceStore)
IDENTITY_KEY = web.AppKey("identity", GatewayIdentity)
TOOLS_KEY = web.AppKey("tools", object)  # gateway.agent.tools.ToolRegistry (H4b)
BROADCAST_KEY = web.AppKey("broadcast", Broadcast)


@web.middleware
async def _ws_upgrade(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """The legacy accepts a WS upgrade on any path: route every upgrade to the WS shell first."""
    if request.headers.get("Upgrade", "").lower() == "websocket" and request.method == "GET":
        from gateway.ws import websocket_handler

        return await websocket_handler(request)
    return await handler(request)


def _make_tools(app: web.Application, config: GatewayConfig, sessions: SessionStore) -> object:
    try:
        tools_mod = importlib.import_module("gateway.agent.tools")
    except ImportError as exc:
        logger.warning("tool registry unavailable (gateway.agent.tools: %s); tools.* answer empty", exc)
        return None
    return tools_mod.ToolRegistry(config, sessions)


async def _timers(app: web.Application) -> AsyncIterator[None]:
    state, config = app[STATE_KEY], app[CONFIG_KEY]

    async def tick() -> None:
        while True:
            await asyncio.sleep(config.tick_interval_ms / 1000)
            state.broadcast("tick", {"ts": now_ms()}, drop_if_slow=True)

    async def health() -> None:
        from gateway.methods.health import build_health

        while True:
            await asyncio.sleep(config.health_refresh_ms / 1000)
            state.health_changed(build_health(app))

    tasks = [asyncio.ensure_future(tick()), asyncio.ensure_future(health())]
    yield
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


async def _on_shutdown(app: web.Application) -> None:
    """Broadcast ``shutdown`` then close every client with 1012 ``service restart`` (reference §2.7)."""
    state = app[STATE_KEY]
    state.accepting = False
    state.broadcast("shutdown", {"reason": "gateway stopping"})
    for conn in list(state.clients.values()):
        conn.request_close(1012, "service restart")
    deadline = asyncio.get_running_loop().time() + 2.0
    for conn in list(state.clients.values()):
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            break
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.closed.wait(), remaining)


def make_app(config: GatewayConfig) -> web.Application:
    """Build the candidate gateway application for ``config``."""
    for path in config.not_implemented:
        logger.warning("config key accepted but not implemented by pyclaw: %s", path)
    app = web.Application(middlewares=[_ws_upgrade], client_max_size=26_214_400)
    state = GatewayState(port=config.port)
    sessions = SessionStore(config.state_dir)
    app[CONFIG_KEY] = config
    app[AUTH_KEY] = Authenticator(config)
    app[STATE_KEY] = state
    app[SESSIONS_KEY] = sessions
    app[DEVICES_KEY] = DeviceStore(config.state_dir)
    app[IDENTITY_KEY] = GatewayIdentity.load_or_create(config.state_dir)
    app[DIAGNOSTICS_KEY] = DiagnosticRecorder()

    def broadcast(event: str, payload: Any, *, drop_if_slow: bool = False) -> int:
        return state.broadcast(event, payload, drop_if_slow=drop_if_slow)

    app[BROADCAST_KEY] = broadcast
    app[TOOLS_KEY] = _make_tools(app, config, sessions)
    try:
        routes = importlib.import_module("gateway.http.routes")
    except ImportError as exc:
        logger.warning("HTTP routes unavailable (gateway.http.routes: %s)", exc)
    else:
        routes.add_routes(app)
    app.cleanup_ctx.append(_timers)
    app.on_shutdown.append(_on_shutdown)
    return app
