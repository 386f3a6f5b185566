"""The HTTP fast path: byte-faithful forwarding, hand-over to the full server, flow control, a vanishing client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from _timing import S, async_wait_until
from aiohttp import web
from shadow_fakes import HTTP_SCRIPT, Exposed, FakeGateway, http_transcript, serve_handler

PLAIN_SCRIPT = tuple(row for row in HTTP_SCRIPT if row[0] != "HEAD")  # HEAD goes to the full server


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "aiohttp-only"])
async def test_transcript_equals_direct_on_either_path(fast: bool, fake_legacy: FakeGateway,
                                                       fake_candidate: FakeGateway, make_proxy) -> None:
    direct = await http_transcript(fake_legacy.url, PLAIN_SCRIPT)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={"fast_http": fast})
    assert await http_transcript(proxy.url, PLAIN_SCRIPT) == direct
    stats = proxy.health()["fast_http"]
    if fast:
        assert stats == {"requests": len(PLAIN_SCRIPT), "handed_off": 0, "ws_relayed": 0}, "every plain request took the fast path"
    else:
        assert stats is None
    # and the mirror saw each of them (the pipeline is fed the same way on both paths)
    await async_wait_until(lambda: len(fake_candidate.http_requests) >= 6, 20 * S, what="mirrored requests")


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status, *lines = head[:-4].split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip() for k, _, v in (ln.partition(b":") for ln in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readexactly(2)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_pipelined_requests_then_an_upgrade_on_the_same_connection(fake_legacy: FakeGateway,
                                                                         make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = [await _read_response(reader) for _ in range(3)]
    assert [a[0] for a in answers] == [b"HTTP/1.1 200 OK"] * 3
    assert answers[0][2] == b'{"ok":true,"status":"live"}'
    assert b'"body": "hello"' in answers[1][2] and answers[2][2] == b"part-0;part-1;part-2;part-3;part-4;"
    assert [r[1] for r in fake_legacy.http_requests] == ["/healthz", "/echo", "/chunked"]  # in order
    # the same connection now upgrades: the byte relay takes it over; the legacy's 101 and challenge come through
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
    assert head.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    frame = await asyncio.wait_for(reader.read(4096), 10 * S)
    assert b"connect.challenge" in frame
    assert proxy.health()["fast_http"] == {"requests": 3, "handed_off": 0, "ws_relayed": 1}
    writer.close()


@pytest.mark.parametrize("request_bytes", [
    b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.0\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Caf\xc3\xa9: 1\r\n\r\n",
], ids=["head", "http10", "chunked-body", "odd-header"])
async def test_requests_off_the_fast_path_get_the_direct_answer(request_bytes: bytes, fake_legacy: FakeGateway,
                                                                make_proxy) -> None:
    async def ask(port: int) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10 * S)
        status, _, body = (head.split(b"\r\n", 1)[0], None, b"")
        if not request_bytes.startswith(b"HEAD"):
            body = await asyncio.wait_for(reader.read(65536), 10 * S)
        writer.close()
        return status, body[-40:]

    direct = await ask(int(fake_legacy.url.rsplit(":", 1)[1]))
    proxy = await make_proxy(fake_legacy.url)
    assert await ask(proxy.port) == direct
    assert proxy.health()["fast_http"]["handed_off"] == 1


@pytest.fixture
async def streamer() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An upstream streaming a 64 MiB body with a Content-Length, counting what it managed to hand to its socket."""
    state = {"written": 0, "aborted": 0}
    size, chunk = 64 * 1024 * 1024, b"x" * 65536

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/healthz":
            return web.Response(text="ok")
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(request)
        try:
            for _ in range(size // len(chunk)):
                await resp.write(chunk)
                state["written"] += len(chunk)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            state["aborted"] += 1
            raise
        return resp

    runner, url = await serve_handler(handle)
    yield url, state
    await runner.cleanup()


async def test_a_slow_client_holds_back_the_upstream(streamer, make_proxy) -> None:
    url, state = streamer
    proxy = await make_proxy(url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, limit=1024 * 1024)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await async_wait_until(lambda: state["written"] > 0, 10 * S, what="the stream to start")
    await asyncio.sleep(1.5)  # the client reads nothing
    stalled = state["written"]
    assert stalled < 24 * 1024 * 1024, f"the proxy read {stalled} bytes ahead of a client that reads nothing"
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Content-Length: 67108864" in head
    got = 0
    while got < 64 * 1024 * 1024:
        got += len(await asyncio.wait_for(reader.read(1 << 20), 20 * S))
    assert got == 64 * 1024 * 1024 and state["written"] == got
    writer.close()


async def test_a_client_leaving_mid_stream_releases_the_upstream(streamer, make_proxy) -> None:
    url, state = streamer
    proxy = await make_proxy(url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()
    await async_wait_until(lambda: state["aborted"] == 1, 20 * S, what="the upstream stream to be cut")
    assert state["written"] < 64 * 1024 * 1024
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/healthz") as r:  # still serving
        assert r.status == 200 and await r.text() == "ok"
    assert Exposed(proxy).total("parity_requests_total", outcome="error") == 1  # counted, not a legacy fault
    assert Exposed(proxy).total("parity_legacy_errors_total") == 0


async def test_bytes_sent_ahead_during_a_slow_answer_are_bounded(fake_legacy: FakeGateway, make_proxy) -> None:
    """A client keeps pipelining while its first request waits on a slow legacy: the proxy stops reading it."""
    from shadow.fastpath import PIPELINE_LIMIT

    fake_legacy.fault, fake_legacy.slow_seconds = "slow", 1.0
    proxy = await make_proxy(fake_legacy.url)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    junk = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000  # 70 KB a write
    for _ in range(100):  # 7 MB offered; the socket buffers take a little, the proxy at most its limit
        writer.write(junk)
        await asyncio.sleep(0)
    await asyncio.sleep(0.3)
    buffered = max((len(c._buf) for c in proxy._fast.clients), default=0)
    assert 0 < buffered < PIPELINE_LIMIT + 256 * 1024
    fake_legacy.fault = None  # now it answers quickly: everything sent ahead is still served, in order
    n = 0
    while n < 3 + 200:
        status, _, body = await asyncio.wait_for(_read_response(reader), 10 * S)
        assert status == b"HTTP/1.1 200 OK" and body == b'{"ok":true,"status":"live"}'
        n += 1
    writer.transport.abort()
