"""HTTP routing of the candidate gateway: ``add_routes(app)`` (called by ``gateway.app.make_app``).

Owns the one catch-all handler that walks the legacy's request stages in its order (``server-http.ts`` of
2026.9.6): probes, hooks (``hooks.path``), ``/v1/models`` (when either OpenAI endpoint is enabled),
``/tools/invoke``, ``/v1/responses``, ``/v1/chat/completions`` (each when enabled), the Control-UI SPA fallback
(200 HTML for GET/HEAD paths that accept HTML), else 404 ``Not Found`` text. WebSocket upgrades never reach it
(``gateway.app``'s middleware takes them); any other ``Upgrade`` gets 400 ``Bad Request`` like the legacy.
It also installs the baseline security headers and the app-lifetime contexts (provider client, loop monitor).
May import aiohttp and ``gateway.*``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.agent.heartbeat import HeartbeatWaker
from gateway.agent.runner import provider_ctx
from gateway.http import headers as hh
from gateway.http import hooks, openai, probes
from gateway.http.tools_invoke import handle_tools_invoke

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _enabled(request: web.Request, name: str) -> bool:
    from gateway.app import CONFIG_KEY

    return request.app[CONFIG_KEY].get(f"gateway.http.endpoints.{name}.enabled", False) is True


async def dispatch(request: web.Request) -> web.StreamResponse:
    """The legacy's ordered request stages; an unexpected error is the legacy's plain 500 (never a traceback)."""
    try:
        return await _stages(request)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        logger.exception("unhandled error in HTTP request handler (%s %s)", request.method, request.path)
        return hh.text(500, "Internal Server Error", {"Cache-Control": "no-store"})


async def _stages(request: web.Request) -> web.StreamResponse:
    from gateway.app import CONFIG_KEY

    if "Upgrade" in request.headers:
        return hh.text(400, "Bad Request", {"Connection": "close"})
    path = request.path
    kind = probes.probe_kind(path)
    if kind in ("live", "ready", "startup"):
        return await probes.handle_probe(request, kind)
    settings = request.app.get(hooks.SETTINGS_KEY)
    if settings is not None and (path == settings.base_path or path.startswith(settings.base_path + "/")):
        return await hooks.handle_hooks(request, settings)
    chat_on, resp_on = _enabled(request, "chatCompletions"), _enabled(request, "responses")
    if (chat_on or resp_on) and (path == "/v1/models" or path.startswith("/v1/models/")):
        return await openai.handle_models(request)
    if path == "/tools/invoke":
        return await handle_tools_invoke(request)
    if resp_on and path == "/v1/responses":
        return await openai.handle_responses(request)
    if chat_on and path == "/v1/chat/completions":
        return await openai.handle_chat_completions(request)
    control_ui = request.app[CONFIG_KEY].get("gateway.controlUi.enabled", True) is not False
    if control_ui and kind == "outside" and hh.is_control_ui_path(path, request.method):
        if hh.accepts_html(request.headers.get("Accept")):
            return hh.control_ui_response(request)
        return hh.control_ui_not_found()
    return hh.not_found()


def add_routes(app: web.Application) -> None:
    """Install the HTTP surface on ``app`` (which already holds ``gateway.app``'s keys)."""
    from gateway.app import CONFIG_KEY

    config = app[CONFIG_KEY]
    hh.install_security_headers(app, config.get("gateway.http.securityHeaders.strictTransportSecurity"))
    settings = hooks.HooksSettings.from_config(config.data)
    if settings is not None:
        app[hooks.SETTINGS_KEY] = settings
    runtime = app[hooks.HOOKS_KEY] = hooks.HookRuntime()
    app[hooks.WAKER_KEY] = HeartbeatWaker(app, runtime.wakes.drain)
    app.cleanup_ctx.append(provider_ctx)
    app.cleanup_ctx.append(probes.monitor_ctx)
    app.on_shutdown.append(_cancel_hook_runs)
    app.router.add_route("*", "/{tail:.*}", dispatch)


async def _cancel_hook_runs(app: web.Application) -> None:
    for task in list(app[hooks.HOOKS_KEY].tasks):
        task.cancel()
    await app[hooks.WAKER_KEY].close()
