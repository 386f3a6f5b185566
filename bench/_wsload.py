"""A lean WebSocket connect loop for measuring a gateway's connect capacity, not the client's.

A ``websockets`` client spends about as much CPU per connect as the gateway it measures, so on a 2-core machine
its own cost caps the figure. This client sends precomputed bytes (upgrade request, masked connect frame,
masked close frame) and reads just enough to check each answer: the ``101`` status, the challenge, a
``res`` frame with ``"ok":true`` for our connect id (anything else raises: a failed connect is never counted),
and the server's close frame. Several loops run concurrently, as many clients would.
Used by ``bench/gateway_bench.py``; loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from typing import Any


def _masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (FIN set, masked as RFC 6455 §5.3 requires)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body


class LeanClient:
    """Precomputed bytes for one gateway (``host:port``, token auth, no device)."""

    def __init__(self, host: str, port: int, token: str, connect_params: dict[str, Any]) -> None:
        self.host, self.port = host, port
        key = base64.b64encode(os.urandom(16)).decode()
        self.upgrade = (f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        params = {**connect_params, "auth": {"token": token}}
        self.connect = _masked(0x1, json.dumps({"type": "req", "id": "lean-c", "method": "connect",
                                                "params": params}).encode())
        self.close = _masked(0x8, struct.pack("!H", 1000))

    async def hello(self) -> None:
        """One connect -> hello-ok -> close; raises unless the gateway said ok."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(self.upgrade)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"upgrade refused: {head[:80]!r}")
            await _read_frame(reader)  # connect.challenge (token auth does not sign it)
            writer.write(self.connect)
            while True:
                opcode, payload = await _read_frame(reader)
                if opcode == 0x8:
                    raise RuntimeError(f"closed before hello-ok: {payload[:120]!r}")
                if b'"lean-c"' in payload and b'"type":"res"' in payload.replace(b" ", b""):
                    if b'"ok":true' not in payload.replace(b" ", b""):
                        raise RuntimeError(f"connect refused: {payload[:200]!r}")
                    break
            writer.write(self.close)
            while (await _read_frame(reader))[0] != 0x8:
                pass
        finally:
            writer.close()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One whole server message (continuations joined); control frames returned as they come."""
    parts: list[bytes] = []
    first_op = 0
    while True:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        if b1 & 0x80:
            raise RuntimeError("server frames must not be masked")
        payload = await reader.readexactly(n)
        op = b0 & 0x0F
        if op >= 0x8:  # control frame
            return op, payload
        first_op = first_op or op
        parts.append(payload)
        if b0 & 0x80:
            return first_op, b"".join(parts)


async def connects_per_s(client: LeanClient, seconds: float, concurrency: int) -> float:
    """Completed connect -> hello-ok -> close cycles per second, ``concurrency`` loops for ``seconds``."""
    end = time.monotonic() + seconds

    async def loop() -> int:
        n = 0
        while time.monotonic() < end:
            await client.hello()
            n += 1
        return n

    t0 = time.monotonic()
    done = sum(await asyncio.gather(*(loop() for _ in range(concurrency))))
    return done / (time.monotonic() - t0)
