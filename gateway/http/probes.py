"""Health probes: ``/health(z)`` live, ``/ready(z)`` ready, ``/startup(z)`` started (reference §4.2/§4.3).

Owns ``probe_kind(path)`` (the legacy's ``classifyGatewayProbePath``), ``handle_probe(request, kind)`` and
``EventLoopMonitor`` (an asyncio stand-in for the legacy's event-loop health block in ``/readyz`` details; its
numbers are volatile by construction and the differ normalizes ``eventLoop.*``). GET/HEAD only (405 with
``Allow: GET, HEAD`` otherwise), ``Cache-Control: no-store``, details only for local or authenticated callers.
May import aiohttp, ``gateway.*`` and the standard library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from gateway.http import headers as hh
from gateway.state import VERSION

logger = logging.getLogger(__name__)

PROBE_ROUTES = {"/health": "live", "/healthz": "live", "/ready": "ready", "/readyz": "ready",
                "/startup": "startup", "/startupz": "startup"}


def probe_kind(path: str) -> str:
    """``live|ready|startup`` for a probe path, ``namespace`` for a path below one, else ``outside``."""
    for root, kind in PROBE_ROUTES.items():
        if path == root:
            return kind
        if path.startswith(root + "/"):
            return "namespace"
    return "outside"


class EventLoopMonitor:
    """Samples asyncio scheduling delay every ``interval`` seconds (cf. the legacy's event-loop delay histogram)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.delays_ms: list[float] = []
        self.interval_ms = interval * 1000
        self._cpu = time.process_time()
        self._wall = time.monotonic()
        self.cpu_ratio = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            delay = max(0.0, (loop.time() - start - self.interval) * 1000)
            self.delays_ms = (self.delays_ms + [delay])[-60:]
            wall, cpu = time.monotonic(), time.process_time()
            self.interval_ms = (wall - self._wall) * 1000
            self.cpu_ratio = round((cpu - self._cpu) / max(1e-6, wall - self._wall), 3)
            self._wall, self._cpu = wall, cpu

    def snapshot(self) -> dict[str, Any]:
        ds = sorted(self.delays_ms) or [0.0]
        p99 = ds[min(len(ds) - 1, int(len(ds) * 0.99))]
        return {
            "degraded": False, "degradedSinceMs": None, "reasons": [], "intervalMs": self.interval_ms,
            "delayP99Ms": round(p99, 1), "delayMaxMs": round(ds[-1], 1), "utilization": min(1.0, self.cpu_ratio),
            "cpuCoreRatio": self.cpu_ratio,
            "cpuBreakdown": {"mainThreadCoreRatio": self.cpu_ratio, "hostCpuCount": os.cpu_count() or 1},
        }


MONITOR_KEY = web.AppKey("gateway_http_loop_monitor", EventLoopMonitor)


async def monitor_ctx(app: web.Application) -> AsyncIterator[None]:
    monitor = EventLoopMonitor()
    app[MONITOR_KEY] = monitor
    task = asyncio.ensure_future(monitor.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _include_details(request: web.Request) -> bool:
    from gateway.app import AUTH_KEY
    from gateway.auth import peer_ip

    auth = request.app[AUTH_KEY]
    if auth.is_local_request(peer_ip(request), request.headers):
        return True
    if auth.settings.mode == "none":
        return False
    return bool(request.headers.get("Authorization")) and auth.check_http_bearer(request).ok


def _uptime_ms(request: web.Request) -> int:
    from gateway.app import STATE_KEY

    state = request.app.get(STATE_KEY)
    return state.uptime_ms() if state is not None else 0


async def handle_probe(request: web.Request, kind: str) -> web.StreamResponse:
    method = request.method.upper()
    if method not in ("GET", "HEAD"):
        return hh.method_not_allowed("GET, HEAD")
    status = 200
    body: dict[str, Any]
    if kind == "ready":
        from gateway.app import STATE_KEY

        state = request.app.get(STATE_KEY)
        ready = bool(getattr(state, "accepting", True))
        result: dict[str, Any] = {"ready": ready, "failing": [] if ready else ["draining"],
                                  "uptimeMs": _uptime_ms(request)}
        monitor = request.app.get(MONITOR_KEY)
        if monitor is not None:
            result["eventLoop"] = monitor.snapshot()
        status = 200 if ready else 503
        body = result if _include_details(request) else {"ready": ready}
    elif kind == "startup":
        details = _include_details(request)
        body = {"ok": True, "status": "started"}
        if details:
            body.update({"version": VERSION, "uptimeMs": _uptime_ms(request)})
    else:
        body = {"ok": True, "status": kind}
    raw = json.dumps(body, separators=(",", ":")).encode()
    resp = web.Response(status=status, body=raw)
    resp.headers["Content-Type"] = hh.JSON_TYPE
    resp.headers["Cache-Control"] = "no-store"
    return resp
