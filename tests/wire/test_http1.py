"""The fast path's request-head reader: plain heads parse exactly; anything else is refused, never misread."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.http1 import MAX_HEAD, RequestHead, head_end, parse_request_head, parse_upgrade_head


def test_plain_head_parses_with_headers_in_order() -> None:
    head = (b"POST /tools/invoke?x=1 HTTP/1.1\r\nHost: gw:18789\r\nAuthorization: Bearer t\r\n"
            b"Content-Length: 12\r\nX-Empty:\r\nConnection: keep-alive\r\n\r\n")
    parsed = parse_request_head(head)
    assert parsed == RequestHead("POST", "/tools/invoke?x=1", (
        ("Host", "gw:18789"), ("Authorization", "Bearer t"), ("Content-Length", "12"), ("X-Empty", ""),
        ("Connection", "keep-alive")), 12, True)
    assert parsed.get("authorization") == "Bearer t" and parsed.get("missing", "d") == "d"


def test_connection_close_and_default_length() -> None:
    parsed = parse_request_head(b"GET /healthz HTTP/1.1\r\nConnection: Close\r\n\r\n")
    assert parsed is not None and not parsed.keep_alive and parsed.content_length == 0


def test_value_whitespace_is_trimmed_like_llhttp() -> None:
    parsed = parse_request_head(b"GET / HTTP/1.1\r\nX-A: \t spaced value \t\r\n\r\n")
    assert parsed is not None and parsed.headers == (("X-A", "spaced value"),)


@pytest.mark.parametrize("head", [
    b"GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",  # WebSocket: the full server
    b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",  # chunked request body
    b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",  # duplicate length
    b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n",
    b"HEAD / HTTP/1.1\r\n\r\n",  # a response with a length and no body
    b"GET / HTTP/1.0\r\n\r\n",
    b"CONNECT gw:443 HTTP/1.1\r\n\r\n",
    b"GET http://gw/ HTTP/1.1\r\n\r\n",  # absolute form
    b"get / HTTP/1.1\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-A: x\r\n folded\r\n\r\n",  # obsolete line folding
    b"GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n",  # non-ASCII value
    b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\r\n\r\n",  # bare LF
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\n",  # not a whole head
])
def test_anything_not_plain_is_refused(head: bytes) -> None:
    assert parse_request_head(head) is None


def test_oversized_head_is_refused() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n"
    assert parse_request_head(head) is None


def test_head_end() -> None:
    assert head_end(b"GET / HTTP/1.1\r\nA: b\r\n") == -1
    buf = b"GET / HTTP/1.1\r\n\r\nbody"
    assert buf[head_end(buf):] == b"body"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    head = data + b"\r\n\r\n"
    parsed = parse_request_head(head)
    if parsed is not None:  # whatever is accepted is the plain shape, and re-serializes to the same head
        lines = [f"{parsed.method} {parsed.target} HTTP/1.1"] + [f"{k}: {v}" for k, v in parsed.headers]
        assert parse_request_head(("\r\n".join(lines) + "\r\n\r\n").encode()) == parsed


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True),
                          st.from_regex(r"[!-~]([ -~]{0,30}[!-~])?", fullmatch=True)), max_size=8))
def test_generated_plain_heads_round_trip(headers: list[tuple[str, str]]) -> None:
    headers = [(k, v) for k, v in headers if k.lower() not in
               {"transfer-encoding", "upgrade", "expect", "content-length", "connection"}]
    raw = "GET /x HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    parsed = parse_request_head(raw.encode())
    assert parsed is not None and list(parsed.headers) == headers


UPGRADE = (b"GET /ws?x=1 HTTP/1.1\r\nHost: gw\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Protocol: a, b\r\n\r\n")


def test_plain_upgrade_parses_and_is_not_a_plain_request() -> None:
    assert parse_request_head(UPGRADE) is None  # the HTTP fast path never forwards an upgrade as a request
    head = parse_upgrade_head(UPGRADE)
    assert head is not None and head.method == "GET" and head.target == "/ws?x=1"
    assert head.get("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ==" and head.get("Sec-WebSocket-Protocol") == "a, b"
    assert [k for k, _ in head.headers][:3] == ["Host", "Upgrade", "Connection"]  # every header, in order


@pytest.mark.parametrize(("old", "new"), [
    (b"GET /ws", b"POST /ws"),
    (b"Upgrade: WebSocket", b"Upgrade: h2c"),
    (b"keep-alive, Upgrade", b"keep-alive"),
    (b"Version: 13", b"Version: 8"),
    (b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""),
    (b"Host: gw\r\n", b"Host: gw\r\nContent-Length: 3\r\n"),
    (b"Host: gw\r\n", b"Host: gw\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),  # two keys
    (b"HTTP/1.1", b"HTTP/1.0"),
], ids=["post", "not-websocket", "no-connection-upgrade", "old-version", "no-key", "body", "two-keys", "http10"])
def test_anything_but_a_plain_upgrade_is_left_to_the_full_server(old: bytes, new: bytes) -> None:
    assert old in UPGRADE
    assert parse_upgrade_head(UPGRADE.replace(old, new, 1)) is None
