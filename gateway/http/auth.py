"""Bearer auth for ``/tools/invoke`` and ``/v1/*`` on top of H4a's ``Authenticator`` (reference §3.6/§3.7).

Owns ``require_bearer(request) -> Response | None`` and ``authorized_json_post`` (the method, bearer and JSON-body
checks that ``/tools/invoke`` and ``/v1/*`` share, in the legacy's order). ``require_bearer``: ``None`` when the caller may proceed, else the legacy's answer
(429 JSON with ``Retry-After`` when the shared-secret limiter has locked the client, 401 JSON
``{"error":{"message":"Unauthorized","type":"unauthorized"}}`` without ``WWW-Authenticate``). A wrong secret waits
the legacy's delay first (it does not block other requests). May import aiohttp and ``gateway.*``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.http import headers as hh
from gateway.http.bodies import BodyResult, read_json_body

logger = logging.getLogger(__name__)


async def require_bearer(request: web.Request) -> web.Response | None:
    from gateway.app import AUTH_KEY

    auth = request.app[AUTH_KEY]
    result = auth.check_http_bearer(request)
    if result.ok:
        return None
    if result.rate_limited:
        return hh.rate_limited(result.retry_after_ms)
    if result.reason in ("token_mismatch", "password_mismatch"):
        await auth.failure_delay()
    return hh.unauthorized()


async def authorized_json_post(request: web.Request, max_bytes: int) -> web.StreamResponse | BodyResult:
    """POST only (405), then the bearer (401/429), then a JSON body within ``max_bytes`` (413/400).

    Returns the legacy's rejection, or the parsed body (always ``ok``).
    """
    if request.method != "POST":
        return hh.method_not_allowed("POST")
    denied = await require_bearer(request)
    if denied is not None:
        return denied
    body = await read_json_body(request, max_bytes)
    if not body.ok:
        if body.too_large:
            return hh.rejection(413, {"error": {"message": "Payload too large", "type": "invalid_request_error"}})
        return hh.invalid_request(body.error)
    return body
