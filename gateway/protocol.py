"""Sans-I/O WS protocol 4 rules: frame and ConnectParams validation with AJV-style texts, negotiation, errors.

Owns a tiny JSON-Schema subset evaluated like AJV with ``allErrors`` (per object: ``required`` errors, then
``additionalProperties``, then each property in schema order), the legacy's ``formatValidationErrors`` rendering
(``at /client/id: must be equal to one of the allowed values``; ``at root: unexpected property 'ok'``; root
``required`` errors bare; parts de-duplicated and joined by ``"; "``), the request-frame and ConnectParams
schemas of ``packages/gateway-protocol/src/schema/frames.ts``, protocol negotiation
(``connect-admission.ts``), close-reason truncation (120 UTF-8 bytes) and ``error_shape``.
Standard library only: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CLIENT_IDS",
    "CLIENT_MODES",
    "CONNECT_PARAMS",
    "PROTOCOL_VERSION",
    "REQUEST_FRAME",
    "error_shape",
    "format_errors",
    "negotiate_protocol",
    "truncate_close_reason",
    "validate",
]

PROTOCOL_VERSION = 4
MIN_PROBE_PROTOCOL = 3
CLIENT_IDS = (
    "webchat-ui", "openclaw-control-ui", "openclaw-browser-copilot", "openclaw-tui", "webchat", "cli", "gateway-client",
    "openclaw-macos", "openclaw-linux", "openclaw-ios", "openclaw-watchos", "openclaw-android", "node-host",
    "openclaw-worker", "test", "fingerprint", "openclaw-probe",
)
CLIENT_MODES = ("webchat", "cli", "ui", "backend", "node", "worker", "probe", "test")


@dataclass(frozen=True, slots=True)
class S:
    """A schema node. ``kind``: object|string|integer|number|boolean|array|record|any|const|enum|union."""

    kind: str
    props: tuple[tuple[str, S, bool], ...] = ()  # (name, schema, required)
    closed: bool = True
    min: float | None = None
    max: float | None = None
    items: S | None = None
    values: tuple[Any, ...] = ()
    options: tuple[S, ...] = ()


def obj(*props: tuple[str, S, bool], closed: bool = True) -> S:
    return S("object", props=props, closed=closed)


def req(name: str, s: S) -> tuple[str, S, bool]:
    return (name, s, True)


def opt(name: str, s: S) -> tuple[str, S, bool]:
    return (name, s, False)


NES = S("string", min=1)
STR = S("string")
ANY = S("any")


def _type_ok(kind: str, v: Any) -> bool:
    if kind in ("object", "record"):
        return isinstance(v, dict)
    if kind == "string":
        return isinstance(v, str)
    if kind == "boolean":
        return isinstance(v, bool)
    if kind == "array":
        return isinstance(v, list)
    if kind == "number":
        return isinstance(v, int | float) and not isinstance(v, bool)
    if kind == "integer":
        return isinstance(v, int | float) and not isinstance(v, bool) and float(v).is_integer()
    return True


def _walk(s: S, v: Any, path: str, out: list[str], depth: int = 0) -> None:
    where = f"at {path}: " if path else ""
    if depth > 64:
        out.append(f"{where}must be shallower")
        return
    if s.kind == "any":
        return
    if s.kind == "const":
        if v != s.values[0] or type(v) is not type(s.values[0]):
            out.append(f"{where}must be equal to constant")
        return
    if s.kind == "enum":
        if not any(v == x and type(v) is type(x) for x in s.values):
            out.append(f"{where}must be equal to one of the allowed values")
        return
    if s.kind == "union":
        for o in s.options:
            sub: list[str] = []
            _walk(o, v, path, sub, depth + 1)
            if not sub:
                return
        out.append(f"{where}must match a schema in anyOf")
        return
    if not _type_ok(s.kind, v):
        out.append(f"{where}must be {s.kind if s.kind != 'record' else 'object'}")
        return
    if s.kind == "string":
        if s.min is not None and len(v) < s.min:
            out.append(f"{where}must NOT have fewer than {int(s.min)} characters")
        if s.max is not None and len(v) > s.max:
            out.append(f"{where}must NOT have more than {int(s.max)} characters")
    elif s.kind in ("integer", "number"):
        if s.min is not None and v < s.min:
            out.append(f"{where}must be >= {s.min:g}")
    elif s.kind == "array":
        assert s.items is not None
        for i, item in enumerate(v):
            _walk(s.items, item, f"{path}/{i}", out, depth + 1)
    elif s.kind == "record":
        assert s.items is not None
        for k, item in v.items():
            _walk(s.items, item, f"{path}/{_esc(k)}", out, depth + 1)
    elif s.kind == "object":
        names = {p[0] for p in s.props}
        for name, _, required in s.props:
            if required and name not in v:
                out.append(f"{where}must have required property '{name}'")
        if s.closed:
            for k in v:
                if k not in names:
                    out.append(f"at {path or 'root'}: unexpected property '{k}'")
        for name, sub_schema, _ in s.props:
            if name in v:
                _walk(sub_schema, v[name], f"{path}/{_esc(name)}", out, depth + 1)


def _esc(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


_NAMES: dict[int, tuple[S, frozenset[str]]] = {}


def _names(s: S) -> frozenset[str]:
    """The property names of object schema ``s`` (cached per node; the entry keeps ``s`` alive, so ids stay unique)."""
    hit = _NAMES.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1]
    names = frozenset(p[0] for p in s.props)
    _NAMES[id(s)] = (s, names)
    return names


def _ok(s: S, v: Any, depth: int = 0) -> bool:
    """True exactly when ``_walk`` would report no error, without building paths or messages (the common case)."""
    if depth > 64:
        return False
    kind = s.kind
    if kind == "string":
        if not isinstance(v, str):
            return False
        return not ((s.min is not None and len(v) < s.min) or (s.max is not None and len(v) > s.max))
    if kind == "object":
        if not isinstance(v, dict):
            return False
        for name, _, required in s.props:
            if required and name not in v:
                return False
        if s.closed and not _names(s).issuperset(v):
            return False
        depth += 1
        for name, sub_schema, _ in s.props:
            if name in v and not _ok(sub_schema, v[name], depth):
                return False
        return True
    if kind == "enum":
        for x in s.values:
            if v == x and type(v) is type(x):
                return True
        return False
    if kind == "any":
        return True
    if kind == "const":
        return bool(v == s.values[0]) and type(v) is type(s.values[0])
    if kind == "union":
        for o in s.options:
            if _ok(o, v, depth + 1):
                return True
        return False
    if not _type_ok(kind, v):
        return False
    if kind in ("integer", "number"):
        return not (s.min is not None and v < s.min)
    if kind == "array":
        assert s.items is not None
        for item in v:
            if not _ok(s.items, item, depth + 1):
                return False
        return True
    if kind == "record":
        assert s.items is not None
        for item in v.values():
            if not _ok(s.items, item, depth + 1):
                return False
    return True


def validate(schema: S, value: Any) -> list[str]:
    """AJV-style error parts (already de-duplicated, in AJV's order); empty when valid."""
    if _ok(schema, value):
        return []
    out: list[str] = []
    _walk(schema, value, "", out)
    return list(dict.fromkeys(out))


def format_errors(parts: Sequence[str]) -> str:
    return "; ".join(parts) if parts else "unknown validation error"


REQUEST_FRAME = obj(
    req("type", S("const", values=("req",))),
    req("id", NES),
    req("method", NES),
    opt("params", ANY),
    opt("traceparent", S("string", max=128)),
    opt("expectedProfileId", NES),
)

CONNECT_PARAMS = obj(
    req("minProtocol", S("integer", min=1)),
    req("maxProtocol", S("integer", min=1)),
    req("client", obj(
        req("id", S("enum", values=CLIENT_IDS)),
        opt("displayName", NES),
        req("version", NES),
        opt("buildId", S("string", min=1, max=96)),
        req("platform", NES),
        opt("deviceFamily", NES),
        opt("modelIdentifier", NES),
        opt("timeZone", S("string", min=1, max=64)),
        req("mode", S("enum", values=CLIENT_MODES)),
        opt("instanceId", NES),
    )),
    opt("caps", S("array", items=NES)),
    opt("commands", S("array", items=NES)),
    opt("computerUse", ANY),
    opt("workerRuns", ANY),
    opt("permissions", S("record", items=S("boolean"))),
    opt("pathEnv", STR),
    opt("role", NES),
    opt("scopes", S("array", items=NES)),
    opt("modelCatalog", S("union", options=(
        obj(opt("agentId", NES), opt("sessionKey", NES)),
        obj(opt("agentId", NES), req("shortId", NES), opt("slugHint", NES)),
    ))),
    opt("device", obj(
        req("id", NES), req("publicKey", NES), req("signature", NES),
        req("signedAt", S("integer", min=0)), req("nonce", NES),
    )),
    opt("auth", obj(
        opt("token", STR), opt("bootstrapToken", STR), opt("deviceToken", STR), opt("password", STR),
        opt("approvalRuntimeToken", STR), opt("agentRuntimeIdentityToken", STR),
    )),
    opt("locale", STR),
    opt("userAgent", STR),
)


def negotiate_protocol(min_p: int, max_p: int, *, mode: str | None, role: str | None) -> int | None:
    """The protocol to speak, or ``None`` for ``PROTOCOL_MISMATCH`` (close 1002)."""
    if min_p <= PROTOCOL_VERSION <= max_p:
        return PROTOCOL_VERSION
    if mode == "probe" and max_p >= MIN_PROBE_PROTOCOL and min_p <= PROTOCOL_VERSION:
        return min(max_p, PROTOCOL_VERSION)
    if role == "node" and min_p <= 3 <= max_p:
        return 3
    return None


def protocol_mismatch_error(min_p: Any, max_p: Any) -> dict[str, Any]:
    return error_shape("INVALID_REQUEST", "protocol mismatch", details={
        "code": "PROTOCOL_MISMATCH", "clientMinProtocol": min_p, "clientMaxProtocol": max_p,
        "expectedProtocol": PROTOCOL_VERSION, "minimumProbeProtocol": MIN_PROBE_PROTOCOL,
    })


def truncate_close_reason(reason: str, limit: int = 120) -> str:
    """Cut to ``limit`` UTF-8 bytes without splitting a character; empty becomes ``invalid handshake``."""
    if not reason:
        return "invalid handshake"
    data = reason.encode("utf-8")
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", errors="ignore")


def error_shape(code: str, message: str, *, details: Any = None, retryable: bool | None = None,
                retry_after_ms: int | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if retryable is not None:
        err["retryable"] = retryable
    if retry_after_ms is not None:
        err["retryAfterMs"] = retry_after_ms
    if details is not None:
        err["details"] = details
    return err
