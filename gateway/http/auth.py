"""Bearer auth for ``/tools/invoke`` and ``/v1/*`` on top of H4a's ``Authenticator`` (reference §3.6/§3.7).

Owns ``require_bearer(request) -> Response | None``: ``None`` when the caller may proceed, else the legacy's answer
(429 JSON with ``Retry-After`` when the shared-secret limiter has locked the client, 401 JSON
``{"error":{"message":"Unauthorized","type":"unauthorized"}}`` without ``WWW-Authenticate``). A wrong secret waits
the legacy's delay first (it does not block other requests). May import aiohttp and ``gateway.*``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.http import headers as hh

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
