"""WebSocket framing (RFC 6455) for a relay that forwards bytes and only *reads* them: bytes in, messages out.

Sans-I/O and stdlib only, like the rest of ``wire``. The proxy's byte relay (``shadow.wsrelay``) writes every
byte it receives on to the other side unchanged -- the client's masked frames to the primary, the primary's
frames to the client -- and feeds a copy to a :class:`FrameReader`, which reassembles messages for the Tap:
unmasked, fragments joined, control frames (ping, pong) skipped, close frames decoded.

The reader never refuses anything: the relay is not the endpoint, so a protocol error is the primary's (or the
client's) to answer, exactly as it would be without the proxy. On the first violation the reader records it in
:attr:`FrameReader.error` and reads nothing more of that direction. Extensions are never negotiated through the
relay (it strips ``Sec-WebSocket-Extensions`` from the handshake), so any RSV bit is a violation.

Also here: :func:`accept_key` (the handshake's ``Sec-WebSocket-Accept``) and :func:`close_frame` (a server
close frame), which the relay needs when the primary is unreachable or vanishes.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

__all__ = ["BINARY", "TEXT", "Close", "FrameReader", "Message", "accept_key", "close_frame"]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(frozen=True, slots=True)
class Message:
    """One data message.

    Attributes:
        opcode: :data:`TEXT` or :data:`BINARY`.
        data: the unmasked payload, at most the reader's ``keep`` bytes of it.
        size: the full payload size (``size > len(data)``: truncated).
    """

    opcode: int
    data: bytes
    size: int

    @property
    def truncated(self) -> bool:
        return self.size > len(self.data)


@dataclass(frozen=True, slots=True)
class Close:
    """A close frame: ``code`` is 1005 when the frame carried no status code (RFC 6455 §7.1.5)."""

    code: int
    reason: str


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def close_frame(code: int, reason: str, *, mask: bytes | None = None) -> bytes:
    """A close frame: unmasked (server to client), or masked with the 4-byte ``mask`` (client to server). The
    reason is cut to fit a control frame's 125 bytes, at a character boundary."""
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    payload = code.to_bytes(2, "big") + text
    if mask is None:
        return bytes((0x80 | CLOSE, len(payload))) + payload
    return bytes((0x80 | CLOSE, 0x80 | len(payload))) + mask + unmask(payload, mask)


def unmask(data: bytes | bytearray, mask: bytes) -> bytes:
    """``data`` XOR the 4-byte ``mask`` repeated from its first byte (one big-integer XOR, not a byte loop)."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class FrameReader:
    """Reads one direction of a WebSocket connection.

    Args:
        keep: payload bytes of one message kept (the rest is counted in :attr:`Message.size`, not stored).
    """

    def __init__(self, *, keep: int) -> None:
        self.keep = keep
        self.error: str | None = None
        self._buf = bytearray()
        # the frame whose payload is arriving: opcode, fin, mask, payload bytes left, kept (masked) prefix
        self._op = -1
        self._fin = False
        self._mask: bytes | None = None
        self._left = 0
        self._size = 0
        self._budget = 0
        self._frame = bytearray()
        # the data message being assembled (opcode 0: none)
        self._msg_op = 0
        self._msg = bytearray()
        self._msg_size = 0

    @property
    def at_boundary(self) -> bool:
        """True between frames: a frame written now to this direction's receiver would not split another.
        Unknown (False) once the reader has stopped on a violation."""
        return self._op < 0 and not self._buf and self.error is None

    def feed(self, data: bytes) -> list[Message | Close]:
        """Read ``data`` (any slice of the stream); answer the messages and close frames it completed."""
        if self.error is not None:
            return []
        self._buf += data
        out: list[Message | Close] = []
        buf, i = self._buf, 0
        while True:
            if self._op < 0:
                n = self._head(buf, i)
                if n <= 0:
                    if n < 0:  # a violation: stop reading this direction
                        self._buf.clear()
                        return out
                    break
                i += n
            take = min(self._left, len(buf) - i)
            if self._budget and take:
                k = min(take, self._budget)
                self._frame += buf[i:i + k]
                self._budget -= k
            i += take
            self._left -= take
            if self._left:
                break
            done = self._end_frame()
            if done is not None:
                out.append(done)
            if self.error is not None:
                self._buf.clear()
                return out
        del buf[:i]
        return out

    def _head(self, buf: bytearray, i: int) -> int:
        """Parse a frame head at ``buf[i:]``: its length, 0 when incomplete, -1 on a violation."""
        avail = len(buf) - i
        if avail < 2:
            return 0
        b0, b1 = buf[i], buf[i + 1]
        n, length = 2, b1 & 0x7F
        if length == 126:
            n = 4
        elif length == 127:
            n = 10
        masked = bool(b1 & 0x80)
        if avail < n + (4 if masked else 0):
            return 0
        if length == 126:
            length = int.from_bytes(buf[i + 2:i + 4], "big")
        elif length == 127:
            length = int.from_bytes(buf[i + 2:i + 10], "big")
            if length >> 63:
                return self._fail("64-bit payload length with its high bit set")
        op, fin = b0 & 0x0F, bool(b0 & 0x80)
        if b0 & 0x70:
            return self._fail("RSV bit set (no extension was negotiated)")
        if op >= CLOSE:
            if op not in (CLOSE, PING, PONG):
                return self._fail(f"reserved control opcode {op:#x}")
            if not fin or length > 125:
                return self._fail("fragmented or oversized control frame")
        elif op not in (CONT, TEXT, BINARY):
            return self._fail(f"reserved data opcode {op:#x}")
        elif (op == CONT) != bool(self._msg_op):
            return self._fail("continuation without a message" if op == CONT else "new message inside a fragmented one")
        self._mask = bytes(buf[i + n:i + n + 4]) if masked else None
        n += 4 if masked else 0
        self._op, self._fin, self._left, self._size = op, fin, length, length
        self._budget = length if op >= CLOSE else max(0, min(length, self.keep - len(self._msg)))
        if op in (TEXT, BINARY):
            self._msg_op = op
        return n

    def _end_frame(self) -> Message | Close | None:
        op, frame = self._op, self._frame
        payload = unmask(frame, self._mask) if self._mask is not None else bytes(frame)
        self._op, self._frame = -1, bytearray()
        if op == CLOSE:
            if len(payload) == 1:
                self._fail("close frame with a one-byte payload")
                return None
            code = int.from_bytes(payload[:2], "big") if payload else 1005
            return Close(code, payload[2:].decode("utf-8", "replace"))
        if op >= CLOSE:  # ping, pong: passed through by the relay, nothing for the Tap
            return None
        self._msg += payload
        self._msg_size += self._size
        if not self._fin:
            return None
        msg = Message(self._msg_op, bytes(self._msg), self._msg_size)
        self._msg_op, self._msg, self._msg_size = 0, bytearray(), 0
        return msg

    def _fail(self, why: str) -> int:
        self.error = why
        return -1
