"""Reading ``openclaw.json`` the way the legacy does, and resolving the gateway's effective settings.

Owns: path resolution (``OPENCLAW_CONFIG_PATH`` / ``OPENCLAW_STATE_DIR`` / ``OPENCLAW_HOME``), the load pipeline
(JSON5 parse via ``json5`` -> ``$include`` (depth 10, cycle detection; objects deep-merge, arrays concatenate,
the including file's scalars win) -> the ``env`` block (never overriding the process env) -> ``${VAR}``
substitution (``$${VAR}`` escapes; a missing variable stays unresolved with a warning) -> validation
(``gateway.config_schema``)), and ``GatewayConfig``, the frozen effective settings with the legacy's precedence
(port: flag > env > config > 18789; secrets: flag > config > env). May import json5 and the standard library.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

from gateway.config_schema import Issue, validate
from wire.errors import ConfigError

__all__ = [
    "AuthSettings",
    "CliOverrides",
    "ConfigInvalidError",
    "GatewayConfig",
    "LoadedConfig",
    "RateLimitSettings",
    "load_config",
    "resolve_gateway_config",
    "resolve_paths",
]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 18789
DEV_PORT = 19001
MAX_INCLUDE_DEPTH = 10
_VAR = re.compile(r"\$(\$?)\{([A-Z_][A-Z0-9_]*)\}")


class ConfigInvalidError(ConfigError):
    """The config file failed validation; ``issues`` lists each path and message."""

    def __init__(self, path: Path, issues: list[Issue]) -> None:
        self.path, self.issues = path, issues
        lines = "\n".join(f"  × {i.render()}" for i in issues)
        super().__init__(f"OpenClaw config is invalid: {path}\n{lines}")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The config file after the load pipeline, before runtime overrides."""

    path: Path
    exists: bool
    data: dict[str, Any]
    raw_text: str | None
    included_paths: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    not_implemented: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.issues


def resolve_paths(env: Mapping[str, str]) -> tuple[Path, Path]:
    """``(state_dir, config_path)`` as the legacy resolves them."""
    home = Path(env.get("OPENCLAW_HOME") or env.get("HOME") or os.path.expanduser("~"))
    state = Path(env["OPENCLAW_STATE_DIR"]).expanduser() if env.get("OPENCLAW_STATE_DIR") else home / ".openclaw"
    cfg = Path(env["OPENCLAW_CONFIG_PATH"]).expanduser() if env.get("OPENCLAW_CONFIG_PATH") else state / "openclaw.json"
    return state, cfg


def _parse(path: Path) -> tuple[Any, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config is not UTF-8 (byte {exc.start})") from exc
    try:
        return json5.loads(text), text
    except ValueError as exc:
        raise ConfigError(f"{path}: JSON5 parse failed: {exc}") from exc


def deep_merge(base: Any, over: Any) -> Any:
    """Objects merge recursively, arrays concatenate, otherwise ``over`` wins."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(out[k], v) if k in out else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + over
    return over


def _resolve_includes(node: Any, here: Path, chain: tuple[Path, ...], seen: list[str]) -> Any:
    if isinstance(node, list):
        return [_resolve_includes(v, here, chain, seen) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _resolve_includes(v, here, chain, seen) for k, v in node.items() if k != "$include"}
    if "$include" not in node:
        return out
    spec = node["$include"]
    targets = [spec] if isinstance(spec, str) else spec
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        raise ConfigError(f"{here}: $include must be a string or an array of strings")
    merged: Any = None
    for t in targets:
        target = (here.parent / t).resolve()
        if target in chain:
            cycle = " -> ".join(str(p) for p in (*chain, target))
            raise ConfigError(f"Circular include detected: {cycle}")
        if len(chain) > MAX_INCLUDE_DEPTH:
            raise ConfigError(f"{here}: $include depth exceeds {MAX_INCLUDE_DEPTH} (at {target})")
        if not target.exists():
            raise ConfigError(f"{here}: included file not found: {target}")
        seen.append(str(target))
        loaded, _ = _parse(target)
        loaded = _resolve_includes(loaded, target, (*chain, target), seen)
        merged = loaded if merged is None else deep_merge(merged, loaded)
    if out and not isinstance(merged, dict):
        raise ConfigError(f"{here}: $include with sibling keys requires the included content to be an object")
    if not out:
        return merged
    return deep_merge(merged, out)


def apply_env_block(config: Mapping[str, Any], env: MutableMapping[str, str]) -> list[str]:
    """Apply ``env.vars`` and top-level string keys of ``env`` without overriding existing values."""
    block = config.get("env")
    applied: list[str] = []
    if not isinstance(block, dict):
        return applied
    pairs = dict(block.get("vars") or {})
    pairs.update({k: v for k, v in block.items() if k not in ("vars", "shellEnv") and isinstance(v, str)})
    for k, v in pairs.items():
        if isinstance(v, str) and k not in env:
            env[k] = v
            applied.append(k)
    return applied


def substitute(node: Any, env: Mapping[str, str], warnings: list[str], path: str = "") -> Any:
    """Replace ``${VAR}`` in every string; ``$${VAR}`` yields a literal ``${VAR}``."""
    if isinstance(node, dict):
        return {k: substitute(v, env, warnings, f"{path}.{k}" if path else k) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, env, warnings, f"{path}.{i}") for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def repl(m: re.Match[str]) -> str:
        escaped, name = m.group(1), m.group(2)
        if escaped:
            return "${" + name + "}"
        if name in env:
            return env[name]
        warnings.append(f"{path or '<root>'}: missing env var {name}; left unresolved")
        return m.group(0)

    return _VAR.sub(repl, node)


def load_config(
    path: Path | None = None, env: MutableMapping[str, str] | None = None, *, apply_env: bool = True
) -> LoadedConfig:
    """Run the load pipeline. A missing file is ``{}``. Raises ``ConfigError`` for parse/include failures."""
    env = os.environ if env is None else env
    if path is None:
        _, path = resolve_paths(env)
    if not path.exists():
        return LoadedConfig(path=path, exists=False, data={}, raw_text=None)
    parsed, text = _parse(path)
    if not isinstance(parsed, dict):
        raise ConfigError(f"{path}: config root must be an object")
    included: list[str] = []
    data = _resolve_includes(parsed, path.resolve(), (path.resolve(),), included)
    if apply_env:
        apply_env_block(data, env)
    warnings: list[str] = []
    data = substitute(data, env, warnings)
    issues, not_impl = validate(data)
    for w in warnings:
        logger.warning("config: %s", w)
    return LoadedConfig(
        path=path, exists=True, data=data, raw_text=text, included_paths=tuple(included),
        warnings=tuple(warnings), not_implemented=tuple(not_impl), issues=tuple(issues),
    )


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    max_attempts: int = 10
    window_ms: int = 60_000
    lockout_ms: int = 300_000
    exempt_loopback: bool = True


@dataclass(frozen=True, slots=True)
class AuthSettings:
    mode: str
    token: str | None = None
    password: str | None = None
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    trusted_proxy: Mapping[str, Any] | None = None
    allow_tailscale: bool = False

    def __repr__(self) -> str:  # never leak secrets through repr
        return f"AuthSettings(mode={self.mode!r}, token={'***' if self.token else None}, password={'***' if self.password else None})"


@dataclass(frozen=True, slots=True)
class CliOverrides:
    """``pyclaw gateway run`` flags that override the file."""

    port: int | None = None
    bind: str | None = None
    auth: str | None = None
    token: str | None = None
    password: str | None = None
    tailscale: str | None = None
    dev: bool = False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The effective gateway settings. ``data`` is the validated config as loaded (secrets included)."""

    data: Mapping[str, Any]
    path: Path
    exists: bool
    state_dir: Path
    port: int
    bind: str
    custom_bind_host: str | None
    auth: AuthSettings
    mode: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    tailscale_mode: str = "off"
    tick_interval_ms: int = 30_000
    handshake_timeout_ms: int = 15_000
    health_refresh_ms: int = 60_000
    log_file: str | None = None
    log_level: str = "info"
    console_style: str = "pretty"
    raw_text: str | None = None
    included_paths: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    not_implemented: tuple[str, ...] = ()
    workspace_dir: Path | None = None

    def get(self, dotted: str, default: Any = None) -> Any:
        """``cfg.get("gateway.http.endpoints.responses.enabled", False)``."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def secrets(self) -> list[str]:
        """Every secret value this config holds (for the log redactor)."""
        out = [self.auth.token, self.auth.password, self.get("hooks.token")]
        for prov in (self.get("models.providers") or {}).values():
            if isinstance(prov, Mapping):
                out.append(prov.get("apiKey"))
        return [s for s in out if isinstance(s, str) and len(s) >= 4]

    def __repr__(self) -> str:
        return f"GatewayConfig(path={str(self.path)!r}, port={self.port}, bind={self.bind!r}, auth={self.auth!r})"


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")
    return value


def resolve_auth(cfg: Mapping[str, Any], overrides: CliOverrides, env: Mapping[str, str]) -> AuthSettings:
    """Mode inference and secret precedence: flag > config > env; mode: flag > config > password? > token."""
    auth = (cfg.get("gateway") or {}).get("auth") or {}
    token = overrides.token or (auth.get("token") if isinstance(auth.get("token"), str) else None) or env.get("OPENCLAW_GATEWAY_TOKEN")
    password = overrides.password or (auth.get("password") if isinstance(auth.get("password"), str) else None) or env.get("OPENCLAW_GATEWAY_PASSWORD")
    mode = overrides.auth or auth.get("mode") or ("password" if password else "token")
    rl = auth.get("rateLimit") or {}
    tailscale = overrides.tailscale or ((cfg.get("gateway") or {}).get("tailscale") or {}).get("mode") or "off"
    allow_ts = auth.get("allowTailscale")
    if allow_ts is None:
        allow_ts = tailscale == "serve" and mode not in ("password", "trusted-proxy")
    return AuthSettings(
        mode=mode, token=token or None, password=password or None,
        rate_limit=RateLimitSettings(
            max_attempts=int(rl.get("maxAttempts", 10)), window_ms=int(rl.get("windowMs", 60_000)),
            lockout_ms=int(rl.get("lockoutMs", 300_000)), exempt_loopback=bool(rl.get("exemptLoopback", True)),
        ),
        trusted_proxy=auth.get("trustedProxy"), allow_tailscale=bool(allow_ts),
    )


def resolve_gateway_config(
    loaded: LoadedConfig, overrides: CliOverrides | None = None, env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Apply runtime precedence to a loaded config. Raises ``ConfigInvalidError`` if it is invalid."""
    overrides = overrides or CliOverrides()
    env = os.environ if env is None else env
    if loaded.issues:
        raise ConfigInvalidError(loaded.path, list(loaded.issues))
    data = loaded.data
    gw = data.get("gateway") or {}
    state_dir, _ = resolve_paths(env)
    if overrides.port is not None:
        port = overrides.port
    elif env.get("OPENCLAW_GATEWAY_PORT"):
        port = _int_env(env, "OPENCLAW_GATEWAY_PORT", DEFAULT_PORT)
    elif "port" in gw:
        port = int(gw["port"])
    else:
        port = DEV_PORT if overrides.dev else DEFAULT_PORT
    if not 0 <= port <= 65535:
        raise ConfigError(f"Invalid port: {port}")
    logging_cfg = data.get("logging") or {}
    ws_dir = (data.get("agents") or {}).get("defaults", {}).get("workspace") or env.get("OPENCLAW_WORKSPACE_DIR")
    tick = _int_env(env, "PYCLAW_TICK_INTERVAL_MS", 30_000)
    return GatewayConfig(
        data=copy.deepcopy(data), path=loaded.path, exists=loaded.exists, state_dir=state_dir, port=port,
        bind=overrides.bind or gw.get("bind") or "loopback", custom_bind_host=gw.get("customBindHost"),
        auth=resolve_auth(data, overrides, env), mode=gw.get("mode"),
        trusted_proxies=tuple(gw.get("trustedProxies") or ()),
        tailscale_mode=overrides.tailscale or (gw.get("tailscale") or {}).get("mode") or "off",
        tick_interval_ms=tick,
        handshake_timeout_ms=_int_env(env, "OPENCLAW_HANDSHAKE_TIMEOUT_MS", 15_000),
        log_file=logging_cfg.get("file"), log_level=logging_cfg.get("level") or "info",
        console_style=logging_cfg.get("consoleStyle") or "pretty", raw_text=loaded.raw_text,
        included_paths=loaded.included_paths, warnings=loaded.warnings, not_implemented=loaded.not_implemented,
        workspace_dir=Path(ws_dir).expanduser() if ws_dir else state_dir / "workspace",
    )


def config_from_mapping(data: Mapping[str, Any], state_dir: Path, **kw: Any) -> GatewayConfig:
    """Build a ``GatewayConfig`` from an in-memory config (tests, embedding). Validates like a file."""
    env = {"OPENCLAW_STATE_DIR": str(state_dir), **kw.pop("env", {})}
    issues, not_impl = validate(dict(data))
    loaded = LoadedConfig(
        path=state_dir / "openclaw.json", exists=True, data=dict(data), raw_text=None,
        not_implemented=tuple(not_impl), issues=tuple(issues),
    )
    return resolve_gateway_config(loaded, kw.pop("overrides", None), env)
