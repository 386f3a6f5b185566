"""Configuration of the shadow proxy: one frozen value built from TOML, ``PARITY_*`` env and CLI flags.

Owns :class:`ShadowConfig` and its pure constructor :func:`ShadowConfig.from_mapping`, which raises
:class:`wire.errors.ConfigError` naming the key path (``limits.conn_queue: expected an integer ≥ 1``).
Layering (``__main__`` does the I/O): TOML file < env (:data:`ENV_KEYS`) < flags. May import: stdlib, ``wire``.

Example (``shadow.toml``)::

    mode = "shadow"                    # shadow | candidate-primary | canary | passthrough
    listen = "127.0.0.1:18790"
    admin = "127.0.0.1:18791"
    [legacy]
    url = "http://127.0.0.1:18789"
    token = "..."                      # used to recognise (and redact) legacy secrets; never sent to the candidate
    hook_token = "..."
    [candidate]
    url = "http://127.0.0.1:18800"
    token = "..."                      # the candidate's own credentials
    device_auth = "token"              # token (downgrade signed connects) | resign (proxy device key)
    [canary]
    percent = 10
    [limits]
    conn_queue = 256
    candidate_timeout = 5.0
    mirror_process = true              # real traffic: mirror in a child process under SCHED_IDLE,
    mirror_idle = true
    mirror_cpus = "1"                  # on CPUs the legacy and the proxy do not use
    [record]
    trace_dir = "runs/traces"
    sample_rate = 1.0
    [policy]
    "chat.send" = "mirror"
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from wire.errors import ConfigError

__all__ = ["ENV_KEYS", "MODES", "Credentials", "Limits", "RecordConfig", "ShadowConfig", "mirror_cpu_set", "parse_cpus",
           "parse_hostport"]

MODES = ("shadow", "candidate-primary", "canary", "passthrough")
DEVICE_AUTH = ("token", "resign")
DECISIONS = ("mirror", "skip", "record-only")

#: env var -> dotted key path.
ENV_KEYS: dict[str, str] = {
    "PARITY_MODE": "mode",
    "PARITY_LISTEN": "listen",
    "PARITY_ADMIN": "admin",
    "PARITY_LEGACY_URL": "legacy.url",
    "PARITY_LEGACY_TOKEN": "legacy.token",
    "PARITY_LEGACY_PASSWORD": "legacy.password",
    "PARITY_LEGACY_HOOK_TOKEN": "legacy.hook_token",
    "PARITY_CANDIDATE_URL": "candidate.url",
    "PARITY_CANDIDATE_TOKEN": "candidate.token",
    "PARITY_CANDIDATE_PASSWORD": "candidate.password",
    "PARITY_CANDIDATE_HOOK_TOKEN": "candidate.hook_token",
    "PARITY_CANDIDATE_DEVICE_AUTH": "candidate.device_auth",
    "PARITY_CANARY_PERCENT": "canary.percent",
    "PARITY_CANDIDATE_TIMEOUT": "limits.candidate_timeout",
    "PARITY_RSS_CAP_MB": "limits.rss_cap_mb",
    "PARITY_MIRROR_CPUS": "limits.mirror_cpus",
    "PARITY_TRACE_DIR": "record.trace_dir",
    "PARITY_DB": "record.db",
    "PARITY_SAMPLE_RATE": "record.sample_rate",
    "PARITY_WRITE_AHEAD": "record.write_ahead",
}


def parse_hostport(value: str, key: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` or ``"[::1]:0"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    host = host.strip("[]")
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"{key}: port must be an integer, got {port!r}") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"{key}: port out of range: {p}")
    return host, p


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """One leg's address and secrets. Secrets never appear in ``repr``."""

    url: str = ""
    token: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    hook_token: str = field(default="", repr=False)
    device_auth: str = "token"
    device_key: str = ""

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        return f"{scheme}://{parts.netloc}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Isolation bounds. When one is reached the proxy drops and counts; it never waits."""

    conn_queue: int = 256  # frames queued per mirrored WS connection
    global_queue: int = 4096  # items queued per pipeline stage
    max_queued_bytes: int = 16 * 1024 * 1024  # payload bytes waiting for the candidate, all connections
    candidate_timeout: float = 5.0  # deadline for one candidate HTTP exchange or WS connect
    candidate_concurrency: int = 64  # concurrent candidate HTTP requests
    connect_retries: int = 3
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    rss_cap_mb: int = 0  # 0 = off; above it new mirror work is dropped (reason "rss")
    max_body: int = 1024 * 1024  # bytes of a body kept for recording and diffing (forwarding is unbounded)
    pair_window: float = 10.0  # seconds a half pair waits for its other leg
    legacy_timeout: float = 300.0  # total deadline for one legacy HTTP exchange
    max_frame: int = 26214400  # largest WS frame accepted from a leg (OpenClaw policy.maxPayload, §2.9)
    diff_workers: int = 1  # processes comparing pairs off the event loop (0 = compare inline)
    shed_lag_ms: float = 0.0  # 0 = off; above this event-loop lag (EWMA) new mirror work is dropped (reason
    #                           "overload"), so mirroring never costs the client path its CPU
    mirror_process: bool = False  # run mirroring, pairing, diffing, recording and storing in a child process;
    #   then max_queued_bytes also bounds the proxy's socket buffer to it, and shed_lag_ms / rss_cap_mb watch the
    #   child (the proxy's own share per mirrored exchange is a list append and a share of one pickled batch per 2 ms)
    mirror_nice: int = 10  # that child's niceness (0-19): under CPU contention the client path is served first
    mirror_idle: bool = False  # and, once it is ready, under SCHED_IDLE (Linux): it only gets CPU no other process
    #   wants, so a saturated machine drops (and counts) mirror work rather than slowing the client path; its final
    #   drain leaves SCHED_IDLE where the kernel allows (root or RLIMIT_NICE). Needs mirror_process.
    mirror_cpus: str = ""  # Linux CPU list ("1", "2-3,6"): that child, its threads and diff workers run only there,
    #   away from the CPUs the legacy and the proxy use; "" = wherever the kernel puts it. Needs mirror_process.
    fast_http: bool = True  # plain HTTP/1.1 requests take the lean fast path (shadow.fastpath); false = all aiohttp


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordConfig:
    trace_dir: str = ""
    db: str = ""
    sample_rate: float = 1.0
    write_ahead: bool = False
    write_ahead_path: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowConfig:
    mode: str = "shadow"
    listen: tuple[str, int] = ("127.0.0.1", 18790)
    admin: tuple[str, int] | None = ("127.0.0.1", 18791)
    legacy: Credentials = field(default_factory=lambda: Credentials(url="http://127.0.0.1:18789"))
    candidate: Credentials = field(default_factory=Credentials)
    canary_percent: float = 0.0
    canary_header: str = "x-parity-client"
    limits: Limits = field(default_factory=Limits)
    record: RecordConfig = field(default_factory=RecordConfig)
    policy: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False  # the candidate declares a dry-run mode for outbound delivery
    profile: str = "openclaw"

    def secrets(self) -> dict[str, str]:
        """Placeholder name -> value, for :class:`wire.redact.Redactor`."""
        out = {
            "GW_TOKEN": self.legacy.token,
            "GW_PASSWORD": self.legacy.password,
            "HOOK_TOKEN": self.legacy.hook_token,
            "CAND_GW_TOKEN": self.candidate.token,
            "CAND_GW_PASSWORD": self.candidate.password,
            "CAND_HOOK_TOKEN": self.candidate.hook_token,
        }
        return {k: v for k, v in out.items() if v}

    def with_mode(self, mode: str) -> ShadowConfig:
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        return replace(self, mode=mode)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> ShadowConfig:
        """Build from a decoded TOML-shaped mapping. Raises :class:`ConfigError` naming the key path."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"<root>: expected a table, got {type(d).__name__}")
        known = {"mode", "listen", "admin", "legacy", "candidate", "canary", "limits", "record", "policy",
                 "dry_run", "profile"}
        _no_unknown(d, known, "")
        mode = _str(d, "mode", "shadow")
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        listen = parse_hostport(_str(d, "listen", "127.0.0.1:18790"), "listen")
        admin_raw = d.get("admin", "127.0.0.1:18791")
        admin = None if admin_raw in ("", "off", None, False) else parse_hostport(str(admin_raw), "admin")
        legacy = _creds(_table(d, "legacy"), "legacy", default_url="http://127.0.0.1:18789")
        candidate = _creds(_table(d, "candidate"), "candidate", default_url="")
        if mode != "passthrough" and not candidate.url:
            raise ConfigError(f"candidate.url: required in mode {mode!r}")
        canary = _table(d, "canary")
        _no_unknown(canary, {"percent", "sticky_header"}, "canary.")
        percent = _num(canary, "percent", 0.0, "canary.")
        if not 0.0 <= percent <= 100.0:
            raise ConfigError(f"canary.percent: expected 0..100, got {percent}")
        limits = _limits(_table(d, "limits"))
        record = _record(_table(d, "record"))
        policy_t = _table(d, "policy")
        policy: dict[str, str] = {}
        for k, v in policy_t.items():
            if v not in DECISIONS:
                raise ConfigError(f"policy.{k}: expected one of {', '.join(DECISIONS)}, got {v!r}")
            policy[str(k)] = str(v)
        return cls(
            mode=mode, listen=listen, admin=admin, legacy=legacy, candidate=candidate,
            canary_percent=percent, canary_header=_str(canary, "sticky_header", "x-parity-client", "canary."),
            limits=limits, record=record, policy=policy, dry_run=_bool(d, "dry_run", False),
            profile=_str(d, "profile", "openclaw"),
        )


def set_path(d: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b`` in a nested dict, creating tables (used for env and flag overrides)."""
    *head, last = path.split(".")
    cur = d
    for part in head:
        nxt = cur.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{part}: expected a table")
        cur = nxt
    cur[last] = value


def _no_unknown(d: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for k in d:
        if k not in known:
            raise ConfigError(f"{prefix}{k}: unknown key (known: {', '.join(sorted(known))})")


def _table(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = d.get(key, {})
    if not isinstance(v, Mapping):
        raise ConfigError(f"{key}: expected a table, got {type(v).__name__}")
    return v


def _str(d: Mapping[str, Any], key: str, default: str, prefix: str = "") -> str:
    v = d.get(key, default)
    if not isinstance(v, str):
        raise ConfigError(f"{prefix}{key}: expected a string, got {type(v).__name__}")
    return v


def _num(d: Mapping[str, Any], key: str, default: float, prefix: str = "") -> float:
    v = d.get(key, default)
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            raise ConfigError(f"{prefix}{key}: expected a number, got {v!r}") from None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{prefix}{key}: expected a number, got {type(v).__name__}")
    return float(v)


def _int(d: Mapping[str, Any], key: str, default: int, prefix: str, minimum: int = 0) -> int:
    v = d.get(key, default)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"{prefix}{key}: expected an integer ≥ {minimum}, got {v!r}")
    return v


def _bool(d: Mapping[str, Any], key: str, default: bool, prefix: str = "") -> bool:
    v = d.get(key, default)
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        v = v.lower() in ("1", "true", "yes", "on")
    if not isinstance(v, bool):
        raise ConfigError(f"{prefix}{key}: expected true or false, got {v!r}")
    return v


def _creds(t: Mapping[str, Any], name: str, *, default_url: str) -> Credentials:
    p = f"{name}."
    _no_unknown(t, {"url", "token", "password", "hook_token", "device_auth", "device_key"}, p)
    url = _str(t, "url", default_url, p)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{p}url: expected http(s)://host:port, got {url!r}")
    device_auth = _str(t, "device_auth", "token", p)
    if device_auth not in DEVICE_AUTH:
        raise ConfigError(f"{p}device_auth: expected one of {', '.join(DEVICE_AUTH)}, got {device_auth!r}")
    return Credentials(
        url=url.rstrip("/"), token=_str(t, "token", "", p), password=_str(t, "password", "", p),
        hook_token=_str(t, "hook_token", "", p), device_auth=device_auth, device_key=_str(t, "device_key", "", p),
    )


def _limits(t: Mapping[str, Any]) -> Limits:
    p = "limits."
    names = {f.name for f in fields(Limits)}
    _no_unknown(t, names, p)
    base = Limits()
    kw: dict[str, Any] = {}
    for f in fields(Limits):
        if f.name not in t:
            continue
        default = getattr(base, f.name)
        if f.name == "mirror_cpus":
            kw[f.name] = _str(t, f.name, default, p)
            parse_cpus(kw[f.name], p + f.name)
        elif isinstance(default, bool):
            kw[f.name] = _bool(t, f.name, default, p)
        elif isinstance(default, float):
            v = _num(t, f.name, default, p)
            if v < 0 or (v == 0 and f.name != "shed_lag_ms"):
                raise ConfigError(f"{p}{f.name}: must be > 0, got {v}")
            kw[f.name] = v
        else:
            minimum = 0 if f.name in ("rss_cap_mb", "connect_retries", "diff_workers", "mirror_nice") else 1
            kw[f.name] = _int(t, f.name, default, p, minimum)
            if f.name == "mirror_nice" and kw[f.name] > 19:
                raise ConfigError(f"{p}mirror_nice: expected 0..19, got {kw[f.name]}")
    limits = replace(base, **kw)
    for name in ("mirror_idle", "mirror_cpus"):
        if getattr(limits, name) and not limits.mirror_process:
            raise ConfigError(f"{p}{name}: applies to the mirror process; set {p}mirror_process = true too")
    return limits


def parse_cpus(text: str, key: str) -> frozenset[int]:
    """A Linux CPU list (``"1"``, ``"0,2-3"``; ``""`` = no restriction, the empty set)."""
    cpus: set[int] = set()
    for part in filter(None, (x.strip() for x in text.split(","))):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()) or (sep and int(hi) < int(lo)):
            raise ConfigError(f"{key}: expected a CPU list like \"1\" or \"0,2-3\", got {text!r} (at {part!r})")
        cpus.update(range(int(lo), int(hi if sep else lo) + 1))
    return frozenset(cpus)


def mirror_cpu_set(limits: Limits) -> frozenset[int]:
    """``limits.mirror_cpus`` as a set, checked against the CPUs this process may use (empty: no pinning)."""
    cpus = parse_cpus(limits.mirror_cpus, "limits.mirror_cpus")
    if not cpus:
        return cpus
    if not hasattr(os, "sched_getaffinity"):
        raise ConfigError("limits.mirror_cpus: pinning needs Linux (os.sched_setaffinity)")
    allowed = os.sched_getaffinity(0)
    if missing := cpus - allowed:
        raise ConfigError(f"limits.mirror_cpus: CPU {', '.join(map(str, sorted(missing)))} is not one this process "
                          f"may run on (allowed: {', '.join(map(str, sorted(allowed)))})")
    return cpus


def _record(t: Mapping[str, Any]) -> RecordConfig:
    p = "record."
    _no_unknown(t, {"trace_dir", "db", "sample_rate", "write_ahead", "write_ahead_path"}, p)
    rate = _num(t, "sample_rate", 1.0, p)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{p}sample_rate: expected 0..1, got {rate}")
    return RecordConfig(
        trace_dir=_str(t, "trace_dir", "", p), db=_str(t, "db", "", p), sample_rate=rate,
        write_ahead=_bool(t, "write_ahead", False, p), write_ahead_path=_str(t, "write_ahead_path", "", p),
    )
