"""The client path: an aiohttp reverse proxy on one port for HTTP and WebSocket, feeding a Tap.

Owns :class:`Forwarder` (the catch-all handler, the WS byte relays the fast path hands over -- see
``shadow.wsrelay`` --, the aiohttp WS upgrade with its two pump tasks for the rest, the upstream connection pools)
and the client-visible failure surface. An I/O shell: it moves bytes between the client and
the *primary* leg (legacy in ``shadow`` mode), and after each forward calls the Tap's non-blocking methods.
The client never awaits the mirror: observations and mirror work are ``put_nowait`` onto bounded queues.

The client gets the primary's status, headers (minus hop-by-hop), body bytes (streamed chunk by chunk, so SSE
and chunked bodies flow as they come), WS frames and close codes unchanged. When the primary is down, HTTP
clients get ``502`` with a plain-text body naming the leg and the cause, WS clients a close ``1011`` with a
reason; every new request tries again, so the proxy recovers by itself when the leg returns.

Optional write-ahead (``record.write_ahead``): side-effecting requests are durably written (fsync) before they
are forwarded (``recorder.capture.WriteAheadLog``). May import: stdlib, aiohttp, ``wire``, ``recorder``,
``shadow.*`` except ``shadow.mitm``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web

from recorder.capture import WriteAheadLog
from shadow._tasks import spawn
from shadow.config import Credentials, ShadowConfig
from shadow.fastpath import BUFFER_LIMIT, FastClient
from shadow.metrics import Metrics
from shadow.mirror import HOP_BY_HOP, error_kind, leg_creds
from shadow.modes import ModeController, Routing
from shadow.pipeline import MirrorHandle, Tap
from shadow.policy import PARSE_LIMIT, RECORD_ONLY, Policy
from shadow.upstream import ClientGone, UpstreamPool
from shadow.wsrelay import WsRelay
from wire.frames import parse_frame
from wire.http1 import RequestHead
from wire.model import Direction, Kind, Leg, Observation, Req, body_fields

logger = logging.getLogger(__name__)

__all__ = ["Forwarder", "TransparentResponse"]

#: Client request headers worth carrying to a WS upstream (the rest is per-hop or regenerated).
_WS_FORWARD = frozenset({"origin", "user-agent", "authorization", "cookie", "x-openclaw-token",
                         "accept-language"})
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class TransparentResponse(web.StreamResponse):
    """A StreamResponse that does not add ``Server`` or a default ``Content-Type`` the upstream did not send."""

    __slots__ = ("_upstream_names",)

    def __init__(self, *, status: int, reason: str | None, upstream_names: frozenset[str]) -> None:
        super().__init__(status=status, reason=reason)
        self._upstream_names = upstream_names

    def buffer_headers(self) -> None:
        """Send the headers together with the first body write instead of at ``prepare``."""
        self._send_headers_immediately = False

    async def _write_headers(self) -> None:
        for name in ("Server", "Content-Type"):
            if name.lower() not in self._upstream_names and name in self.headers:
                del self.headers[name]
        await super()._write_headers()


@dataclass(frozen=True, slots=True)
class _Exchange:
    """One HTTP exchange on its way through the proxy (either HTTP path)."""

    conn: str
    primary: Leg
    method: str
    route: str
    decision: str
    t0: float
    tapped: bool  # the Tap took the request (so it takes the answer too)


class Forwarder:
    """The proxy's client-facing application.

    Args:
        config: proxy config.
        metrics, modes, policy: the shared proxy parts (see ``shadow.proxy.ShadowProxy``).
        tap: the mirror side (``shadow.side.LocalSide`` or ``shadow.remote.RemoteSide``).
        write_ahead: durable log for side-effecting requests, or ``None``.
    """

    def __init__(self, config: ShadowConfig, metrics: Metrics, tap: Tap, modes: ModeController,
                 policy: Policy, *, write_ahead: WriteAheadLog | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.tap = tap
        self.modes = modes
        self.policy = policy
        self.write_ahead = write_ahead
        self._ids = itertools.count(1)
        self._sessions: dict[Leg, aiohttp.ClientSession] = {}
        self._pools: dict[Leg, UpstreamPool] = {}
        self._client_ws: set[web.WebSocketResponse] = set()
        self._relays: set[WsRelay] = set()
        self._gauges = {p: metrics.client_connections.labels(protocol=p) for p in ("http", "ws")}

    def creds(self, leg: Leg) -> Credentials:
        return leg_creds(self.config, leg)[0]

    def pool(self, leg: Leg) -> UpstreamPool:
        return self._pools[leg]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        for leg in Leg:
            if not self.creds(leg).url:
                continue
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=4.0, enable_cleanup_closed=True)
            self._sessions[leg] = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=self.config.limits.legacy_timeout, sock_connect=5.0),
            )
            self._pools[leg] = UpstreamPool(self.creds(leg).url, keepalive=4.0, connect_timeout=5.0)

    async def _on_shutdown(self, _app: web.Application) -> None:
        for ws in list(self._client_ws):
            await ws.close(code=1001, message=b"proxy shutting down")

    async def _on_cleanup(self, _app: web.Application) -> None:
        for s in self._sessions.values():
            await s.close()
        for pool in self._pools.values():
            pool.close()

    def _client_key(self, request: web.Request) -> str:
        return request.headers.get(self.config.canary_header) or (request.remote or "")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        routing = self.modes.route(self._client_key(request))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws(request, routing)
        return await self._http(request, routing)

    # -- HTTP -------------------------------------------------------------------------------------------------
    async def _http(self, request: web.Request, routing: Routing) -> web.StreamResponse:
        gauge = self._gauges["http"]
        gauge.inc()
        try:
            return await self._http_exchange(request, routing)
        finally:
            gauge.dec()

    async def _http_exchange(self, request: web.Request, routing: Routing) -> web.StreamResponse:
        method, path = request.method, request.raw_path
        body = await request.read()
        headers = tuple((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        ex = await self._begin(routing, method, path, headers, body)
        session = self._sessions[ex.primary]
        url = self.creds(ex.primary).url + path
        resp: web.StreamResponse | None = None
        kept = bytearray()
        max_body = self.config.limits.max_body
        try:
            async with session.request(method, url, headers=headers, data=body or None, allow_redirects=False,
                                       compress=None) as up:
                names = frozenset(k.lower() for k in up.headers)
                resp = TransparentResponse(status=up.status, reason=up.reason, upstream_names=names)
                chunked = "chunked" in up.headers.get("Transfer-Encoding", "").lower()
                for k, v in up.headers.items():  # order kept; Content-Length kept in place unless chunked
                    low = k.lower()
                    if low not in HOP_BY_HOP or (low == "content-length" and not chunked):
                        resp.headers.add(k, v)
                length = up.content_length
                if not chunked and length is not None and length <= BUFFER_LIMIT:
                    # small body of known size: headers and body leave in one write (one syscall, one segment)
                    data = await up.read()
                    resp.buffer_headers()
                    await resp.prepare(request)
                    await resp.write_eof(data)
                    kept += data[:max_body]
                else:  # streamed as it comes: SSE, chunked, large bodies
                    await resp.prepare(request)
                    async for chunk in up.content.iter_any():
                        await resp.write(chunk)
                        if len(kept) < max_body:
                            kept += chunk[: max_body - len(kept)]
                    await resp.write_eof()
                status, rheaders = up.status, tuple(up.headers.items())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(ex, exc)
            if resp is not None and resp.prepared:  # mid-stream: the only honest signal left is an abort
                if request.transport is not None:
                    request.transport.abort()
                return resp
            return web.Response(status=502, content_type="text/plain", text=self._unavailable(ex, exc))
        self._answered(ex, status, rheaders, bytes(kept))
        return resp

    async def fast_exchange(self, client: FastClient, head: RequestHead, body: bytes) -> bool:
        """One request of the HTTP fast path (``shadow.fastpath``); False when the connection must close."""
        gauge = self._gauges["http"]
        gauge.inc()
        try:
            routing = self.modes.route(head.get(self.config.canary_header) or client.remote)
            headers = tuple((k, v) for k, v in head.headers if k.lower() not in HOP_BY_HOP)
            ex = await self._begin(routing, head.method, head.target, headers, body)
            sink = client.sink(self.config.limits.max_body, keep_alive=head.keep_alive)
            try:
                async with asyncio.timeout(self.config.limits.legacy_timeout):
                    await self._pools[ex.primary].exchange(head.method, head.target, headers, body, sink,
                                                           on_conn=client.attach)
            except ClientGone as exc:
                self._failed(ex, exc)
                return False
            except (TimeoutError, OSError) as exc:
                self._failed(ex, exc)
                if sink.started:  # mid-stream: the only honest signal left is an abort
                    client.abort()
                    return False
                client.write_plain(502, "Bad Gateway", self._unavailable(ex, exc), keep_alive=head.keep_alive)
                return True
            self._answered(ex, sink.status, sink.headers, bytes(sink.kept))
            return True
        finally:
            gauge.dec()

    # -- what both HTTP paths share: the Tap before and after the primary's answer
    async def _begin(self, routing: Routing, method: str, path: str, headers: tuple[tuple[str, str], ...],
                     body: bytes) -> _Exchange:
        pl = self.tap
        conn = f"h{next(self._ids)}"
        primary = routing.primary
        t = pl.now()
        decision, route = self.policy.http(method, path) if routing.mirror else ("skip", self.policy.route(method, path))
        if self.write_ahead is not None and method not in _SAFE:
            await self.write_ahead.append(Observation(t=t, conn=conn, leg=primary, dir=Direction.C2S,
                                                      kind=Kind.HTTP_REQUEST, method=method, path=path,
                                                      headers=headers, **body_fields(body)))
        tapped = pl.begin_http(conn, primary, routing.secondary if routing.mirror else None, method, path, headers,
                               body, route, decision, t)
        return _Exchange(conn, primary, method, route, decision, time.monotonic(), tapped)

    def _failed(self, ex: _Exchange, exc: BaseException) -> None:
        """The primary's answer did not (fully) reach the client: counted, and the pair resolves as an error.
        A client that left mid-response (``ClientGone``) is not a leg failure: the leg's counter stays."""
        pl = self.tap
        if isinstance(exc, ClientGone):
            kind = "client-gone"
        else:
            kind = error_kind(exc)
            self.metrics.leg_error(ex.primary.value, kind)
        pl.count(ex.primary, "http", ex.route, "error")
        if ex.tapped:
            pl.observe(Observation(t=pl.now(), conn=ex.conn, leg=ex.primary, dir=Direction.S2C, kind=Kind.ERROR,
                                   data=f"{kind}: {type(exc).__name__}: {exc}"[:500]))

    def _unavailable(self, ex: _Exchange, exc: BaseException) -> str:
        kind = error_kind(exc)
        logger.warning("%s leg unavailable for %s %s: %s", ex.primary.value, ex.method, ex.route, exc)
        return f"parity shadow: the {ex.primary.value} gateway is unavailable ({kind}: {type(exc).__name__}); " \
               f"retry shortly\n"

    def _answered(self, ex: _Exchange, status: int, headers: tuple[tuple[str, str], ...], kept: bytes) -> None:
        metrics = self.metrics
        metrics.child(metrics.latency, ex.primary.value, "http", ex.route).observe(time.monotonic() - ex.t0)
        if ex.tapped:
            pl = self.tap
            pl.end_http(ex.conn, ex.primary, status, headers, kept, pl.now(), ex.decision == RECORD_ONLY)

    # -- WebSocket: the byte relay (fast path) -----------------------------------------------------------------
    @property
    def relays_ws(self) -> bool:
        """Whether the fast path may relay WS upgrades byte for byte (``shadow.wsrelay``). Not with write-ahead
        recording: a side-effecting frame must be on disk before it is forwarded, which a relay cannot wait for."""
        return self.write_ahead is None

    async def relay_ws(self, transport: asyncio.Transport, head: RequestHead, rest: bytes, remote: str, *,
                       write_paused: bool = False) -> None:
        """One client WebSocket on the fast path, from its handshake head to the end of both sockets
        (``write_paused``: the client's send buffer is still full from the fast path's last response)."""
        gauge = self._gauges["ws"]
        gauge.inc()
        try:
            routing = self.modes.route(head.get(self.config.canary_header) or remote)
            relay = WsRelay(self, transport, head, rest, routing.primary,
                            routing.secondary if routing.mirror else None, f"c{next(self._ids)}",
                            write_paused=write_paused)
            self._relays.add(relay)
            try:
                await relay.run()
            finally:
                self._relays.discard(relay)
        finally:
            gauge.dec()

    def close_relays(self) -> None:
        """The proxy is stopping: every relayed WS client gets ``1001`` and both its sockets close."""
        for relay in list(self._relays):
            relay.shutdown()

    # -- WebSocket: the aiohttp path ----------------------------------------------------------------------------
    async def _ws(self, request: web.Request, routing: Routing) -> web.StreamResponse:
        gauge = self._gauges["ws"]
        gauge.inc()
        try:
            return await self._ws_session(request, routing)
        finally:
            gauge.dec()

    async def _ws_session(self, request: web.Request, routing: Routing) -> web.StreamResponse:
        pl = self.tap
        conn = f"c{next(self._ids)}"
        primary = routing.primary
        path = request.raw_path
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        fwd = {k: v for k, v in request.headers.items() if k.lower() in _WS_FORWARD}
        url = self.creds(primary).url + path
        max_frame = self.config.limits.max_frame
        try:
            up = await self._sessions[primary].ws_connect(
                url, protocols=protocols, headers=fwd, autoclose=False, autoping=True, max_msg_size=0,
                compress=0, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            kind = error_kind(exc)
            self.metrics.leg_error(primary.value, kind)
            pl.count(primary, "ws", "connect", "error")
            logger.warning("%s leg unavailable for a WS client: %s", primary.value, exc)
            ws = web.WebSocketResponse(protocols=protocols)
            await ws.prepare(request)
            reason = f"{primary.value} gateway unavailable ({kind})"
            await ws.close(code=1011, message=reason.encode()[:120])
            return ws
        ws = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else (), autoclose=False, autoping=True,
                                   max_msg_size=max_frame + 1024, compress=False)
        await ws.prepare(request)
        self._client_ws.add(ws)
        pl.observe(Observation(t=pl.now(), conn=conn, leg=primary, dir=Direction.C2S, kind=Kind.WS_OPEN, path=path))
        mirror: MirrorHandle | None = None
        if routing.mirror:
            origin = [(k, v) for k, v in fwd.items() if k.lower() in ("origin", "user-agent")]
            mirror = pl.open_mirror(conn, path, origin, routing.secondary)
        state = {"client_closed": False}
        down = spawn(self._pump_down(conn, primary, up, ws, state), name=f"pump-down-{conn}")
        try:
            await self._pump_up(conn, primary, ws, up, mirror, state)
        finally:
            if not down.done():
                try:
                    await asyncio.wait_for(asyncio.shield(down), 5.0)
                except (TimeoutError, asyncio.CancelledError):
                    down.cancel()
            self._client_ws.discard(ws)
            if not up.closed:
                await up.close()
            pl.close_conn(conn)
        return ws

    async def _pump_up(self, conn: str, leg: Leg, ws: web.WebSocketResponse, up: aiohttp.ClientWebSocketResponse,
                       mirror: MirrorHandle | None, state: dict[str, bool]) -> None:
        """Client -> primary, then (without waiting) the Tap and the mirror."""
        pl = self.tap
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                text: str = msg.data
                if self.write_ahead is not None:
                    await self._write_ahead_frame(conn, leg, text)
                await up.send_str(text)
                pl.c2s_text(conn, leg, text, mirror is not None, pl.now())
            elif msg.type is WSMsgType.BINARY:
                await up.send_bytes(msg.data)
                pl.observe(Observation(t=pl.now(), conn=conn, leg=leg, dir=Direction.C2S, kind=Kind.WS_BINARY,
                                       data_b64=msg.data[: self.config.limits.max_body]))
                if mirror is not None:
                    mirror.offer(msg.data)
            elif msg.type is WSMsgType.CLOSE:
                state["client_closed"] = True
                code = ws.close_code or 1000
                await up.close(code=code, message=(msg.extra or "").encode())
                pl.observe(Observation(t=pl.now(), conn=conn, leg=leg, dir=Direction.C2S, kind=Kind.WS_CLOSE,
                                       code=code, reason=msg.extra or ""))
                if not ws.closed:
                    await ws.close(code=code)
                return
            else:  # CLOSING / CLOSED / ERROR: the client side is gone
                state["client_closed"] = True
                if msg.type is WSMsgType.ERROR:
                    logger.info("%s: client error %r", conn, ws.exception())
                    if not up.closed:
                        await up.close(code=1000)
                return

    async def _write_ahead_frame(self, conn: str, leg: Leg, text: str) -> None:
        assert self.write_ahead is not None
        frame = parse_frame(text) if len(text) <= PARSE_LIMIT else None
        if isinstance(frame, Req) and self.policy.side_effecting(frame.method):
            await self.write_ahead.append(Observation(t=self.tap.now(), conn=conn, leg=leg, dir=Direction.C2S,
                                                      kind=Kind.WS_TEXT, data=text))

    async def _pump_down(self, conn: str, leg: Leg, up: aiohttp.ClientWebSocketResponse,
                         ws: web.WebSocketResponse, state: dict[str, bool]) -> None:
        """Primary -> client, byte for byte, close code and reason included."""
        pl = self.tap
        while True:
            msg = await up.receive()
            if msg.type is WSMsgType.TEXT:
                if ws.closed:
                    return
                await ws.send_str(msg.data)
                pl.s2c_text(conn, leg, msg.data, pl.now())
            elif msg.type is WSMsgType.BINARY:
                if ws.closed:
                    return
                await ws.send_bytes(msg.data)
                pl.observe(Observation(t=pl.now(), conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.WS_BINARY,
                                       data_b64=msg.data[: self.config.limits.max_body]))
            elif msg.type is WSMsgType.CLOSE:
                code, reason = int(msg.data or 1000), msg.extra or ""
                pl.observe(Observation(t=pl.now(), conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.WS_CLOSE,
                                       code=code, reason=reason))
                if not ws.closed:
                    await ws.close(code=code, message=reason.encode())
                await up.close()
                return
            else:  # CLOSING because we closed it, or the upstream vanished without a close frame
                if state["client_closed"] or msg.type is WSMsgType.CLOSING:
                    return
                self.metrics.leg_error(leg.value, "closed")
                pl.observe(Observation(t=pl.now(), conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.WS_CLOSE,
                                       code=1006, reason=""))
                if not ws.closed:
                    await ws.close(code=1011, message=f"{leg.value} gateway connection lost".encode())
                return
