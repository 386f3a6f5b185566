"""A strict HTTP/1.1 request-head reader for the proxy's fast path: bytes in, a :class:`RequestHead` or ``None``.

Sans-I/O and stdlib only, like the rest of ``wire``. It does not try to be a full HTTP parser: it recognises the
plain shape nearly every client sends (``METHOD /target HTTP/1.1``, token header names, visible-ASCII values,
at most one ``Content-Length``, no ``Transfer-Encoding``/``Upgrade``/``Expect``) and answers ``None`` for
everything else -- WebSocket upgrades, chunked or ``Expect`` request bodies, HTTP/1.0, ``HEAD`` (its response
has a length but no body), non-ASCII, obsolete line folding, malformed lines. ``None`` is not an error: the
caller hands such a connection to a complete HTTP server (aiohttp's) with the bytes unread, so the client gets
exactly the answer that server gives. Being strict here can only cost speed, never correctness.

:func:`parse_upgrade_head` recognises the plain WebSocket opening handshake the same way, for the proxy's
byte relay (``shadow.wsrelay``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HOP_BY_HOP", "MAX_HEAD", "RequestHead", "head_end", "parse_request_head", "parse_upgrade_head"]

#: Per-hop headers (RFC 9110 §7.6.1): a proxy never passes them on (lower case).
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "trailers", "transfer-encoding", "upgrade"})

#: Longest head the fast path reads; a longer one goes to the full server (which applies its own limits).
MAX_HEAD = 32 * 1024

#: Methods the fast path forwards (HEAD is excluded: see the module doc).
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REQUEST_LINE = re.compile(rb"([A-Z]+) (/[\x21-\x7e]*) HTTP/1\.1")
_HEADER = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([\x20-\x7e]*?)[ \t]*")
#: Header names (lower case) that take a request off the fast path.
_REFUSED = frozenset({"transfer-encoding", "upgrade", "expect"})


@dataclass(frozen=True, slots=True)
class RequestHead:
    """One parsed request head.

    Attributes:
        method, target: from the request line (``target`` is the raw path with its query).
        headers: (name, value) pairs in arrival order, names as sent.
        content_length: the body length (0 when absent).
        keep_alive: False when the client sent ``Connection: close``.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    content_length: int
    keep_alive: bool

    def get(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (case-insensitive)."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default


def head_end(buf: bytes | bytearray) -> int:
    """Index just past the blank line ending the head in ``buf``, or -1 when it has not all arrived."""
    i = buf.find(b"\r\n\r\n")
    return -1 if i < 0 else i + 4


def _split(head: bytes) -> tuple[str, str, list[tuple[str, str]]] | None:
    """Method, target and headers of a plain head (see the module doc), or ``None``."""
    lines = head[:-4].split(b"\r\n") if head.endswith(b"\r\n\r\n") else None
    if not lines or len(head) > MAX_HEAD:
        return None
    m = _REQUEST_LINE.fullmatch(lines[0])
    if m is None:
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        h = _HEADER.fullmatch(line)
        if h is None:
            return None
        headers.append((h[1].decode(), h[2].decode()))
    return m[1].decode(), m[2].decode(), headers


def _tokens(value: str) -> set[str]:
    return {t.strip().lower() for t in value.split(",")}


def parse_request_head(head: bytes) -> RequestHead | None:
    """Parse ``head`` (request line and headers, through the blank line) or answer ``None`` (not fast-path)."""
    split = _split(head)
    if split is None or split[0] not in _METHODS:
        return None
    method, target, headers = split
    length: int | None = None
    keep_alive = True
    for name, value in headers:
        low = name.lower()
        if low in _REFUSED:
            return None
        if low == "content-length":
            if length is not None or not value.isdigit() or len(value) > 15:
                return None
            length = int(value)
        elif low == "connection":
            tokens = _tokens(value)
            if "upgrade" in tokens:
                return None
            keep_alive = "close" not in tokens
    return RequestHead(method, target, tuple(headers), length or 0, keep_alive)


def parse_upgrade_head(head: bytes) -> RequestHead | None:
    """Parse a plain WebSocket opening handshake (RFC 6455 §4.1: ``GET``, ``Upgrade: websocket``, ``Connection:
    upgrade``, version 13, one key, no body) or answer ``None``, leaving it to the full server."""
    split = _split(head)
    if split is None or split[0] != "GET":
        return None
    _, target, headers = split
    seen: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in ("content-length", "transfer-encoding", "expect") or (low in seen and low.startswith("sec-")):
            return None
        seen[low] = value
    if (seen.get("upgrade", "").lower() != "websocket" or "upgrade" not in _tokens(seen.get("connection", ""))
            or seen.get("sec-websocket-version") != "13" or not seen.get("sec-websocket-key")):
        return None
    return RequestHead("GET", target, tuple(headers), 0, True)
