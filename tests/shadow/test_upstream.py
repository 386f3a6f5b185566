"""The lean upstream client: real servers on loopback (aiohttp, and raw sockets for the misbehaving ones)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from shadow_fakes import serve_handler

from shadow.mirror import error_kind
from shadow.upstream import KeepSink, UpstreamPool
from wire.errors import ConfigError, LegProtocolError


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[tuple[str, str, dict[str, str], bytes]]]]:
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append((request.method, request.path_qs, dict(request.headers), body))
        if request.path == "/chunked":
            resp = web.StreamResponse(headers={"X-Kind": "chunked"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"part-{i};".encode())
            await resp.write_eof()
            return resp
        return web.Response(body=b"echo:" + body, headers={"X-Seen": request.method}, status=201)

    runner, url = await serve_handler(handle)
    yield url, seen
    await runner.cleanup()


async def _raw_server(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
                      ) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def _answer(data: bytes, *, close: bool = False) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                             Awaitable[None]]:
    """A raw server handler: read one request head, write ``data`` as is, then close if asked."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(data)
        await writer.drain()
        if close:
            writer.close()

    return handler


async def test_requests_share_one_keep_alive_connection(upstream) -> None:
    url, seen = upstream
    pool = UpstreamPool(url)
    for i in range(5):
        sink = KeepSink(1024)
        await pool.exchange("POST", f"/x?i={i}", (("X-Test", "1"),), f"b{i}".encode(), sink)
        assert (sink.status, bytes(sink.kept)) == (201, f"echo:b{i}".encode())
        assert dict(sink.headers)["X-Seen"] == "POST"
    assert [s[1] for s in seen] == [f"/x?i={i}" for i in range(5)]
    assert seen[0][2]["Host"] == url.removeprefix("http://") and seen[0][2]["X-Test"] == "1"
    assert seen[0][2]["Content-Length"] == "2"
    assert len(pool._idle) == 1, "five sequential requests must reuse one connection"
    pool.close()


async def test_chunked_body_and_kept_bytes_bound(upstream) -> None:
    url, _ = upstream
    pool = UpstreamPool(url)
    sink = KeepSink(10)
    await pool.exchange("GET", "/chunked", (), b"", sink)
    assert sink.status == 200 and bytes(sink.kept) == b"part-0;par"  # kept stops at max_body
    pool.close()


async def test_head_request_completes_without_a_body(upstream) -> None:
    url, seen = upstream
    pool = UpstreamPool(url)
    sink = KeepSink(100)
    await asyncio.wait_for(pool.exchange("HEAD", "/h", (), b"", sink), 5)
    assert sink.status == 201 and bytes(sink.kept) == b"" and seen[-1][0] == "HEAD"
    sink2 = KeepSink(100)
    await pool.exchange("GET", "/after", (), b"", sink2)  # the pool is still usable
    assert bytes(sink2.kept) == b"echo:"
    pool.close()


async def test_path_prefix_of_the_leg_url(upstream) -> None:
    url, seen = upstream
    pool = UpstreamPool(url + "/base/")
    await pool.exchange("GET", "/healthz", (), b"", KeepSink(10))
    assert seen[-1][1] == "/base/healthz"
    pool.close()


async def test_reused_connection_closed_before_answering_is_retried_for_idempotent_methods_only() -> None:
    """Each connection answers one request, then closes on the next one without answering (a keep-alive race)."""
    conns = 0

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server, url = await _raw_server(one_answer)
    pool = UpstreamPool(url)
    await pool.exchange("GET", "/", (), b"", KeepSink(10))
    sink = KeepSink(10)
    await pool.exchange("GET", "/", (), b"", sink)  # reused, closed unanswered, retried on a fresh connection
    assert bytes(sink.kept) == b"ok" and conns == 2
    with pytest.raises(ConnectionResetError) as info:  # a POST is never sent twice: the caller sees the failure
        await pool.exchange("POST", "/", (), b"x", KeepSink(10))
    assert error_kind(info.value) == "closed" and conns == 2
    pool.close()
    server.close()


async def test_garbage_and_premature_close_are_classified() -> None:
    garbage = _answer(b"SSH-2.0-OpenSSH\r\n\r\n")
    short = _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", close=True)
    for handler, exc_type, kind in ((garbage, LegProtocolError, "protocol"), (short, ConnectionResetError, "closed")):
        server, url = await _raw_server(handler)
        pool = UpstreamPool(url)
        with pytest.raises(exc_type) as info:
            await asyncio.wait_for(pool.exchange("GET", "/", (), b"", KeepSink(10)), 5)
        assert error_kind(info.value) == kind
        pool.close()
        server.close()


async def test_close_delimited_body_completes_at_eof() -> None:
    legacy_style = _answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", close=True)
    server, url = await _raw_server(legacy_style)
    pool = UpstreamPool(url)
    sink = KeepSink(100)
    await asyncio.wait_for(pool.exchange("GET", "/", (), b"", sink), 5)
    assert bytes(sink.kept) == b"until the end" and not pool._idle  # never reused
    pool.close()
    server.close()


async def test_refused_connect_and_bad_url() -> None:
    server, url = await _raw_server(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    pool = UpstreamPool(url)
    with pytest.raises(OSError) as info:
        await pool.exchange("GET", "/", (), b"", KeepSink(10))
    assert error_kind(info.value) == "connect"
    with pytest.raises(ConfigError, match="ftp://x"):
        UpstreamPool("ftp://x")


async def test_interim_1xx_responses_are_skipped_and_never_desynchronize() -> None:
    """103 Early Hints, a pause, then the final answer: the exchange gets the final one, the next gets its own."""
    async def hints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in range(2):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
            await writer.drain()

    server, url = await _raw_server(hints)
    pool = UpstreamPool(url)
    for i in range(2):
        sink = KeepSink(10)
        await asyncio.wait_for(pool.exchange("GET", "/", (), b"", sink), 5)
        assert (sink.status, bytes(sink.kept)) == (200, str(i).encode())
    pool.close()
    server.close()


async def test_unasked_upgrade_and_extra_response_are_protocol_errors() -> None:
    upgrade = _answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    twice = _answer(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    for handler in (upgrade, twice):
        server, url = await _raw_server(handler)
        pool = UpstreamPool(url)
        sink = KeepSink(10)
        if handler is upgrade:
            with pytest.raises(LegProtocolError):
                await asyncio.wait_for(pool.exchange("GET", "/", (), b"", sink), 5)
            assert sink.status == 0, "nothing of the 101 may reach the sink"
        else:  # the first answer stands; the connection that carried a second one is never reused
            await asyncio.wait_for(pool.exchange("GET", "/", (), b"", sink), 5)
            assert bytes(sink.kept) == b"a"
            await asyncio.sleep(0.05)
            assert not any(c.usable() for c, _ in pool._idle)
        pool.close()
        server.close()


async def test_closed_pool_refuses_new_exchanges(upstream) -> None:
    url, seen = upstream
    pool = UpstreamPool(url)
    await pool.exchange("GET", "/a", (), b"", KeepSink(10))
    pool.close()
    with pytest.raises(ConnectionAbortedError):
        await pool.exchange("GET", "/b", (), b"", KeepSink(10))
    assert [s[1] for s in seen] == ["/a"]
