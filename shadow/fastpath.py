"""The proxy's HTTP fast path: plain keep-alive HTTP/1.1 requests served without aiohttp's per-request objects.

Owns :class:`FastServer` (the client port's listener) and :class:`FastClient` (one client connection). Each
request head is read by :func:`wire.http1.parse_request_head`; a plain request (see that module) is forwarded by
``Forwarder.fast_exchange`` through a lean pooled client (``shadow.upstream``), and the response is written back
as llhttp parses it: the upstream's status line, reason and headers (minus hop-by-hop, ``Content-Length`` kept
unless the upstream chunked), its body bytes; a chunked or close-delimited body is re-chunked, as aiohttp does.

A plain WebSocket handshake (:func:`wire.http1.parse_upgrade_head`) gives the connection to the byte relay
(``Forwarder.relay_ws``, ``shadow.wsrelay``) unless write-ahead recording is on. Anything else -- a chunked or
``Expect`` request body, ``HEAD``, HTTP/1.0, a head that is not plain, a body over the size limit -- hands the
whole connection, at a request boundary and with its unread bytes, to the aiohttp server
(``transport.set_protocol``), which then serves it exactly as before. Requests on
one connection are served in order, one at a time (pipelined bytes wait in the buffer).

Flow control: when the client's socket buffer is full the upstream connection stops reading, so a slow client
holds back the legacy instead of filling the proxy's memory. May import: stdlib, ``wire``, ``shadow.upstream``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from shadow.upstream import ClientGone, KeepSink
from wire.http1 import HOP_BY_HOP, MAX_HEAD, RequestHead, head_end, parse_request_head, parse_upgrade_head

logger = logging.getLogger(__name__)

__all__ = ["BODY_LIMIT", "BUFFER_LIMIT", "FastClient", "FastServer"]

#: Largest request body the fast path reads (aiohttp's ``client_max_size`` on the full path answers 413 above).
BODY_LIMIT = 64 * 1024 * 1024
#: Responses up to this size with a Content-Length leave in one write, headers and body together.
BUFFER_LIMIT = 256 * 1024
#: Bytes a client may send ahead while its request is served (pipelining); beyond that its reading pauses.
PIPELINE_LIMIT = 256 * 1024
#: Seconds an idle keep-alive connection (or a head that stopped arriving) is kept, as aiohttp's default.
IDLE_TIMEOUT = 75.0
class _Sink(KeepSink):
    """Writes one upstream response to the client as it is parsed, and keeps what the Tap needs."""

    __slots__ = ("_chunk", "_pending", "_transport", "keep_alive", "started")

    def __init__(self, transport: asyncio.Transport, max_body: int, keep_alive: bool) -> None:
        super().__init__(max_body)
        self._transport = transport
        self.keep_alive = keep_alive
        self.started = False  # bytes of this response went to the client
        self._chunk = False
        self._pending: list[bytes] | None = None

    def head(self, status: int, reason: str, headers: list[tuple[str, str]], *, chunked: bool,
             length: int | None) -> None:
        super().head(status, reason, headers, chunked=chunked, length=length)
        out = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("utf-8", "surrogateescape"))]
        for k, v in headers:  # Content-Length passes unless the body is re-chunked
            low = k.lower()
            if low not in HOP_BY_HOP and not (low == "content-length" and chunked):
                out.append(f"{k}: {v}\r\n".encode("utf-8", "surrogateescape"))
        self._chunk = length is None
        if self._chunk:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if not self.keep_alive:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        head = b"".join(out)
        if length is not None and length <= BUFFER_LIMIT:
            self._pending = [head]  # leaves with the body, in one write
        else:
            self._write(head)

    def body(self, chunk: bytes) -> None:
        super().body(chunk)
        if self._pending is not None:
            self._pending.append(chunk)
        elif self._chunk:
            self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            self._write(chunk)

    def done(self) -> None:
        if self._pending is not None:
            self._write(b"".join(self._pending))
            self._pending = None
        elif self._chunk:
            self._write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        self.started = True
        self._transport.write(data)


class FastClient(asyncio.Protocol):
    """One client connection on the fast path (until it is handed to the full server)."""

    def __init__(self, server: FastServer) -> None:
        self._server = server
        self.transport: asyncio.Transport | None = None
        self.remote = ""
        self._buf = bytearray()
        self._busy = False
        self._closed = False
        self._paused = False
        self._upstream: Any = None  # the upstream connection of the exchange in flight
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False
        self._head: tuple[RequestHead, int] | None = None  # parsed head (and its length) whose body is arriving

    # -- what Forwarder.fast_exchange uses
    def sink(self, max_body: int, *, keep_alive: bool) -> _Sink:
        assert self.transport is not None
        return _Sink(self.transport, max_body, keep_alive)

    def attach(self, upstream: Any) -> None:
        """The upstream connection now carrying this client's request (paused while the client is)."""
        if self._closed:
            upstream.abandon(ClientGone("the client closed its connection before the response ended"))
            return
        self._upstream = upstream
        if self._paused and upstream.transport is not None:
            upstream.transport.pause_reading()

    def write_plain(self, status: int, reason: str, text: str, *, keep_alive: bool) -> None:
        body = text.encode()
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nDate: %s\r\n%s\r\n%s"
            % (status, reason.encode(), len(body), formatdate(usegmt=True).encode(),
               b"" if keep_alive else b"Connection: close\r\n", body))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if peer else ""
        self._server.clients.add(self)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._advance()
        elif len(self._buf) > PIPELINE_LIMIT and not self._reading_paused:  # pipelined bytes wait: bounded
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.clients.discard(self)
        self._disarm()
        if self._upstream is not None:
            self._upstream.abandon(ClientGone("the client closed its connection before the response ended"))

    def pause_writing(self) -> None:
        self._paused = True
        if self._upstream is not None and self._upstream.transport is not None:
            self._upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        if self._upstream is not None and self._upstream.transport is not None:
            self._upstream.transport.resume_reading()

    # -- serving
    def _advance(self) -> None:
        if self._head is None:  # a head is parsed once, however many reads its body takes
            end = head_end(self._buf)
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    self._handoff()
                elif self._buf:
                    self._arm()  # the idle deadline counts from the last byte of a request still arriving
                return
            raw = bytes(self._buf[:end])
            head = parse_request_head(raw)
            if head is None and self._server.forwarder.relays_ws:
                upgrade = parse_upgrade_head(raw)
                if upgrade is not None:
                    self._relay(upgrade, end)
                    return
            if head is None or head.content_length > BODY_LIMIT:
                self._handoff()
                return
            self._head = (head, end)
        head, end = self._head
        total = end + head.content_length
        if len(self._buf) < total:
            self._arm()
            return
        self._head = None
        body = bytes(self._buf[end:total])
        del self._buf[:total]
        self._busy = True
        self._disarm()
        self._server.served += 1
        self._server.spawn(self._serve(head, body))

    async def _serve(self, head: RequestHead, body: bytes) -> None:
        keep = False
        try:
            keep = await self._server.forwarder.fast_exchange(self, head, body)
        except Exception:  # a bug of ours: this client loses its connection, nobody else is affected
            logger.exception("fast path: %s %s failed", head.method, head.target)
        finally:
            self._busy = False
            self._upstream = None
        if self._closed or self.transport is None:
            return
        if not (keep and head.keep_alive) or self._server.closing:
            self.transport.close()
            return
        self._arm()
        if self._reading_paused and len(self._buf) <= PIPELINE_LIMIT:
            self._reading_paused = False
            self.transport.resume_reading()
        if self._buf:
            self._advance()

    def _relay(self, head: RequestHead, end: int) -> None:
        """Give this connection, after its WebSocket handshake head, to the byte relay (``shadow.wsrelay``)."""
        assert self.transport is not None
        self._disarm()
        self._server.clients.discard(self)
        self._server.relayed += 1
        self._busy = True
        rest, self._buf = bytes(self._buf[end:]), bytearray()
        self._server.spawn(self._run_relay(head, rest))

    async def _run_relay(self, head: RequestHead, rest: bytes) -> None:
        assert self.transport is not None
        try:
            await self._server.forwarder.relay_ws(self.transport, head, rest, self.remote,
                                                  write_paused=self._paused)
        except Exception:  # a bug of ours: this client loses its connection, nobody else is affected
            logger.exception("fast path: WS relay of %s failed", head.target)
            self.transport.abort()

    def _handoff(self) -> None:
        """Give this connection, with its unread bytes, to the full (aiohttp) server."""
        assert self.transport is not None
        self._disarm()
        self._server.clients.discard(self)
        self._server.handed_off += 1
        proto = self._server.fallback()
        self.transport.set_protocol(proto)
        proto.connection_made(self.transport)
        if self._paused:  # the socket buffer is still full from our last response: aiohttp must know
            proto.pause_writing()
        if self._reading_paused:
            self.transport.resume_reading()
        data, self._buf = bytes(self._buf), bytearray()
        if data:
            proto.data_received(data)

    def _arm(self) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self.close_if_idle)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close_if_idle(self) -> None:
        if not self._busy and self.transport is not None:
            self.transport.close()


class FastServer:
    """The client port: the fast path first, the full server for whatever it hands over.

    Args:
        forwarder: provides ``fast_exchange`` (``shadow.forward.Forwarder``).
        fallback: makes the full server's protocol for one connection (aiohttp's ``web.Server``).
    """

    def __init__(self, forwarder: Any, fallback: Callable[[], asyncio.Protocol]) -> None:
        self.forwarder = forwarder
        self.fallback = fallback
        self.clients: set[FastClient] = set()
        self.closing = False
        self.served = 0  # requests answered on the fast path
        self.handed_off = 0  # connections given to the full server
        self.relayed = 0  # WebSocket connections given to the byte relay
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: FastClient(self), host, port, reuse_address=True,
                                                backlog=1024)
        return int(self._server.sockets[0].getsockname()[1])

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, timeout: float) -> None:
        """Stop listening, close idle connections, give requests in flight ``timeout`` s, then cut them."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        self.forwarder.close_relays()
        for client in list(self.clients):
            client.close_if_idle()
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
        for client in list(self.clients):
            client.abort()
