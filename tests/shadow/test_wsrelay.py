"""The WS byte relay (shadow.wsrelay): bytes pass unchanged both ways, the Tap reads the messages, and what the
proxy says itself (legacy unreachable, connection lost, shutting down) -- with raw sockets on both sides."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from _timing import S, async_wait_until
from shadow_fakes import Exposed, FakeGateway
from websockets.frames import Close as WsClose
from websockets.frames import Frame, Opcode

from recorder.format import read_trace
from wire.model import Direction, Kind
from wire.rfc6455 import Close, FrameReader, accept_key

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _handshake(key: str, *extra: str) -> bytes:
    lines = ["GET /ws?x=1 HTTP/1.1", "Host: proxy.example", "Upgrade: websocket", "Connection: keep-alive, Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts a raw TCP upstream with the given connection handler; answers its base URL."""
    servers: list[asyncio.Server] = []

    async def start(handle: Handler) -> str:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


async def _accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, heads: list[bytes],
                  after: bytes = b"") -> None:
    """Read a handshake head and answer 101 (with an extra header), plus ``after`` in the same write."""
    head = await reader.readuntil(b"\r\n\r\n")
    heads.append(head)
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: %s\r\nX-Upstream: raw\r\n\r\n%s" % (accept_key(key.decode()).encode(), after))
    await writer.drain()


async def _rest(reader: asyncio.StreamReader) -> list[object]:
    """Every message and close frame until the connection ends (the reader must end between frames)."""
    frames, out = FrameReader(keep=1 << 16), []
    while data := await asyncio.wait_for(reader.read(65536), 10 * S):
        out += frames.feed(data)
    assert frames.at_boundary, "the connection ended inside a frame"
    return out


def _trace(tmp_path) -> list[tuple[object, ...]]:  # noqa: ANN001
    (path,) = tmp_path.glob("shadow-*.jsonl")
    obs = [o for o in read_trace(open(path), strict=True).observations if o.conn.startswith("c")]
    return [(o.kind, o.dir, o.data or o.data_b64 or o.code) for o in obs]


async def test_bytes_pass_unchanged_both_ways_and_the_tap_reads_the_messages(raw_upstream, make_proxy,
                                                                             tmp_path) -> None:
    server_frames = b"".join(f.serialize(mask=False) for f in (
        Frame(Opcode.TEXT, b'{"type":"event","event":"hello",', fin=False), Frame(Opcode.PING, b"p"),
        Frame(Opcode.CONT, b'"payload":{}}')))
    client_frames = b"".join(f.serialize(mask=True) for f in (
        Frame(Opcode.TEXT, b'{"type":"req","id":"1",', fin=False), Frame(Opcode.PONG, b"p"),
        Frame(Opcode.CONT, b'"method":"health"}'), Frame(Opcode.BINARY, bytes(range(256))),
        Frame(Opcode.CLOSE, WsClose(1000, "done").serialize())))
    heads: list[bytes] = []
    received = bytearray()
    closing = Frame(Opcode.CLOSE, WsClose(1000, "done").serialize()).serialize(mask=False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept(reader, writer, heads, after=server_frames)
        while len(received) < len(client_frames):
            chunk = await reader.read(65536)
            if not chunk:
                break
            received.extend(chunk)
        writer.write(closing)  # the close handshake's answer, then the server ends the connection
        await writer.drain()
        writer.close()

    proxy = await make_proxy(await raw_upstream(handle), record={"trace_dir": str(tmp_path)})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    key = _key()
    writer.write(_handshake(key, "Sec-WebSocket-Extensions: permessage-deflate", "Origin: http://app.example"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    assert head.startswith(b"HTTP/1.1 101 ") and b"X-Upstream: raw\r\n" in head  # the upstream's own answer
    assert accept_key(key).encode() in head
    for i in range(0, len(client_frames), 7):  # the client's frames in odd slices
        writer.write(client_frames[i:i + 7])
        await writer.drain()
    got = bytearray()
    while chunk := await asyncio.wait_for(reader.read(65536), 10 * S):
        got.extend(chunk)
    assert bytes(got) == server_frames + closing  # the upstream's frames, ping included, unchanged
    assert bytes(received) == client_frames  # the client's masked frames, pong included, unchanged
    up_head = heads[0].decode()
    assert up_head.startswith("GET /ws?x=1 HTTP/1.1\r\n") and f"Sec-WebSocket-Key: {key}\r\n" in up_head
    assert "proxy.example" not in up_head and "Host: 127.0.0.1:" in up_head
    assert "permessage-deflate" not in up_head  # frames stay plain, so the relay can read them
    assert "Origin: http://app.example\r\n" in up_head
    writer.close()
    await async_wait_until(lambda: Exposed(proxy).value("parity_client_connections", {"protocol": "ws"}) == 0,
                           10 * S, what="the relay ended")
    await proxy.stop()
    assert _trace(tmp_path) == [
        (Kind.WS_OPEN, Direction.C2S, None),
        (Kind.WS_TEXT, Direction.S2C, '{"type":"event","event":"hello","payload":{}}'),  # fragments joined
        (Kind.WS_TEXT, Direction.C2S, '{"type":"req","id":"1","method":"health"}'),
        (Kind.WS_BINARY, Direction.C2S, bytes(range(256))),
        (Kind.WS_CLOSE, Direction.C2S, 1000),
        (Kind.WS_CLOSE, Direction.S2C, 1000),
    ]


async def test_a_refused_upgrade_reaches_the_client_as_the_upstream_sent_it(raw_upstream, make_proxy) -> None:
    answer = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nforbidden\n"
    after_head: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        after_head.append(await reader.read())  # keeps its side open: the proxy ends it once the body has passed

    base = await raw_upstream(handle)

    async def ask(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_handshake(_key()))
        out = await asyncio.wait_for(reader.readexactly(len(answer)), 10 * S)
        if port != int(base.rsplit(":", 1)[1]):
            assert await asyncio.wait_for(reader.read(), 10 * S) == b""  # and then the connection ends
        writer.close()
        return out

    proxy = await make_proxy(base)
    assert await ask(proxy.port) == await ask(int(base.rsplit(":", 1)[1])) == answer


async def test_after_a_refused_upgrade_nothing_more_reaches_the_upstream(raw_upstream, make_proxy) -> None:
    """A chunked refusal has no length the relay reads: the connection lives until one side ends it, and what
    the client sends meanwhile is not passed on unread."""
    received = bytearray()
    ended = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnope\r\n0\r\n\r\n")
        await writer.drain()
        while chunk := await reader.read(65536):
            received.extend(chunk)
        ended.set()

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    head = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 10 * S)
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n") and head.endswith(b"4\r\nnope\r\n0\r\n\r\n")
    writer.write(b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n")  # a next request on the refused connection
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.wait_for(ended.wait(), 10 * S)  # the client left: the proxy closed the upstream side too
    assert bytes(received) == b""
    assert Exposed(proxy).total("parity_dropped_total", stage="tap", reason="refused") == 1


async def test_upstream_gone_without_a_close_frame_gives_1011_and_is_counted(raw_upstream, make_proxy) -> None:
    hello = Frame(Opcode.TEXT, b'{"type":"event","event":"hello"}').serialize(mask=False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept(reader, writer, [], after=hello)
        writer.transport.abort()  # no close frame

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    assert await asyncio.wait_for(reader.readexactly(len(hello)), 10 * S) == hello
    assert await _rest(reader) == [Close(1011, "legacy gateway connection lost")]  # then the connection ends
    assert Exposed(proxy).total("parity_legacy_errors_total", kind="closed") == 1
    writer.close()


async def test_upstream_gone_inside_a_frame_ends_the_client_connection_without_a_close(raw_upstream,
                                                                                         make_proxy) -> None:
    part = bytes((0x81, 100)) + b"0123456789"  # a text frame announcing 100 bytes, 10 of them sent

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept(reader, writer, [], after=part)
        writer.transport.abort()

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    got = bytearray()
    while chunk := await asyncio.wait_for(reader.read(65536), 10 * S):
        got += chunk
    assert bytes(got) == part  # no close frame spliced into the half-written one: the client sees the cut
    assert Exposed(proxy).total("parity_legacy_errors_total", kind="closed") == 1
    writer.close()


async def test_upstream_dropping_tcp_after_the_clients_close_is_not_a_failure(raw_upstream, make_proxy) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept(reader, writer, [])
        frames = FrameReader(keep=1024)
        while not any(isinstance(i, Close) for i in frames.feed(await reader.read(65536))):
            pass
        writer.transport.abort()  # no echo of the close

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    writer.write(Frame(Opcode.CLOSE, WsClose(1000, "bye").serialize()).serialize(mask=True))
    assert await _rest(reader) == []  # the connection ends as the upstream ended it: no 1011 from the proxy
    assert Exposed(proxy).total("parity_legacy_errors_total") == 0
    writer.close()


async def test_frames_sent_before_the_101_reach_the_upstream_first_and_in_order(raw_upstream, make_proxy,
                                                                             tmp_path) -> None:
    early = Frame(Opcode.TEXT, b'{"type":"req","id":"early"}').serialize(mask=True)
    late = Frame(Opcode.TEXT, b'{"type":"req","id":"late"}').serialize(mask=True)
    received = bytearray()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)  # slow to answer: the early frame waits in the proxy
        await _accept(reader, writer, [])
        while len(received) < len(early) + len(late) and (chunk := await reader.read(65536)):
            received.extend(chunk)
        writer.transport.abort()

    proxy = await make_proxy(await raw_upstream(handle), record={"trace_dir": str(tmp_path)})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()) + early)  # a client that does not wait for the 101
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    writer.write(late)
    await async_wait_until(lambda: len(received) >= len(early) + len(late), 10 * S, what="both frames upstream")
    assert bytes(received) == early + late
    writer.close()
    await async_wait_until(lambda: Exposed(proxy).value("parity_client_connections", {"protocol": "ws"}) == 0,
                           10 * S, what="the relay ended")
    await proxy.stop()
    assert [x[2] for x in _trace(tmp_path) if x[1] is Direction.C2S and x[0] is Kind.WS_TEXT] == [
        '{"type":"req","id":"early"}', '{"type":"req","id":"late"}']


async def test_legacy_unreachable_gives_101_with_the_offered_protocol_then_1011(make_proxy) -> None:
    from shadow_fakes import free_port

    proxy = await make_proxy(f"http://127.0.0.1:{free_port()}")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    key = _key()
    writer.write(_handshake(key, "Sec-WebSocket-Protocol: openclaw, other"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    assert head.startswith(b"HTTP/1.1 101 ") and accept_key(key).encode() in head
    assert b"Sec-WebSocket-Protocol: openclaw\r\n" in head  # a browser fails a handshake that drops it
    assert await _rest(reader) == [Close(1011, "legacy gateway unavailable (connect)")]
    assert Exposed(proxy).total("parity_legacy_errors_total", kind="connect") == 1
    writer.close()


async def test_client_protocol_errors_are_answered_by_the_legacy_as_without_the_proxy(fake_legacy: FakeGateway,
                                                                                       make_proxy) -> None:
    bad = bytes((0xC1, 0x82)) + b"\x01\x02\x03\x04" + b"ab"  # RSV1 set, no extension negotiated

    async def close_after_bad_frame(port: int) -> Close:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_handshake(_key()))
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
        writer.write(bad)
        try:
            return next(i for i in await _rest(reader) if isinstance(i, Close))
        finally:
            writer.close()

    direct = await close_after_bad_frame(int(fake_legacy.url.rsplit(":", 1)[1]))
    proxy = await make_proxy(fake_legacy.url)
    assert await close_after_bad_frame(proxy.port) == direct
    assert direct.code == 1002  # the legacy (not the proxy) refused it
    assert Exposed(proxy).total("parity_dropped_total", stage="tap", reason="protocol") == 1


async def test_a_client_gone_during_the_upstream_handshake_leaves_nothing_open(raw_upstream, make_proxy) -> None:
    ended = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # never answers
        await reader.read()
        ended.set()

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.wait_for(ended.wait(), 10 * S)  # the proxy closed its upstream side
    await async_wait_until(lambda: Exposed(proxy).value("parity_client_connections", {"protocol": "ws"}) == 0,
                           10 * S, what="the relay ended")
    assert Exposed(proxy).total("parity_legacy_errors_total") == 0  # the client left: not a leg failure


async def test_proxy_shutdown_closes_both_sides_with_1001(raw_upstream, make_proxy) -> None:
    upstream_saw: list[object] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _accept(reader, writer, [])
        frames = FrameReader(keep=1024)
        while chunk := await reader.read(65536):
            upstream_saw.extend(frames.feed(chunk))

    proxy = await make_proxy(await raw_upstream(handle))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(_handshake(_key()))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    assert proxy.health()["fast_http"]["ws_relayed"] == 1
    await proxy.stop()
    assert await _rest(reader) == [Close(1001, "proxy shutting down")]  # exactly one close, then the end
    await async_wait_until(lambda: bool(upstream_saw), 10 * S, what="the upstream's close")
    assert upstream_saw == [Close(1001, "proxy shutting down")]  # masked as from a client (the reader unmasks)
    writer.close()
