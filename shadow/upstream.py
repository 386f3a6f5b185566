"""A lean, pooled HTTP/1.1 client for one leg: the fast path's way to the primary gateway.

Owns :class:`UpstreamPool` (keep-alive connections to one base URL) and the :class:`ResponseSink` protocol it
streams a response into. Responses are parsed by llhttp (``httptools``); the sink is called synchronously from
the parser, so a response chunk reaches the client in the same event-loop turn it arrived in. Compared with
``aiohttp.ClientSession`` this skips the request/response objects, the header multidicts, the tracing hooks and
the per-request timers: it is the forwarding cost the proxy adds per request.

Failures keep their meaning for ``shadow.mirror.error_kind``: connect errors are ``OSError``, a connection that
ends before the response is complete is ``ConnectionResetError``, bytes that are not HTTP are
:class:`wire.errors.LegProtocolError`. An idempotent request on a reused connection that closed before any
response byte (the server timed the idle connection out) is retried once on a fresh one, as aiohttp does.
May import: stdlib, httptools, ``wire``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httptools

from wire.errors import ConfigError, LegProtocolError

__all__ = ["IDEMPOTENT", "ClientGone", "KeepSink", "ResponseSink", "UpstreamPool"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
#: Request headers the pool writes itself (everything else hop-by-hop was removed by the caller).
_OWN = frozenset({"host", "content-length"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ClientGone(Exception):
    """The client went away mid-exchange; the upstream connection was abandoned (not a leg failure)."""


class ResponseSink(Protocol):
    """Receives one response, synchronously, as llhttp parses it."""

    def head(self, status: int, reason: str, headers: list[tuple[str, str]], *, chunked: bool,
             length: int | None) -> None: ...

    def body(self, chunk: bytes) -> None: ...

    def done(self) -> None: ...


class KeepSink:
    """A sink that keeps the status, the headers and the first ``max_body`` bytes of the body."""

    __slots__ = ("headers", "kept", "max_body", "status")

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.status = 0
        self.headers: tuple[tuple[str, str], ...] = ()
        self.kept = bytearray()

    def head(self, status: int, reason: str, headers: list[tuple[str, str]], *, chunked: bool,
             length: int | None) -> None:
        self.status, self.headers = status, tuple(headers)

    def body(self, chunk: bytes) -> None:
        room = self.max_body - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]

    def done(self) -> None:
        pass


class _Conn(asyncio.Protocol):
    """One upstream connection, carrying one exchange at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.started = False  # a byte of the current response has arrived
        self.reusable = False
        self._sink: ResponseSink | None = None
        self._done: asyncio.Future[None] | None = None
        self._reason = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._until_eof = False
        self._head_request = False  # a HEAD response ends with its headers (llhttp cannot be told so)
        self._interim = False  # parsing a 1xx response

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():  # unsolicited bytes between exchanges: not reusable
            self.abort()
            return
        self.started = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._finish(LegProtocolError(f"invalid HTTP response: {exc!r}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_eof and self._sink is not None:  # a body delimited by the close: complete now
            self.on_message_complete()
            return
        self._finish(ConnectionResetError("the gateway closed the connection before the response was complete"))

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        if self._done is None or self._done.done():  # a second response to one request: desynchronized
            raise LegProtocolError("a response the gateway was not asked for")
        self._reason.clear()
        self._headers = []
        self._interim = False

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status == 101:  # an upgrade we never asked for
            raise LegProtocolError("101 Switching Protocols to a plain request")
        if status < 200:  # 1xx interim response (100, 103 Early Hints): skipped, the final one follows
            self._interim = True
            return
        chunked, length = False, None
        for k, v in self._headers:
            low = k.lower()
            if low == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif low == "content-length" and v.strip().isdigit():
                length = int(v)
        if status in (204, 304):
            length = 0
        self._until_eof = not chunked and length is None and not self._head_request
        assert self._sink is not None
        self._sink.head(status, self._reason.decode("utf-8", "surrogateescape"), self._headers,
                        chunked=chunked, length=None if chunked else length)
        if self._head_request:  # complete without a body; the parser would wait for one, so the connection goes
            self._sink.done()
            self._finish(None)
            self.abort()

    def on_body(self, chunk: bytes) -> None:
        assert self._sink is not None
        self._sink.body(chunk)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.reusable = not self._until_eof and self.parser.should_keep_alive() and not self.closed
        self._until_eof = False
        assert self._sink is not None
        self._sink.done()
        self._finish(None)

    # -- exchanges
    async def run(self, request: bytes, sink: ResponseSink, *, head_request: bool = False) -> None:
        assert self.transport is not None
        self.started = self.reusable = False
        self._head_request = head_request
        self._sink = sink
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            await self._done
        finally:
            self._sink = None

    def _finish(self, exc: BaseException | None) -> None:
        done = self._done
        if done is None or done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def abandon(self, exc: BaseException) -> None:
        """End the current exchange with ``exc`` and drop the connection."""
        self._finish(exc)
        self.abort()

    def usable(self) -> bool:
        """Open, and no end of stream queued (an idle connection the gateway already closed is not)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one leg.

    Args:
        url: the leg's base URL (``http://`` or ``https://``, host, port and an optional path prefix).
        keepalive: seconds an idle connection is kept for reuse.
        connect_timeout: deadline for opening a connection.
    """

    def __init__(self, url: str, *, keepalive: float = 4.0, connect_timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"leg url {url!r}: expected http(s)://host[:port]")
        self._prefix = parts.path.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = (f"Host: {host}" if default else f"Host: {host}:{self.port}").encode()
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self._idle: list[tuple[_Conn, float]] = []
        self._busy: set[_Conn] = set()
        self._closed = False

    def request_bytes(self, method: str, target: str, headers: tuple[tuple[str, str], ...], body: bytes) -> bytes:
        """The request as sent: our Host first, the caller's headers in order, then the body length."""
        lines = [f"{method} {self._prefix}{target} HTTP/1.1".encode(), self._host_header]
        lines += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in headers if k.lower() not in _OWN]
        if body or method in _BODY_METHODS:
            lines.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def exchange(self, method: str, target: str, headers: tuple[tuple[str, str], ...], body: bytes,
                       sink: ResponseSink, *, on_conn: Callable[[_Conn], None] | None = None) -> None:
        """Send one request and stream its response into ``sink``; raises on failure (see the module doc).

        ``on_conn``, if given, is called with the connection before the request is written (the caller pauses
        its reading when the client cannot keep up, and abandons it when the client goes away).
        """
        request = self.request_bytes(method, target, headers, body)
        for attempt in (0, 1):
            conn, reused = await self._acquire()
            self._busy.add(conn)
            try:
                if on_conn is not None:
                    on_conn(conn)
                await conn.run(request, sink, head_request=method == "HEAD")
            except ConnectionResetError:
                conn.abort()
                if attempt == 0 and reused and not conn.started and method in IDEMPOTENT and not self._closed:
                    continue
                raise
            except BaseException:  # cancelled, timed out, client gone, protocol error: state unknown
                conn.abort()
                raise
            finally:
                self._busy.discard(conn)
            self._release(conn)
            return

    async def _acquire(self) -> tuple[_Conn, bool]:
        if self._closed:
            raise ConnectionAbortedError("the proxy is shutting down")
        now = time.monotonic()
        while self._idle:
            conn, since = self._idle.pop()
            if conn.usable() and now - since < self.keepalive:
                return conn, True
            conn.abort()
        fresh = (await self.connect(_Conn)).get_protocol()
        assert isinstance(fresh, _Conn)
        return fresh, False

    async def connect(self, factory: Callable[[], asyncio.Protocol]) -> asyncio.Transport:
        """A new connection to the leg speaking ``factory``'s protocol (a pooled ``_Conn``, or the WS byte
        relay's, which is not pooled)."""
        if self._closed:
            raise ConnectionAbortedError("the proxy is shutting down")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            transport, _ = await loop.create_connection(factory, self.host, self.port, ssl=self._ssl)
        assert isinstance(transport, asyncio.Transport)
        if self._closed:  # closed while connecting
            transport.abort()
            raise ConnectionAbortedError("the proxy is shutting down")
        return transport

    def _release(self, conn: _Conn) -> None:
        if not conn.reusable or not conn.usable() or self._closed:
            conn.abort()
            return
        assert conn.transport is not None
        if not conn.transport.is_reading():
            conn.transport.resume_reading()
        self._idle.append((conn, time.monotonic()))

    def close(self) -> None:
        """Drop every connection, idle or busy (busy exchanges end with ``ConnectionResetError``, not retried);
        later exchanges fail at once."""
        self._closed = True
        for conn, _ in self._idle:
            conn.abort()
        self._idle.clear()
        for conn in list(self._busy):
            conn.abort()
