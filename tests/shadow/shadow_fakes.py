"""Loopback stand-ins for the shadow proxy tests: a small OpenClaw-shaped gateway with fault switches, a server
that answers garbage instead of HTTP, and a client that records a transcript.

The fake gateway speaks the envelope of reference §2.2-2.3 (challenge, connect -> hello-ok, req -> res, events)
and a few HTTP routes (JSON, chunked, SSE, binary). It is the fast legacy for unit tests and, with ``fault=``,
the misbehaving candidate of the fault tests. The real legacy is used by ``test_legacy_integration.py``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

FAULTS = ("slow", "garbage", "oversized", "abrupt", "flood", "kill")


class Exposed:
    """A proxy's metrics as ``/metrics`` serves them (with ``limits.mirror_process``, merged with the child's
    last snapshot), with the ``Metrics.total``/``value`` helpers: one assertion style for both placements."""

    def __init__(self, proxy: Any) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        self.samples = [(smp.name, smp.labels, smp.value)
                        for fam in text_string_to_metric_families(proxy.exposition().decode())
                        for smp in fam.samples]

    def total(self, name: str, **match: str) -> float:
        return sum(v for n, labels, v in self.samples
                   if n == name and all(labels.get(k) == want for k, want in match.items()))

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return sum(v for n, have, v in self.samples if n == name and have == (labels or {}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FakeGateway:
    """An OpenClaw-shaped server on 127.0.0.1.

    Args:
        token: the gateway token it accepts (connect ``auth.token``, HTTP bearer).
        fault: ``None`` or one of :data:`FAULTS` (slow = every answer 5 s late; garbage = non-JSON, binary and
            malformed frames after connect; oversized = a 2 MiB frame; abrupt = TCP reset after hello-ok;
            flood = 5000 events per request; kill = the server process dies after the first request).
        fixed_nonce: deterministic challenge (so direct and proxied transcripts can be compared byte for byte).
    """

    token: str = "tok-legacy"
    name: str = "fake"
    fault: str | None = None
    fixed_nonce: bool = True
    port: int = 0
    slow_seconds: float = 5.0
    connects: list[dict[str, Any]] = field(default_factory=list)
    http_requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    ws_frames: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int | None = None) -> FakeGateway:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)

        async def tag(_request: web.Request, response: web.StreamResponse) -> None:
            response.headers["X-Gateway"] = self.name

        app.on_response_prepare.append(tag)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port if port is not None else self.port, reuse_address=True)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for ws in list(self._sockets):
            if ws._req is not None and ws._req.transport is not None:
                ws._req.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _delay(self) -> None:
        if self.fault == "slow":
            await asyncio.sleep(self.slow_seconds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request)
        await self._delay()
        body = await request.read()
        self.http_requests.append((request.method, request.raw_path, dict(request.headers), body))
        if self.fault == "kill":
            self.fault = None
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
        path = request.path
        if path == "/healthz":
            return web.Response(text='{"ok":true,"status":"live"}', content_type="application/json")
        if path == "/echo":
            return web.json_response({"method": request.method, "body": body.decode("utf-8", "replace"),
                                      "auth": request.headers.get("Authorization")})
        if path == "/chunked":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(5):
                await resp.write(f"part-{i};".encode())
            await resp.write_eof()
            return resp
        if path == "/sse":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"event: tick\ndata: {{\"n\":{i}}}\n\n".encode())
                await asyncio.sleep(0.01)
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        if path == "/binary":
            return web.Response(body=bytes(range(256)) * 64, content_type="application/octet-stream")
        if path == "/status/418":
            return web.Response(status=418, text="teapot", headers={"X-Custom": "kept"})
        if path == "/tools/invoke":
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return web.json_response({"error": {"message": "Unauthorized", "type": "unauthorized"}},
                                         status=401)
            return web.json_response({"ok": True, "result": {"echo": body.decode("utf-8", "replace")}})
        return web.Response(text="<html>spa</html>", content_type="text/html")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=8 * 1024 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._delay()
            nonce = "nonce-fixed" if self.fixed_nonce else str(uuid.uuid4())
            await ws.send_str(json.dumps({"type": "event", "event": "connect.challenge",
                                          "payload": {"nonce": nonce, "ts": 1700000000000}}))
            seq = 0
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                self.ws_frames.append(msg.data)
                await self._delay()
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    continue  # like OpenClaw after connect: no answer, connection stays open
                if not isinstance(frame, dict) or frame.get("type") != "req":
                    continue
                fid, method, params = frame.get("id"), frame.get("method"), frame.get("params")
                if method == "connect":
                    self.connects.append(params if isinstance(params, dict) else {})
                    auth = (params or {}).get("auth") or {}
                    if auth.get("token") != self.token:
                        await ws.send_str(json.dumps({"type": "res", "id": fid, "ok": False, "error": {
                            "code": "INVALID_REQUEST", "message": "unauthorized: gateway token mismatch"}}))
                        await ws.close(code=1008, message=b"unauthorized: gateway token mismatch")
                        break
                    await ws.send_str(json.dumps({"type": "res", "id": fid, "ok": True, "payload": {
                        "type": "hello-ok", "protocol": 4, "server": {"version": self.name},
                        "gatewayName": self.name}}))
                    if self.fault == "abrupt":
                        assert request.transport is not None
                        request.transport.abort()
                        break
                    if self.fault == "garbage":
                        await ws.send_str("{not json")
                        await ws.send_bytes(b"\x00\xff garbage")
                        await ws.send_str('{"type":"res"}')
                    if self.fault == "oversized":
                        await ws.send_str('{"type":"event","event":"big","payload":"' + "x" * (2 << 20) + '"}')
                    continue
                if self.fault == "kill":
                    self.fault = None
                    asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self.stop()))
                    continue
                if method == "chat.send":
                    await ws.send_str(json.dumps({"type": "res", "id": fid, "ok": True,
                                                  "payload": {"status": "started"}}))
                    for i in range(3):
                        seq += 1
                        await ws.send_str(json.dumps({"type": "event", "event": "chat", "seq": seq,
                                                      "payload": {"state": "delta", "i": i}}))
                    continue
                await ws.send_str(json.dumps({"type": "res", "id": fid, "ok": True,
                                              "payload": {"method": method, "params": params}}))
                if self.fault == "flood":
                    for i in range(5000):
                        await ws.send_str(json.dumps({"type": "event", "event": "flood", "payload": {"i": i}}))
                if method == "bye":
                    await ws.close(code=4001, message=b"bye from server")
                    break
        finally:
            self._sockets.discard(ws)
        return ws


class GarbageServer:
    """Accepts TCP and answers every connection with bytes that are not HTTP, then closes."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> GarbageServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await asyncio.wait_for(reader.read(65536), 2.0)
                writer.write(b"SSH-2.0-nonsense\r\n\x00\x01\x02 this is not http\r\n\r\n")
                await writer.drain()
            except (TimeoutError, OSError):
                pass
            finally:
                writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class StallServer:
    """Completes the WS (and HTTP) handshake like the fake gateway, then stops reading: a stalled candidate."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> StallServer:
        import base64
        import hashlib

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)
            head = await reader.readuntil(b"\r\n\r\n")
            key = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"sec-websocket-key:"):
                    key = line.split(b":", 1)[1].strip()
            if key:
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                payload = b'{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}'
                writer.write(bytes([0x81, len(payload)]) + payload)
                await writer.drain()
            # never read again: the kernel buffers fill and the proxy's sends stall
            await asyncio.sleep(3600)

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for w in self._writers:
            w.transport.abort()
        if self._server is not None:
            self._server.close()


async def serve_handler(handle: Any) -> tuple[web.AppRunner, str]:
    """Serve one catch-all aiohttp handler on a free loopback port: (runner to clean up, base URL)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


# -- transcripts ------------------------------------------------------------------------------------------------

HTTP_SCRIPT: tuple[tuple[str, str, bytes | None, dict[str, str]], ...] = (
    ("GET", "/healthz", None, {}),
    ("HEAD", "/healthz", None, {}),
    ("POST", "/echo", b'{"hello":"world"}', {"Content-Type": "application/json"}),
    ("GET", "/chunked", None, {}),
    ("GET", "/sse", None, {}),
    ("GET", "/binary", None, {}),
    ("GET", "/status/418", None, {}),
    ("GET", "/spa/route?x=1", None, {}),
    ("POST", "/tools/invoke", b'{"tool":"sessions_list"}', {"Authorization": "Bearer tok-legacy"}),
)
#: response headers that differ between two runs of the same server by construction (RFC 9110 hop-by-hop, date)
VOLATILE_HEADERS = frozenset({"date", "connection", "keep-alive", "transfer-encoding"})


async def http_transcript(base: str, script: Any = HTTP_SCRIPT) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for method, path, body, headers in script:
            async with s.request(method, base + path, data=body, headers=headers) as r:
                data = await r.read()
                hdrs = tuple((k, v) for k, v in r.headers.items() if k.lower() not in VOLATILE_HEADERS)
                out.append((method, path, r.status, r.reason, hdrs, data))
    return out


WS_SCRIPT: tuple[str, ...] = (
    json.dumps({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4, "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": ["operator.read"], "auth": {"token": "tok-legacy"}}}),
    json.dumps({"type": "req", "id": "r1", "method": "health", "params": {}}),
    "{not json",
    json.dumps({"type": "req", "id": "r2", "method": "chat.send", "params": {"sessionKey": "main", "message": "hi",
                                                                            "idempotencyKey": "k1"}}),
    json.dumps({"type": "req", "id": "r3", "method": "status"}),
    json.dumps({"type": "req", "id": "r4", "method": "bye"}),
)


async def ws_transcript(base: str, script: Any = WS_SCRIPT, *, expect_close: bool = True,
                        timeout: float = 10.0) -> list[tuple[str, Any]]:
    """Send each frame, collect every frame received and the close; ordered as seen by the client."""
    out: list[tuple[str, Any]] = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(base.replace("http", "ws", 1) + "/", autoclose=False, max_msg_size=0) as ws:
            first = await ws.receive(timeout)
            out.append(("<", first.data))
            for frame in script:
                await ws.send_str(frame)
                out.append((">", frame))
                await asyncio.sleep(0.05)  # let the answers arrive in a stable order relative to the next send
            while True:
                msg = await ws.receive(timeout)
                if msg.type is WSMsgType.TEXT:
                    out.append(("<", msg.data))
                elif msg.type is WSMsgType.CLOSE:
                    out.append(("close", (msg.data, msg.extra)))
                    await ws.close()
                    break
                else:
                    out.append(("end", msg.type.name))
                    break
    return [x for x in out if x[0] != ">"] + [("sent", len(script))]
