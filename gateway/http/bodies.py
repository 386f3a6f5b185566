"""Request-body reading for the HTTP surface: byte limits and the legacy's JSON error texts.

Owns ``read_json_body`` (the legacy's ``readJsonBodyWithLimit``: trim, empty -> ``{}``, limit -> "payload too
large") and ``v8_json_error`` (Python ``json`` errors rephrased the way V8's ``JSON.parse`` words them, so the
common cases match byte for byte; the rest keep the shape and the differ compares them by error class, reference
§8). May import aiohttp and the standard library only.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

PAYLOAD_TOO_LARGE = "payload too large"
#: JavaScript's String.prototype.trim() whitespace (the subset that matters for JSON bodies).
_JS_WS = " \t\n\r\v\f\u00a0\ufeff\u2028\u2029"


@dataclass(frozen=True, slots=True)
class BodyResult:
    """``ok`` with ``value``, or not ok with the legacy's ``error`` text."""

    ok: bool
    value: Any = None
    error: str = ""

    @property
    def too_large(self) -> bool:
        return not self.ok and self.error == PAYLOAD_TOO_LARGE


def _position(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"at position {pos} (line {line} column {col})"


def _unexpected_token(text: str, pos: int) -> str:
    """V8's ``Unexpected token`` text with its source context (10 characters either side on long inputs)."""
    ch, n, ctx = text[pos], len(text), 10
    if n <= 2 * ctx + 1:
        return f"Unexpected token '{ch}', \"{text}\" is not valid JSON"
    if pos < ctx:
        return f"Unexpected token '{ch}', \"{text[:pos + ctx]}\"... is not valid JSON"
    if pos < n - ctx:
        return f"Unexpected token '{ch}', ...\"{text[pos - ctx:pos + ctx]}\"... is not valid JSON"
    return f"Unexpected token '{ch}', ...\"{text[pos - ctx:]}\" is not valid JSON"


def _value_error(text: str, pos: int) -> str:
    """Python's "Expecting value" at ``pos``, phrased like V8 (which scans literals and numbers first)."""
    if pos >= len(text):
        return "Unexpected end of JSON input"
    ch = text[pos]
    for literal in ("true", "false", "null"):
        if ch == literal[0]:
            i = 0
            while i < len(literal) and pos + i < len(text) and text[pos + i] == literal[i]:
                i += 1
            if pos + i >= len(text):
                return "Unexpected end of JSON input"
            return _unexpected_token(text, pos + i)
    if ch == "-":
        if pos + 1 >= len(text) or not text[pos + 1].isdigit():
            return f"No number after minus sign in JSON {_position(text, pos + 1)}"
    return _unexpected_token(text, pos)


def _number_error(text: str, pos: int) -> str | None:
    """V8 number texts where Python only sees a missing delimiter after a number prefix."""
    if pos >= len(text) or pos == 0:
        return None
    ch, prev = text[pos], text[pos - 1]
    if ch.isdigit() and prev == "0" and (pos < 2 or not text[pos - 2].isdigit()):
        return f"Unexpected number in JSON {_position(text, pos)}"
    if ch == "." and prev.isdigit() and (pos + 1 >= len(text) or not text[pos + 1].isdigit()):
        return f"Unterminated fractional number in JSON {_position(text, pos + 1)}"
    if ch in "eE" and prev.isdigit():
        j = pos + 1 + (1 if pos + 1 < len(text) and text[pos + 1] in "+-" else 0)
        if j >= len(text) or not text[j].isdigit():
            return f"Exponent part is missing a number in JSON {_position(text, j)}"
    return None


def v8_json_error(text: str, exc: json.JSONDecodeError) -> str:
    """Phrase ``exc`` (raised while parsing the trimmed body ``text``) like V8's ``JSON.parse`` message."""
    msg, pos = exc.msg, exc.pos
    at = _position(text, pos)
    if msg.startswith("Expecting property name enclosed in double quotes"):
        before = text[:pos].rstrip(_JS_WS)
        if before.endswith(","):
            return f"Expected double-quoted property name in JSON {at}"
        return f"Expected property name or '}}' in JSON {at}"
    if msg.startswith("Expecting ':' delimiter"):
        return f"Expected ':' after property name in JSON {at}"
    if msg.startswith("Expecting ',' delimiter"):
        number = _number_error(text, pos)
        if number:
            return number
        if _innermost_open(text, pos) == "[":
            return f"Expected ',' or ']' after array element in JSON {at}"
        return f"Expected ',' or '}}' after property value in JSON {at}"
    if msg.startswith("Extra data"):
        number = _number_error(text, pos)
        if number:
            return number
        return f"Unexpected non-whitespace character after JSON {at}"
    if msg.startswith("Unterminated string"):
        return f"Unterminated string in JSON {_position(text, len(text))}"
    if msg.startswith("Invalid control character"):
        return f"Bad control character in string literal in JSON {at}"
    if msg.startswith("Invalid \\uXXXX escape"):
        i = pos + 1  # Python points at the "u"; V8 at the first non-hex digit
        while i < len(text) and i < pos + 5 and text[i] in "0123456789abcdefABCDEF":
            i += 1
        return f"Bad Unicode escape in JSON {_position(text, i)}"
    if msg.startswith("Invalid \\escape"):
        return f"Bad escaped character in JSON {_position(text, pos + 1)}"
    return _value_error(text, pos)


def _innermost_open(text: str, pos: int) -> str:
    """The bracket that encloses ``pos`` (ignores brackets inside strings)."""
    stack: list[str] = []
    in_str = esc = False
    for c in text[:pos]:
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            stack.append(c)
        elif c in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def parse_json_text(raw: bytes) -> BodyResult:
    """Decode like Node (UTF-8 with replacement), trim, empty -> ``{}``, then parse."""
    text = raw.decode("utf-8", errors="replace").strip(_JS_WS)
    if not text:
        return BodyResult(True, {})
    try:
        return BodyResult(True, json.loads(text))
    except json.JSONDecodeError as exc:
        return BodyResult(False, error=v8_json_error(text, exc))
    except RecursionError:
        # V8 parses deep nesting fine; Python's recursive decoder cannot. Keep the answer a 400 with a clear text.
        return BodyResult(False, error="JSON nesting too deep")


async def read_body(request: web.Request, max_bytes: int) -> bytes | None:
    """Read at most ``max_bytes``; ``None`` when the body is larger (checked on Content-Length and on the stream)."""
    length = request.content_length
    if length is not None and length > max_bytes:
        return None
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(65536):
        total += len(chunk)
        if total > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: web.Request, max_bytes: int) -> BodyResult:
    raw = await read_body(request, max_bytes)
    if raw is None:
        return BodyResult(False, error=PAYLOAD_TOO_LARGE)
    return parse_json_text(raw)
