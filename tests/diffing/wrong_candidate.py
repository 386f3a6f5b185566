"""A deliberately wrong candidate: a real aiohttp proxy in front of a legacy, applying one fault.

``WrongCandidate`` forwards HTTP and WS to a real legacy on loopback and applies one fault: alter a field, drop
an event, change an HTTP status, change a close code, or answer a request twice. With no fault it is an
honest pass-through, which is the baseline each fault test compares against.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# s2c text transform: returns the frames to send instead (empty list = drop).
Transform = Callable[[dict[str, Any]], list[dict[str, Any]]]


@dataclass
class Fault:
    ws_text: Transform | None = None
    http_status: Callable[[str, str, int], int] | None = None  # (method, path, status) -> status
    close_code: Callable[[int], int] | None = None
    hits: list[str] = field(default_factory=list)


class WrongCandidate:
    """A loopback proxy to ``upstream`` (http base URL) applying ``self.fault``."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault = Fault()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._ws(request)
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.upstream + request.path_qs, data=body,
                                         headers=headers, allow_redirects=False) as up:
            data = await up.read()
            status = up.status
            if self.fault.http_status is not None:
                new = self.fault.http_status(request.method, request.path, status)
                if new != status:
                    self.fault.hits.append(f"status {status}->{new}")
                status = new
            out_headers = {k: v for k, v in up.headers.items()
                           if k.lower() not in ("content-length", "transfer-encoding", "content-encoding",
                                                "connection", "keep-alive", "date", "server")}
            return web.Response(status=status, body=data, headers=out_headers)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        assert self._session is not None
        client = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024, autoclose=False)
        await client.prepare(request)
        ws_url = self.upstream.replace("http://", "ws://") + request.path_qs
        async with self._session.ws_connect(ws_url, max_msg_size=64 * 1024 * 1024, autoclose=False) as up:

            async def c2s() -> None:
                async for msg in client:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await up.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await up.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.CLOSE:
                        await up.close(code=client.close_code or 1000, message=(msg.extra or "").encode())
                        return

            async def s2c() -> None:
                reason = ""
                async for msg in up:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        frames = [json.loads(msg.data)]
                        if self.fault.ws_text is not None:
                            frames = self.fault.ws_text(frames[0])
                            if frames != [json.loads(msg.data)]:
                                self.fault.hits.append(f"ws {msg.data[:60]}")
                            for f in frames:
                                await client.send_str(json.dumps(f, separators=(",", ":")))
                        else:
                            await client.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await client.send_bytes(msg.data)
                    elif msg.type == aiohttp.WSMsgType.CLOSE:
                        reason = msg.extra or ""
                        break
                    else:
                        break
                code = up.close_code or 1000
                if self.fault.close_code is not None:
                    new = self.fault.close_code(code)
                    if new != code:
                        self.fault.hits.append(f"close {code}->{new}")
                    code = new
                await client.close(code=code, message=reason.encode())

            tasks = [asyncio.ensure_future(c2s()), asyncio.ensure_future(s2c())]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                t.result()
        if not client.closed:
            await client.close()
        return client
