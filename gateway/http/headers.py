"""The legacy's common response headers, plain-text/JSON answer helpers and the Control-UI SPA fallback.

Owns ``install_security_headers(app)`` (an ``on_response_prepare`` hook: every response gets the baseline headers of
reference §4.1, like the legacy's ``setDefaultSecurityHeaders`` which runs before any handler), the small answer
builders every route uses (``text``, ``json_response``, ``not_found``, ``method_not_allowed``, ``unauthorized``,
``rate_limited``), and ``control_ui_response`` (the 200 HTML page served for unknown GET/HEAD paths that accept
HTML). Known gap: our page is a small stand-in, not the legacy's 18,429-byte bundle, so the body and the CSP's
script hashes differ. May import aiohttp and the standard library only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

API_PERMISSIONS_POLICY = "camera=(), microphone=(self), geolocation=()"
HTML_PERMISSIONS_POLICY = "camera=(self), microphone=*, geolocation=*, clipboard-write=*"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
SSE_TYPE = "text/event-stream; charset=utf-8"

_CONTROL_UI_HTML = """<!doctype html>
<html data-openclaw-control-ui-base-path="" lang="en">
<head><meta charset="utf-8"><title>OpenClaw Control</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main id="app"><h1>OpenClaw Control</h1>
<p>This gateway is served by pyclaw. The Control UI bundle is not shipped with it.</p></main></body>
</html>
"""


def _baseline(request: web.Request, response: web.StreamResponse) -> None:
    h = response.headers
    # Node's http server sends no Server header; aiohttp adds its own before this hook runs (3.14), so drop it.
    h.popall("Server", None)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "no-referrer")
    h.setdefault("Permissions-Policy", API_PERMISSIONS_POLICY)
    # Node's http server always announces keep-alive with a 5 s timeout (reference §4.1).
    if "Connection" not in h:
        h["Connection"] = "keep-alive"
        h["Keep-Alive"] = "timeout=5"
    sts = request.app.get(STS_KEY)
    if sts:
        h.setdefault("Strict-Transport-Security", sts)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if response.status == 101:  # a WS upgrade; the legacy adds nothing there
        return
    _baseline(request, response)


STS_KEY = web.AppKey("gateway_http_sts", str)


def install_security_headers(app: web.Application, strict_transport_security: str | None = None) -> None:
    """Add the baseline headers to every response this app prepares (including aiohttp's own errors)."""
    if strict_transport_security and strict_transport_security.strip():
        app[STS_KEY] = strict_transport_security.strip()
    app.on_response_prepare.append(_on_prepare)


def text(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    resp = web.Response(status=status, body=body.encode("utf-8"), headers=headers)
    resp.headers["Content-Type"] = TEXT_TYPE
    return resp


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    """JSON the way ``JSON.stringify`` writes it (compact, non-ASCII kept)."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    resp = web.Response(status=status, body=body.encode("utf-8"), headers=headers)
    resp.headers["Content-Type"] = JSON_TYPE
    return resp


def rejection(status: int, payload: Any) -> web.Response:
    """The legacy's ``sendHttpRequestRejection`` (413/408 while reading a body): JSON, ``Connection: close``."""
    resp = json_response(status, payload, {"Connection": "close"})
    resp.force_close()
    return resp


def not_found() -> web.Response:
    return text(404, "Not Found")


def method_not_allowed(allow: str = "POST") -> web.Response:
    return text(405, "Method Not Allowed", {"Allow": allow})


def unauthorized() -> web.Response:
    return json_response(401, {"error": {"message": "Unauthorized", "type": "unauthorized"}})


def rate_limited(retry_after_ms: int | None) -> web.Response:
    headers = {"Retry-After": str(-(-retry_after_ms // 1000))} if retry_after_ms and retry_after_ms > 0 else None
    return json_response(
        429,
        {"error": {"message": "Too many failed authentication attempts. Please try again later.", "type": "rate_limited"}},
        headers,
    )


def invalid_request(message: str) -> web.Response:
    return json_response(400, {"error": {"message": message, "type": "invalid_request_error"}})


def _csp(host_header: str | None = None) -> str:
    """The legacy's ``buildControlUiCspHeader``: plain, or (for the served index page) with wasm and the host."""
    connect = ["'self'", "ws:", "wss:", "data:", "https://api.openai.com", "https://tweakcn.com"]
    script = "script-src 'self'"
    if host_header is not None:
        # The legacy also lists the sha256 of the bundle's inline scripts here; our page has none (known gap).
        script += " 'wasm-unsafe-eval'"
        host = host_header.rsplit(":", 1)[0] if not host_header.startswith("[") else host_header.split("]")[0] + "]"
        if host and all(c.isalnum() or c in ".-[]:" for c in host):
            connect += [f"http://{host}:*", f"https://{host}:*"]
    return "; ".join([
        "default-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'",
        "frame-src 'self' http: https:", script,
        "style-src 'self' 'unsafe-inline' https://fonts.googleapis.com", "img-src 'self' data: blob: https:",
        "media-src 'self' data: blob:", "font-src 'self' https://fonts.gstatic.com", "worker-src 'self'",
        f"connect-src {' '.join(connect)}",
    ])


def _control_ui_headers(resp: web.StreamResponse, csp: str) -> None:
    h = resp.headers
    h["Permissions-Policy"] = HTML_PERMISSIONS_POLICY
    h["X-Frame-Options"] = "DENY"
    h["Content-Security-Policy"] = csp


def accepts_html(accept: str | None) -> bool:
    """The legacy's ``acceptsControlUiHtmlResponse``: no Accept, or one that admits text/html or xhtml."""
    if accept is None or not accept.strip():
        return True
    best: tuple[int, float] | None = None
    xhtml = False
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for f in fields[1:]:
            if f.lower().startswith("q="):
                try:
                    q = float(f[2:])
                except ValueError:
                    q = 0.0
        if media == "application/xhtml+xml" and q > 0:
            xhtml = True
        spec = {"text/html": 2, "text/*": 1, "*/*": 0}.get(media)
        if spec is None:
            continue
        if best is None or spec > best[0]:
            best = (spec, q)
        elif spec == best[0]:
            best = (spec, max(q, best[1]))
    return xhtml or (best is not None and best[1] > 0)


def control_ui_response(request: web.Request) -> web.Response:
    """The SPA fallback page with the legacy's HTML headers (reference §4.1/§4.2). HEAD gets the plain CSP."""
    resp = web.Response(status=200, body=_CONTROL_UI_HTML.encode("utf-8"))
    head = request.method == "HEAD"
    _control_ui_headers(resp, _csp(None if head else request.headers.get("Host", "")))
    resp.headers["Content-Type"] = HTML_TYPE
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Vary"] = "Accept-Encoding"
    return resp


def control_ui_not_found() -> web.Response:
    """404 for a Control-UI path whose Accept admits no HTML: plain text, but with the Control UI's headers."""
    resp = not_found()
    _control_ui_headers(resp, _csp())
    return resp


def is_control_ui_path(path: str, method: str) -> bool:
    """Paths the legacy's Control UI would claim with an empty base path (``classifyControlUiRequest``)."""
    if method not in ("GET", "HEAD"):
        return False
    for prefix in ("/ui", "/api", "/j", "/v1", "/plugins"):
        if path == prefix or path.startswith(prefix + "/"):
            return False
    return True
