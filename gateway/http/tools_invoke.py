"""``POST /tools/invoke``: run one gateway tool over HTTP (reference §4.2/§4.3, legacy ``tools-invoke-http.ts``).

Owns ``handle_tools_invoke``. Check order as the legacy: method (405 ``Allow: POST``), bearer auth (gateway token
or password; 429 JSON with ``Retry-After`` when rate limited; 401 JSON after the wrong-secret delay), body (2 MiB,
413/400 JSON), then ``{name|tool, action?, args?, sessionKey?, agentId?, idempotencyKey?}``: 400 ``tools.invoke
requires name``, 400 unknown agent, 404 ``Tool not available: X`` for unknown and HTTP-denied tools, 400/500
``tool_error``, 200 ``{ok:true, result:{content, details}}``. May import aiohttp, ``gateway.*`` and stdlib.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from gateway.http import headers as hh
from gateway.http.auth import authorized_json_post
from gateway.http.bodies import BodyResult

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024


def _opt_str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _fail(status: int, type_: str, message: str) -> web.Response:
    return hh.json_response(status, {"ok": False, "error": {"type": type_, "message": message}})


async def handle_tools_invoke(request: web.Request) -> web.StreamResponse:
    from gateway.agent.tools import ToolInputError, ToolRegistry
    from gateway.app import TOOLS_KEY

    body = await authorized_json_post(request, MAX_BODY_BYTES)
    if not isinstance(body, BodyResult):
        return body
    data = body.value if isinstance(body.value, dict) else {}
    raw_name = data.get("name") if data.get("name") is not None else data.get("tool")
    name = _opt_str(raw_name) or ""
    if not name:
        return _fail(400, "invalid_request", "tools.invoke requires name")
    registry = request.app.get(TOOLS_KEY)
    if not isinstance(registry, ToolRegistry):
        return _fail(404, "not_found", f"Tool not available: {name}")
    session_key = _opt_str(data.get("sessionKey")) or "main"
    agent_id = _opt_str(data.get("agentId"))
    if agent_id is not None and agent_id.lower() not in registry.agent_ids():
        return _fail(400, "invalid_request", f'Unknown agent id "{data.get("agentId")}"')
    spec = registry.get(name, surface="http")
    if spec is None:
        return _fail(404, "not_found", f"Tool not available: {name}")
    args_raw = data.get("args")
    args: dict[str, Any] = dict(args_raw) if isinstance(args_raw, dict) else {}
    action = _opt_str(data.get("action"))
    if action and "action" not in args and "action" in (spec.parameters.get("properties") or {}):
        args["action"] = action
    try:
        result = registry.invoke(name, args, session_key=session_key, surface="http")
    except ToolInputError as exc:
        return _fail(400, "tool_error", str(exc) or "invalid tool arguments")
    except Exception:
        logger.exception("tools-invoke: tool execution failed (%s)", name)
        return _fail(500, "tool_error", "tool execution failed")
    return hh.json_response(200, {"ok": True, "result": result.to_json()})
