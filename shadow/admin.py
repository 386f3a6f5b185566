"""The admin port: ``/metrics`` (Prometheus text), ``/healthz``, and the runtime mode switch.

Owns the admin aiohttp application. It listens on its own port (loopback by default), so scraping and
switching never share a socket or a handler with client traffic.

- ``GET /metrics``  -- every ``parity_*`` metric of this proxy (and of its mirror process, merged).
- ``GET /healthz``  -- ``{"ok":true,"mode":…,"canary_percent":…,"fast_http":{"requests":…,"handed_off":…,
  "ws_relayed":…},"queues":{…},"mirror_bytes":…}``.
- ``GET /mode``     -- the current mode.
- ``POST /mode``    -- body ``{"mode":"canary","canary_percent":10}``; 400 with the reason on bad input. Open
  connections keep the routing they started with; new ones use the new mode.

May import: stdlib, aiohttp, prometheus_client, ``wire``, ``shadow.*`` (not ``shadow.mitm``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from wire.errors import ConfigError

if TYPE_CHECKING:
    from shadow.proxy import ShadowProxy

logger = logging.getLogger(__name__)

__all__ = ["admin_app"]


def admin_app(proxy: ShadowProxy) -> web.Application:
    async def metrics(_request: web.Request) -> web.Response:
        body = proxy.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response(proxy.health())

    async def get_mode(_request: web.Request) -> web.Response:
        return web.json_response(_mode(proxy))

    async def set_mode(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            return web.json_response({"ok": False, "error": f"body: not JSON ({exc})"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("mode"), str):
            return web.json_response({"ok": False, "error": "mode: required string"}, status=400)
        percent = body.get("canary_percent")
        if percent is not None and (isinstance(percent, bool) or not isinstance(percent, int | float)):
            return web.json_response({"ok": False, "error": "canary_percent: expected a number"}, status=400)
        try:
            proxy.modes.set(body["mode"], None if percent is None else float(percent))
        except ConfigError as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        logger.warning("admin: mode set to %s", json.dumps(_mode(proxy)))
        return web.json_response({"ok": True, **_mode(proxy)})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/mode", get_mode)
    app.router.add_post("/mode", set_mode)
    return app


def _mode(proxy: ShadowProxy) -> dict[str, Any]:
    return {"mode": proxy.modes.mode, "canary_percent": proxy.modes.canary_percent}
