"""The WebSocket byte relay: after the handshake, bytes go from one socket to the other as they arrive.

Owns :class:`WsRelay` (one client WebSocket on the fast path, ``shadow.fastpath``). The proxy does not terminate
the WebSocket: it forwards the client's opening handshake to the primary (``Host`` rewritten, extensions not
offered, so frames stay plain), gives the client the primary's answer as it came, and from then on writes each
chunk read from one side to the other in the same event-loop callback -- the client's masked frames, the
primary's frames, pings, pongs and close frames, unchanged. A copy of each chunk goes to a
``wire.rfc6455.FrameReader`` per direction, and the messages it completes go to the Tap (observed, mirrored as
the policy says), after the bytes have left.

So the client sees exactly what the primary sends, and the primary exactly what the client sends, including their
protocol errors, which the primary answers as it would without the proxy. What the proxy adds itself: when the
primary cannot be reached, the client gets the handshake's ``101`` and a close ``1011`` naming the leg; when the
primary's connection ends without a close frame, the client gets ``1011`` (if no frame was half-written); when
the proxy shuts down, ``1001``. Flow control is end to end: a side whose socket buffer is full pauses reading the
other side. The aiohttp path in ``shadow.forward`` serves what this one does not take (write-ahead recording,
``limits.fast_http = false``, handshakes that are not plain). May import: stdlib, ``wire``, ``shadow.*`` except
``shadow.mitm``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shadow.mirror import error_kind
from shadow.pipeline import MirrorHandle
from shadow.upstream import UpstreamPool
from wire.http1 import HOP_BY_HOP, MAX_HEAD, RequestHead, head_end
from wire.model import Direction, Kind, Leg, Observation
from wire.rfc6455 import TEXT, Close, FrameReader, Message, accept_key, close_frame

if TYPE_CHECKING:
    from shadow.forward import Forwarder

logger = logging.getLogger(__name__)

__all__ = ["WsRelay"]

#: Client handshake headers not passed to the primary (the relay writes its own Host, Upgrade and Connection).
_NOT_FORWARDED = HOP_BY_HOP | {"host", "sec-websocket-extensions", "content-length"}
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
#: Seconds a closing socket may take to flush what is still buffered for a peer that stopped reading.
CLOSE_GRACE = 5.0


class _Side(asyncio.Protocol):
    """One socket of the relay: the client's (taken over from the fast path) or the primary's."""

    def __init__(self, relay: WsRelay, client: bool) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.write_paused = False  # this socket's send buffer is full: the other side is not read meanwhile
        self._grace: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.relay.other(self).write_paused:  # the primary connects while the client cannot take more
            transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self.client:
            self.relay.from_client(data)
        else:
            self.relay.from_primary(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._grace is not None:
            self._grace.cancel()
        self.relay.side_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        other = self.relay.other(self)
        if other.transport is not None:
            other.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        other = self.relay.other(self)
        if other.transport is not None and not other.lost and not self.relay.holds(other):
            other.transport.resume_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.lost:
            self.transport.write(data)

    def close(self) -> None:
        """Close after what is buffered has been sent; a peer that does not read it within
        :data:`CLOSE_GRACE` is cut off."""
        if self.transport is not None and not self.lost and not self.transport.is_closing():
            self.transport.close()
            self._grace = asyncio.get_running_loop().call_later(CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()


class WsRelay:
    """One client WebSocket relayed byte for byte to the primary, with the Tap reading along.

    Args:
        fwd: the forwarder (config, metrics, Tap, pools).
        transport: the client's socket, taken over from the fast path after the handshake head.
        head: the client's handshake; ``rest``: bytes the client sent after it.
        primary, secondary: the legs (``secondary`` None: not mirrored).
        conn: the connection's id in observations.
    """

    def __init__(self, fwd: Forwarder, transport: asyncio.Transport, head: RequestHead, rest: bytes,
                 primary: Leg, secondary: Leg | None, conn: str, *, write_paused: bool = False) -> None:
        self.fwd = fwd
        self.head = head
        self.primary = primary
        self.secondary = secondary
        self.conn = conn
        self.mirror: MirrorHandle | None = None
        self._client = _Side(self, client=True)
        self._up = _Side(self, client=False)
        self._pending = bytearray(rest)  # client bytes that arrived before the primary's 101
        self._reply = bytearray()  # the primary's answer to the handshake, until its head is complete
        self._open = False  # the primary said 101: relaying, with the Tap reading along
        self._raw = False  # the primary refused the upgrade: its answer is relayed as is, nothing read
        self._answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keep = fwd.config.limits.max_frame
        self._c2s, self._s2c = FrameReader(keep=keep), FrameReader(keep=keep)
        self._closed_by_primary = False  # a close frame went from the primary to the client
        self._closed_by_client = False  # and from the client to the primary
        self._holding = False  # the client's reading is paused because too much arrived before the 101
        self._shut = False
        self._raw_left = -1  # body bytes of a refusal still to relay (-1: until the primary closes)
        transport.set_protocol(self._client)
        self._client.connection_made(transport)
        self._client.write_paused = write_paused  # the fast path's last response may still fill the buffer

    def other(self, side: _Side) -> _Side:
        return self._up if side is self._client else self._client

    def holds(self, side: _Side) -> bool:
        """Whether the relay itself keeps ``side`` from being read (client bytes waiting for the 101)."""
        return side is self._client and self._holding

    # -- the relay's life
    async def run(self) -> None:
        """Connect, hand the handshake over, relay until both sockets are closed."""
        try:
            await self._handshake()
            await self._ended
        except asyncio.CancelledError:  # the proxy stopped and would not wait longer: nothing is left open
            self._client.abort()
            self._up.abort()
            raise
        finally:
            if self._open:
                self.fwd.tap.close_conn(self.conn)

    async def _handshake(self) -> None:
        pool: UpstreamPool = self.fwd.pool(self.primary)
        try:
            await pool.connect(lambda: self._up)
            if self._client.lost:  # the client left while the primary was being reached
                raise ConnectionAbortedError("the client left")
            self._up.write(pool.request_bytes("GET", self.head.target, self._handshake_headers(), b""))
            async with asyncio.timeout(self.fwd.config.limits.legacy_timeout):
                await asyncio.shield(self._answered)
        except (TimeoutError, OSError) as exc:
            if self._open or self._raw:  # answered in the same turn as the deadline: carry on
                return
            if self._client.lost:
                self._up.close()
            else:
                self._unavailable(exc)
        finally:
            if not self._answered.done():
                self._answered.cancel()  # nothing waits for it any more

    def _opened(self) -> None:
        """The primary said 101: the Tap sees the connection open (and the mirror starts) before any frame."""
        tap = self.fwd.tap
        tap.observe(Observation(t=tap.now(), conn=self.conn, leg=self.primary, dir=Direction.C2S, kind=Kind.WS_OPEN,
                                path=self.head.target))
        if self.secondary is not None:
            origin = [(k, v) for k, v in self.head.headers if k.lower() in ("origin", "user-agent")]
            self.mirror = tap.open_mirror(self.conn, self.head.target, origin, self.secondary)

    def shutdown(self) -> None:
        """The proxy is stopping: each side that has not closed yet gets ``1001`` (unless a frame to it is
        half-written; the primary's masked, as from a client), then both sockets close."""
        if self._shut:
            return
        self._shut = True
        if self._open:
            if not self._closed_by_primary and self._s2c.at_boundary:
                self._client.write(close_frame(1001, "proxy shutting down"))
            if not self._closed_by_client and self._c2s.at_boundary:
                self._up.write(close_frame(1001, "proxy shutting down", mask=os.urandom(4)))
        self._client.close()
        self._up.close()

    def _handshake_headers(self) -> tuple[tuple[str, str], ...]:
        kept = tuple((k, v) for k, v in self.head.headers if k.lower() not in _NOT_FORWARDED)
        return (("Upgrade", "websocket"), ("Connection", "Upgrade"), *kept)

    def _unavailable(self, exc: BaseException) -> None:
        """The primary could not be reached (or did not answer the handshake): 101, then 1011 with the reason."""
        if self._open or self._raw:  # its answer already reached the client
            return
        kind = error_kind(exc)
        fwd = self.fwd
        fwd.metrics.leg_error(self.primary.value, kind)
        fwd.tap.count(self.primary, "ws", "connect", "error")
        logger.warning("%s leg unavailable for a WS client: %s: %s", self.primary.value, type(exc).__name__, exc)
        self._up.abort()
        self._reply.clear()  # part of a head it may have answered: nothing of it reached the client
        key = self.head.get("Sec-WebSocket-Key")
        offered = self.head.get("Sec-WebSocket-Protocol").split(",")[0].strip()  # browsers insist on an echo
        self._client.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Accept: %s\r\n%s\r\n" % (
                               accept_key(key).encode(),
                               f"Sec-WebSocket-Protocol: {offered}\r\n".encode() if offered else b""))
        self._client.write(close_frame(1011, f"{self.primary.value} gateway unavailable ({kind})"))
        self._client.close()
        if self._up.transport is None:
            self._up.lost = True
        self._maybe_ended()

    # -- bytes from either side
    def from_client(self, data: bytes) -> None:
        if not (self._open or self._raw):  # before the primary's answer: kept (reading pauses past a head's worth)
            self._pending += data
            if len(self._pending) > MAX_HEAD and self._client.transport is not None:
                self._holding = True
                self._client.transport.pause_reading()
            return
        if self._raw:  # after a refused upgrade the client has nothing to say to the primary on this connection
            self.fwd.metrics.drop("tap", "refused")
            return
        self._up.write(data)
        self._read(self._c2s, data, Direction.C2S)

    def from_primary(self, data: bytes) -> None:
        if self._open:
            self._client.write(data)
            self._read(self._s2c, data, Direction.S2C)
            return
        if self._raw:
            self._client.write(data)
            if self._raw_left >= 0:
                self._raw_left -= len(data)
                if self._raw_left <= 0:  # the refusal's body is complete: this connection is over
                    self._client.close()
                    self._up.close()
            return
        self._reply += data
        end = head_end(self._reply)
        if end < 0:
            if len(self._reply) > MAX_HEAD:
                self._fail_handshake(ConnectionResetError("the primary's handshake answer is too long"))
            return
        m = _STATUS.match(self._reply)
        if m is None:
            self._fail_handshake(ConnectionResetError("the primary's handshake answer is not HTTP"))
            return
        reply, self._reply = bytes(self._reply), bytearray()
        if self._answered.done():  # too late: the client already got the proxy's own 101 and 1011
            self._up.abort()
            return
        self._answered.set_result(None)
        self._open = m[1] == b"101"
        self._raw = not self._open
        self._client.write(reply[:end])
        if self._open:
            self._guarded(self._opened)
        self._release_pending()
        if self._raw:  # a refusal (401, 404, ...): relayed as is; the client's connection ends with it, and
            # nothing the client sends after it reaches the primary (it would be relayed unread)
            logger.info("%s: the %s leg refused the WS upgrade (HTTP %s)", self.conn, self.primary.value,
                        m[1].decode())
            length = _LENGTH.search(reply, 0, end)
            self._raw_left = int(length[1]) if length else -1
        self.from_primary(reply[end:])

    def _release_pending(self) -> None:
        """Client bytes that came before the primary's answer go on now, ahead of anything the client sends next
        (this runs in the callback that read the answer, so nothing can come between)."""
        pending, self._pending = bytes(self._pending), bytearray()
        if pending:
            self.from_client(pending)
        if self._holding:
            self._holding = False
            if self._client.transport is not None and not self._client.lost and not self._up.write_paused:
                self._client.transport.resume_reading()

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a Tap call: a bug behind the Tap is logged, it never breaks the relay."""
        try:
            fn(*args)
        except Exception:
            logger.exception("%s: the Tap failed; the connection is still relayed", self.conn)

    def _fail_handshake(self, exc: BaseException) -> None:
        if not self._answered.done():
            self._answered.set_exception(exc)

    def _tap(self, item: Message | Close, d: Direction) -> None:
        tap, fwd, conn, leg = self.fwd.tap, self.fwd, self.conn, self.primary
        if isinstance(item, Close):
            if d is Direction.S2C:
                self._closed_by_primary = True
            else:
                self._closed_by_client = True
            tap.observe(Observation(t=tap.now(), conn=conn, leg=leg, dir=d, kind=Kind.WS_CLOSE, code=item.code,
                                    reason=item.reason))
            return
        if item.truncated:  # over limits.max_frame: relayed, not read (the primary answers it with 1009)
            fwd.metrics.drop("tap", "oversized")
            return
        if item.opcode == TEXT:
            text = item.data.decode("utf-8", "replace")
            if d is Direction.C2S:
                tap.c2s_text(conn, leg, text, self.mirror is not None, tap.now())
            else:
                tap.s2c_text(conn, leg, text, tap.now())
            return
        tap.observe(Observation(t=tap.now(), conn=conn, leg=leg, dir=d, kind=Kind.WS_BINARY,
                                data_b64=item.data[: fwd.config.limits.max_body]))
        if d is Direction.C2S and self.mirror is not None:
            self.mirror.offer(item.data)

    def _read(self, reader: FrameReader, data: bytes, d: Direction) -> None:
        """The Tap's copy of relayed bytes. After a protocol violation the direction is still relayed (the
        receiving end answers the violation) but no longer read: logged and counted once."""
        if reader.error is not None:
            return
        for item in reader.feed(data):
            self._guarded(self._tap, item, d)
        if reader.error is not None:
            logger.info("%s: %s frames no longer read: %s", self.conn, d.value, reader.error)
            self.fwd.metrics.drop("tap", "protocol")

    # -- ends
    def side_lost(self, side: _Side) -> None:
        if side is self._up:
            if not self._answered.done():
                self._fail_handshake(ConnectionResetError("the primary closed the connection during the handshake"))
                return
            # vanished: no close frame either way (after a client's close, or a direction no longer read, a
            # dropped connection is the primary's way of ending it, not a failure)
            if self._open and not (self._closed_by_primary or self._closed_by_client or self._s2c.error) \
                    and not self._client.lost:
                self._vanished()
            self._client.close()
        else:
            self._up.close()
            self._fail_handshake(ConnectionAbortedError("the client left during the handshake"))
        self._maybe_ended()

    def _vanished(self) -> None:
        """The primary's connection ended without a close frame: counted, and the client gets 1011."""
        fwd, tap = self.fwd, self.fwd.tap
        fwd.metrics.leg_error(self.primary.value, "closed")
        tap.observe(Observation(t=tap.now(), conn=self.conn, leg=self.primary, dir=Direction.S2C, kind=Kind.WS_CLOSE,
                                code=1006, reason=""))
        if self._s2c.at_boundary:
            self._client.write(close_frame(1011, f"{self.primary.value} gateway connection lost"))

    def _maybe_ended(self) -> None:
        if self._client.lost and (self._up.lost or self._up.transport is None) and not self._ended.done():
            self._ended.set_result(None)
