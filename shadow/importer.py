"""``parity import``: turn HAR files and mitmproxy flow files into traces (trace format v1, redacted).

Owns HAR parsing (pure stdlib: HAR is JSON, so it never needs mitmproxy) and the command. mitmproxy flow files
are read by ``shadow.mitm.read_flows``, imported lazily, only when a flow file is given: the ``mitm`` extra
stays optional. Every observation is redacted by ``recorder.format.TraceWriter`` before it is written; known
secrets come from the ``PARITY_LEGACY_TOKEN`` / ``PARITY_LEGACY_PASSWORD`` / ``PARITY_LEGACY_HOOK_TOKEN``
environment, and credential headers and keys are masked by position in any case.

HAR mapping: each entry becomes an HTTP exchange ``h<n>`` (``http-request`` then ``http-response``); an entry
with Chrome's ``_webSocketMessages`` becomes a WS connection ``c<n>`` (``ws-open``, then each message, ``send``
-> c2s, ``receive`` -> s2c, opcode 2 -> binary). Times are seconds from the first entry. Bad input raises
:class:`wire.errors.TraceFormatError` naming the file and the JSON path (``log.entries[3].request.url``).
May import: stdlib, ``wire``, ``recorder.format``; ``shadow.mitm`` lazily.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from recorder.format import TraceHeader, TraceWriter
from wire.errors import ConfigError, TraceFormatError
from wire.model import Direction, Kind, Leg, Observation, body_fields
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["configure", "import_file", "read_har", "run"]


def _ts(value: Any, where: str, path: str) -> float:
    if not isinstance(value, str):
        raise TraceFormatError(f"{where}: expected an ISO 8601 date-time string", path=path)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise TraceFormatError(f"{where}: not an ISO 8601 date-time: {value!r}", path=path) from None


def _headers(value: Any, where: str, path: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TraceFormatError(f"{where}: expected a list of {{name, value}}", path=path)
    out = []
    for i, h in enumerate(value):
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            raise TraceFormatError(f"{where}[{i}]: expected {{name, value}}", path=path)
        out.append((h["name"], str(h.get("value", ""))))
    return tuple(out)


def _body(text: Any, encoding: Any, where: str, path: str) -> dict[str, Any]:
    if text is None or text == "":
        return body_fields(b"")  # an empty body is recorded as "" like the live paths do
    if not isinstance(text, str):
        raise TraceFormatError(f"{where}.text: expected a string", path=path)
    if encoding == "base64":
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise TraceFormatError(f"{where}.text: invalid base64", path=path) from None
        return body_fields(raw)
    return {"data": text}


def read_har(path: str | Path) -> Iterator[Observation]:
    """Observations of a HAR 1.2 file, in entry order. Raises :class:`TraceFormatError` on bad input."""
    p = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceFormatError(f"not a HAR file (not JSON: {exc})", path=p) from exc
    entries = doc.get("log", {}).get("entries") if isinstance(doc, dict) and isinstance(doc.get("log"), dict) \
        else None
    if not isinstance(entries, list):
        raise TraceFormatError("log.entries: missing or not a list (not a HAR file)", path=p)
    t0: float | None = None
    for n, entry in enumerate(entries, start=1):
        where = f"log.entries[{n - 1}]"
        if not isinstance(entry, dict):
            raise TraceFormatError(f"{where}: expected an object", path=p)
        req, resp = entry.get("request"), entry.get("response")
        if not isinstance(req, dict) or not isinstance(resp, dict):
            raise TraceFormatError(f"{where}: request and response objects are required", path=p)
        start = _ts(entry.get("startedDateTime"), f"{where}.startedDateTime", p)
        t0 = start if t0 is None else t0
        t = start - t0
        url = req.get("url")
        if not isinstance(url, str) or not url:
            raise TraceFormatError(f"{where}.request.url: missing", path=p)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        method = str(req.get("method") or "GET").upper()
        headers = _headers(req.get("headers"), f"{where}.request.headers", p)
        messages = entry.get("_webSocketMessages")
        if isinstance(messages, list) or resp.get("status") == 101:
            conn = f"c{n}"
            yield Observation(t=t, conn=conn, leg=Leg.LEGACY, dir=Direction.C2S, kind=Kind.WS_OPEN, path=target,
                              headers=headers)
            for i, m in enumerate(messages or []):
                mw = f"{where}._webSocketMessages[{i}]"
                if not isinstance(m, dict) or m.get("type") not in ("send", "receive"):
                    raise TraceFormatError(f"{mw}: expected {{type: send|receive, time, opcode, data}}", path=p)
                mt = m.get("time")
                at = float(mt) - t0 if isinstance(mt, int | float) and not isinstance(mt, bool) else t
                d = Direction.C2S if m["type"] == "send" else Direction.S2C
                if m.get("opcode") == 2:
                    fields = _body(m.get("data"), "base64", mw, p)
                    raw = fields.get("data_b64") if "data_b64" in fields else str(fields.get("data", "")).encode()
                    yield Observation(t=at, conn=conn, leg=Leg.LEGACY, dir=d, kind=Kind.WS_BINARY, data_b64=raw)
                else:
                    yield Observation(t=at, conn=conn, leg=Leg.LEGACY, dir=d, kind=Kind.WS_TEXT,
                                      data=str(m.get("data", "")))
            continue
        conn = f"h{n}"
        post: dict[str, Any] = req["postData"] if isinstance(req.get("postData"), dict) else {}
        yield Observation(t=t, conn=conn, leg=Leg.LEGACY, dir=Direction.C2S, kind=Kind.HTTP_REQUEST, method=method,
                          path=target, headers=headers,
                          **_body(post.get("text"), post.get("encoding"), f"{where}.request.postData", p))
        status = resp.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or status < 0:
            raise TraceFormatError(f"{where}.response.status: expected an integer", path=p)
        if status == 0:  # the browser got no response (HAR writes 0)
            yield Observation(t=t, conn=conn, leg=Leg.LEGACY, dir=Direction.S2C, kind=Kind.ERROR,
                              data="no response recorded (status 0)")
            continue
        content: dict[str, Any] = resp["content"] if isinstance(resp.get("content"), dict) else {}
        elapsed = entry.get("time")
        rt = t + float(elapsed) / 1000.0 if isinstance(elapsed, int | float) and elapsed >= 0 else t
        yield Observation(t=rt, conn=conn, leg=Leg.LEGACY, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE, status=status,
                          headers=_headers(resp.get("headers"), f"{where}.response.headers", p),
                          **_body(content.get("text"), content.get("encoding"), f"{where}.response.content", p))


def _detect(path: Path) -> str:
    if path.suffix.lower() == ".har":
        return "har"
    with path.open("rb") as fh:
        head = fh.read(64).lstrip()
    return "har" if head.startswith(b"{") else "flows"


def import_file(path: str | Path, out: str | Path, *, fmt: str = "auto", redactor: Redactor | None = None) -> int:
    """Write one trace for ``path`` at ``out``; returns the number of observations."""
    src = Path(path)
    if not src.exists():
        raise ConfigError(f"{src}: no such file")
    kind = _detect(src) if fmt == "auto" else fmt
    if kind == "har":
        observations: Iterator[Observation] = read_har(src)
    else:
        try:
            from shadow.mitm import read_flows
        except ImportError as exc:
            raise ConfigError(f"{src}: reading mitmproxy flow files needs the 'mitm' extra "
                              f"(scripts/setup-extras.sh): {exc}") from exc
        observations = read_flows(src)
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".partial")
    with tmp.open("w", encoding="utf-8") as fh:
        writer = TraceWriter(fh, TraceHeader(target="", recorded_at="", tool="parity import",
                                             scenario=src.stem, meta={"imported_from": src.name, "format": kind}),
                             redactor=redactor or Redactor())
        try:
            for obs in sorted(observations, key=lambda o: o.t):
                writer.write(obs)
        except Exception:
            writer.close(complete=False, error="import failed")
            raise
        writer.close(complete=True)
        count = writer.count
    os.replace(tmp, dest)  # a failed import never leaves a half-written trace under the final name
    return count


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="HAR (.har) or mitmproxy flow files")
    parser.add_argument("--out", default="runs/imported", metavar="DIR", help="directory for the traces")
    parser.add_argument("--format", choices=["auto", "har", "flows"], default="auto")


def run(args: argparse.Namespace) -> int:
    secrets = {name: os.environ.get(var, "") for name, var in (
        ("GW_TOKEN", "PARITY_LEGACY_TOKEN"), ("GW_PASSWORD", "PARITY_LEGACY_PASSWORD"),
        ("HOOK_TOKEN", "PARITY_LEGACY_HOOK_TOKEN"))}
    redactor = Redactor({k: v for k, v in secrets.items() if v})
    failed = 0
    for f in args.files:
        dest = Path(args.out) / (Path(f).stem + ".jsonl")
        try:
            n = import_file(f, dest, fmt=args.format, redactor=redactor)
        except (TraceFormatError, ConfigError) as exc:
            print(f"parity import: {exc}")
            failed += 1
            continue
        print(f"{f} -> {dest} ({n} observations)")
    return 1 if failed else 0
