"""The candidate's config schema: strict checks for the keys pyclaw implements, acceptance for the rest.

Owns the tiny schema language (``Obj``, ``Enum``, ``Num``, ...) and ``OPENCLAW_SCHEMA``, the shape of
``openclaw.json`` as the legacy 2026.9.6 declares it (``dist/zod-schema-*.mjs``, ``OpenClawSchemaShape``).
Keys the legacy accepts but pyclaw does not implement are ``NotImplemented_`` nodes: any value passes and the
path is reported, never silently ignored. Messages follow zod 4's wording (``Invalid input: expected number,
received string``, ``Unrecognized key: "x"``) with dotted paths, as ``openclaw config validate`` prints them.
Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Issue", "OPENCLAW_SCHEMA", "validate"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One validation finding: a dotted path (``<root>`` for the top) and a message."""

    path: str
    message: str

    def render(self) -> str:
        return f"{self.path}: {self.message}"


def _typename(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class Node:
    def check(self, value: Any, path: str, out: _Result) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass
class _Result:
    issues: list[Issue] = field(default_factory=list)
    not_implemented: list[str] = field(default_factory=list)


class Any_(Node):
    """Accepted as is and implemented (free-form data such as ``env.vars``)."""

    def check(self, value: Any, path: str, out: _Result) -> None:
        return


class NotImplemented_(Node):
    """A key the legacy accepts and pyclaw does not implement: accepted, reported."""

    def check(self, value: Any, path: str, out: _Result) -> None:
        out.not_implemented.append(path)


class Str(Node):
    def __init__(self, min_len: int = 0) -> None:
        self.min_len = min_len

    def check(self, value: Any, path: str, out: _Result) -> None:
        if not isinstance(value, str):
            out.issues.append(Issue(path, f"Invalid input: expected string, received {_typename(value)}"))
        elif len(value) < self.min_len:
            out.issues.append(Issue(path, f"Too small: expected string to have >={self.min_len} characters"))


class Bool(Node):
    def check(self, value: Any, path: str, out: _Result) -> None:
        if not isinstance(value, bool):
            out.issues.append(Issue(path, f"Invalid input: expected boolean, received {_typename(value)}"))


class Num(Node):
    def __init__(self, *, integer: bool = False, lo: float | None = None, hi: float | None = None) -> None:
        self.integer, self.lo, self.hi = integer, lo, hi

    def check(self, value: Any, path: str, out: _Result) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.issues.append(Issue(path, f"Invalid input: expected number, received {_typename(value)}"))
            return
        if self.integer and not float(value).is_integer():
            out.issues.append(Issue(path, "Invalid input: expected int, received number"))
        elif self.lo is not None and value < self.lo:
            out.issues.append(Issue(path, f"Too small: expected number to be >={self.lo:g}"))
        elif self.hi is not None and value > self.hi:
            out.issues.append(Issue(path, f"Too big: expected number to be <={self.hi:g}"))


class Enum(Node):
    def __init__(self, *values: str) -> None:
        self.values = values

    def check(self, value: Any, path: str, out: _Result) -> None:
        if value not in self.values:
            opts = "|".join(f'"{v}"' for v in self.values)
            out.issues.append(Issue(path, f"Invalid option: expected one of {opts}"))


class Arr(Node):
    def __init__(self, item: Node) -> None:
        self.item = item

    def check(self, value: Any, path: str, out: _Result) -> None:
        if not isinstance(value, list):
            out.issues.append(Issue(path, f"Invalid input: expected array, received {_typename(value)}"))
            return
        for i, v in enumerate(value):
            self.item.check(v, f"{path}.{i}", out)


class Rec(Node):
    def __init__(self, value: Node) -> None:
        self.value = value

    def check(self, value: Any, path: str, out: _Result) -> None:
        if not isinstance(value, dict):
            out.issues.append(Issue(path, f"Invalid input: expected record, received {_typename(value)}"))
            return
        for k, v in value.items():
            self.value.check(v, f"{path}.{k}", out)


class Secret(Node):
    """A plaintext secret or a SecretRef object ``{source, provider, id}``."""

    def check(self, value: Any, path: str, out: _Result) -> None:
        if isinstance(value, str):
            return
        if isinstance(value, dict) and {"source", "id"} <= set(value):
            out.not_implemented.append(path + " (SecretRef)")
            return
        out.issues.append(Issue(path, "Invalid input"))


class Obj(Node):
    def __init__(self, keys: dict[str, Node], *, strict: bool = True) -> None:
        self.keys, self.strict = keys, strict

    def check(self, value: Any, path: str, out: _Result) -> None:
        if not isinstance(value, dict):
            out.issues.append(Issue(path, f"Invalid input: expected object, received {_typename(value)}"))
            return
        unknown = [k for k in value if k not in self.keys]
        if unknown and self.strict:
            label = "key" if len(unknown) == 1 else "keys"
            out.issues.append(Issue(path, f"Unrecognized {label}: " + ", ".join(f'"{k}"' for k in unknown)))
        for k, node in self.keys.items():
            if k in value:
                node.check(value[k], k if path == "<root>" else f"{path}.{k}", out)


NI = NotImplemented_()
LEVELS = Enum("silent", "fatal", "error", "warn", "info", "debug", "trace")

_MODEL = Obj(
    {
        "id": Str(1), "name": Str(), "reasoning": Bool(), "input": Arr(Str()), "cost": Rec(Num()),
        "contextWindow": Num(lo=0), "maxTokens": Num(lo=0), "api": Str(), "headers": NI, "compat": NI,
    },
    strict=False,
)
_PROVIDER = Obj(
    {"baseUrl": Str(), "apiKey": Secret(), "api": Str(), "models": Arr(_MODEL), "headers": NI, "auth": NI},
    strict=False,
)

GATEWAY = Obj(
    {
        "port": Num(integer=True, lo=1, hi=65535),
        "mode": Enum("local", "remote"),
        "bind": Enum("auto", "lan", "loopback", "custom", "tailnet"),
        "customBindHost": Str(),
        "publicOrigin": NI, "portals": NI, "controlUi": NI, "cliAgents": NI, "terminal": NI,
        "auth": Obj(
            {
                "mode": Enum("none", "token", "password", "trusted-proxy"),
                "token": Secret(), "password": Secret(),
                "allowTailscale": Bool(),
                "identityScopes": NI,
                "rateLimit": Obj({"maxAttempts": Num(), "windowMs": Num(), "lockoutMs": Num(), "exemptLoopback": Bool()}),
                "trustedProxy": Obj(
                    {
                        "userHeader": Str(1), "requiredHeaders": Arr(Str()), "allowUsers": Arr(Str()),
                        "allowLoopback": Bool(), "cloudflareAccessOidc": NI, "deviceAutoApprove": NI,
                    }
                ),
            }
        ),
        "roles": NI,
        "trustedProxies": Arr(Str()),
        "allowRealIpFallback": NI,
        "tools": Obj({"allow": Arr(Str()), "deny": Arr(Str())}),
        "tailscale": Obj({"mode": Enum("off", "serve", "funnel"), "resetOnExit": NI}, strict=False),
        "remote": Obj({"url": Str(), "token": Secret(), "password": Secret()}, strict=False),
        "reload": Obj({"mode": Enum("off", "hybrid")}),
        "tls": NI, "push": NI, "nodes": NI,
        "http": Obj(
            {
                "endpoints": Obj(
                    {
                        "chatCompletions": Obj({"enabled": Bool()}, strict=False),
                        "responses": Obj({"enabled": Bool()}, strict=False),
                    },
                    strict=False,
                ),
            },
            strict=False,
        ),
    }
)

OPENCLAW_SCHEMA = Obj(
    {
        "$schema": Str(),
        "meta": Any_(),
        "env": Obj({"shellEnv": NI, "vars": Rec(Str())}, strict=False),
        "wizard": NI, "diagnostics": NI,
        "logging": Obj(
            {
                "level": LEVELS, "file": Str(), "maxFileBytes": NI, "consoleLevel": LEVELS,
                "consoleStyle": Enum("pretty", "json"), "redactSensitive": NI, "redactPatterns": Arr(Str()),
                "audit": NI, "otel": NI, "cacheTrace": NI,
            }
        ),
        "update": Obj({"checkOnStart": Bool(), "auto": Obj({"enabled": Bool()}, strict=False), "channel": NI}, strict=False),
        "telemetry": NI, "browser": NI, "ui": NI, "secrets": NI, "auth": NI, "accessGroups": NI, "acp": NI,
        "models": Obj({"catalogRefresh": Obj({"enabled": Bool()}, strict=False), "providers": Rec(_PROVIDER), "mode": NI}, strict=False),
        "nodeHost": NI,
        "agents": Obj(
            {"defaults": Obj({"model": Obj({"primary": Str(), "fallbacks": Arr(Str())}, strict=False), "workspace": Str()}, strict=False),
             "list": Arr(Obj({"id": Str(1)}, strict=False))},
            strict=False,
        ),
        "worktreeRoot": NI, "worktreeAcceleration": NI, "tools": NI, "security": NI, "bindings": NI,
        "broadcast": NI, "attachments": NI, "messages": NI, "tts": NI, "commands": NI, "approvals": NI,
        "session": NI,
        "cron": Obj({"enabled": Bool()}, strict=False),
        "transcripts": NI,
        "hooks": Obj(
            {"enabled": Bool(), "token": Secret(), "path": Str(), "maxBodyBytes": Num(integer=True, lo=1), "mappings": Arr(Any_()),
             "presets": NI, "transformsDir": NI, "gmail": NI, "internal": NI, "allowedAgentIds": Arr(Str()),
             "allowRequestSessionKey": Bool(), "allowedSessionKeyPrefixes": Arr(Str()), "defaultSessionKey": Str()},
            strict=False,
        ),
        "channels": NI,
        "discovery": Obj({"mdns": Obj({"mode": Enum("off", "minimal", "full")}, strict=False)}, strict=False),
        "talk": NI,
        "gateway": GATEWAY,
        "cloudWorkers": NI, "desktop": NI, "memory": NI, "mcp": NI, "skills": NI, "plugins": NI, "surfaces": NI,
        "proxy": NI,
    }
)


def validate(config: Any) -> tuple[list[Issue], list[str]]:
    """Validate a resolved config; return ``(issues, not_implemented_paths)``."""
    out = _Result()
    OPENCLAW_SCHEMA.check(config, "<root>", out)
    return out.issues, out.not_implemented
