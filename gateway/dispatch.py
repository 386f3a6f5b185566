"""The method table: which RPC methods pyclaw implements, the scope each needs, and request dispatch.

Owns ``MethodError``, ``MethodContext``, the ``method`` registration decorator, ``authorize`` (the legacy's
``authorizeGatewayMethod`` order: ``health`` is open; role check; ``operator.admin`` passes everything; then the
method's scope class, with unknown methods needing ``operator.admin``) and ``dispatch``, which answers
``unknown method: <m>`` after authorization and wraps handler crashes as ``UNAVAILABLE``. Handlers live in
``gateway.methods.*`` and register themselves on import.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.app import STATE_KEY
from gateway.protocol import error_shape
from gateway.state import ClientConn

__all__ = ["METHODS", "MethodContext", "MethodError", "authorize", "dispatch", "implemented_methods", "method"]

logger = logging.getLogger(__name__)

READ, WRITE, ADMIN = "operator.read", "operator.write", "operator.admin"
PAIRING, APPROVALS = "operator.pairing", "operator.approvals"
NODE_ONLY = frozenset({"node.invoke.result", "node.event", "skills.bins", "node.pending.pull", "node.pending.ack",
                       "node.invoke.progress"})
_RESERVED_ADMIN = ("config.", "exec.approvals.", "wizard.", "update.")


class MethodError(Exception):
    """Raised by a handler to answer ``ok:false`` with the given error shape."""

    def __init__(self, code: str, message: str, **kw: Any) -> None:
        super().__init__(message)
        self.shape = error_shape(code, message, **kw)


@dataclass(slots=True)
class MethodContext:
    app: web.Application
    conn: ClientConn
    req_id: str
    method: str
    respond_extra: Callable[[bool, Any, dict[str, Any] | None], None]


Handler = Callable[[MethodContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    scope: str | None
    handler: Handler


METHODS: dict[str, MethodSpec] = {}


def method(name: str, scope: str | None = READ) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        METHODS[name] = MethodSpec(name, scope, fn)
        return fn

    return deco


_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:  # hot path: hello-ok asks on every connect
        return
    from gateway.methods import agents, config, health, inventory, system  # noqa: F401  (registration side effects)

    _loaded = True


def implemented_methods() -> list[str]:
    _load()
    return list(METHODS)


def _missing(scope: str) -> dict[str, Any]:
    return error_shape("FORBIDDEN", f"missing scope: {scope}",
                       details={"code": "MISSING_SCOPE", "missingScope": scope, "requiredScopes": [scope]})


def read_granted(scopes: frozenset[str]) -> bool:
    """The legacy's operator.read check: granted by read, write or admin (``operatorScopeSatisfied``)."""
    return bool(scopes & {READ, WRITE, ADMIN})


def authorize(name: str, role: str, scopes: frozenset[str]) -> dict[str, Any] | None:
    """``None`` when allowed, else the legacy's error shape."""
    if name == "health":
        return None
    if role not in ("operator", "node"):
        return error_shape("INVALID_REQUEST", f"unauthorized role: {role}")
    if role == "node":
        return None if name in NODE_ONLY else error_shape("INVALID_REQUEST", "unauthorized role: node")
    if name in NODE_ONLY:
        return error_shape("INVALID_REQUEST", "unauthorized role: operator")
    if ADMIN in scopes:
        return None
    spec = METHODS.get(name)
    needed = ADMIN if spec is None or name.startswith(_RESERVED_ADMIN) and name not in ("config.get", "config.schema.lookup") else spec.scope
    if needed is None:
        return None
    if needed == READ and read_granted(scopes):
        return None
    if needed in scopes:
        return None
    return _missing(needed)


async def dispatch(ctx: MethodContext, params: Any) -> tuple[bool, Any, dict[str, Any] | None]:
    """Run one authorized request; returns ``(ok, payload, error)``."""
    _load()
    denied = authorize(ctx.method, ctx.conn.role, ctx.conn.scopes)
    if denied is not None:
        return False, None, denied
    spec = METHODS.get(ctx.method)
    if spec is None:
        return False, None, error_shape("INVALID_REQUEST", f"unknown method: {ctx.method}")
    state = ctx.app[STATE_KEY]
    state.active_requests += 1
    try:
        return True, await spec.handler(ctx, params), None
    except MethodError as exc:
        return False, None, exc.shape
    except Exception as exc:  # a handler bug must not kill the connection (legacy: UNAVAILABLE <err>)
        logger.exception("method %s failed", ctx.method)
        return False, None, error_shape("UNAVAILABLE", f"Error: {exc}")
    finally:
        state.active_requests -= 1
