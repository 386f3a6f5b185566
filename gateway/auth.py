"""Shared-secret auth, locality and the failed-auth rate limiter, as the legacy 2026.9.6 applies them.

Owns: ``AuthResult``, ``RateLimiter`` (sliding window keyed by (scope, ip); maxAttempts 10 / window 60 s /
lockout 300 s / loopback exempt by default), ``Authenticator`` (timing-safe shared-secret check for WS connects and
HTTP bearers, the wrong-secret delay, the legacy's ``unauthorized: …`` messages, ``details`` and
``recommendedNextStep``), and the locality rules of reference §3.3. Device signatures live in
``gateway.device``. May import aiohttp (types only), the standard library and ``gateway.config``.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config import GatewayConfig, RateLimitSettings

__all__ = [
    "AuthFailure",
    "AuthResult",
    "Authenticator",
    "RateLimiter",
    "auth_failure_message",
    "is_loopback",
]

logger = logging.getLogger(__name__)

SCOPE_SHARED_SECRET = "shared-secret"
SCOPE_DEVICE_TOKEN = "device-token"
SCOPE_HOOK_AUTH = "hook-auth"

_DETAIL_CODES = {
    "token_missing": "AUTH_TOKEN_MISSING",
    "token_mismatch": "AUTH_TOKEN_MISMATCH",
    "token_missing_config": "AUTH_TOKEN_NOT_CONFIGURED",
    "password_missing": "AUTH_PASSWORD_MISSING",
    "password_mismatch": "AUTH_PASSWORD_MISMATCH",
    "password_missing_config": "AUTH_PASSWORD_NOT_CONFIGURED",
    "rate_limited": "AUTH_RATE_LIMITED",
    "device_token_mismatch": "AUTH_DEVICE_TOKEN_MISMATCH",
    "scope_mismatch": "AUTH_SCOPE_MISMATCH",
    "trusted_proxy_user_missing": "AUTH_TRUSTED_PROXY_USER_MISSING",
}
_NEXT_STEP = {
    "token_missing": "update_auth_configuration",
    "token_missing_config": "update_auth_configuration",
    "password_missing": "update_auth_configuration",
    "password_missing_config": "update_auth_configuration",
    "token_mismatch": "update_auth_credentials",
    "password_mismatch": "update_auth_credentials",
    "device_token_mismatch": "update_auth_credentials",
    "scope_mismatch": "review_auth_configuration",
    "rate_limited": "wait_then_retry",
}


@functools.lru_cache(maxsize=4096)
def is_loopback(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def secret_equal(given: str | None, expected: str | None) -> bool:
    """Timing-safe comparison; ``None`` never matches."""
    if given is None or expected is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class AuthResult:
    """The outcome of one credential check. ``reason`` is the legacy's authReason on failure."""

    ok: bool
    method: str | None = None
    reason: str | None = None
    rate_limited: bool = False
    retry_after_ms: int | None = None
    user: str | None = None


@dataclass
class _Bucket:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class RateLimiter:
    """In-memory sliding-window limiter for failed auth attempts, keyed by (scope, client ip)."""

    def __init__(self, settings: RateLimitSettings, *, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def _exempt(self, ip: str, scope: str) -> bool:
        return self.settings.exempt_loopback and scope != SCOPE_HOOK_AUTH and is_loopback(ip)

    def retry_after_ms(self, ip: str, scope: str) -> int | None:
        """Milliseconds until ``ip`` may try again, or ``None`` when it is not locked out."""
        if self._exempt(ip, scope):
            return None
        b = self._buckets.get((scope, ip))
        now = self._clock()
        if b is None or b.locked_until <= now:
            return None
        return max(1, int((b.locked_until - now) * 1000))

    def record_failure(self, ip: str, scope: str) -> None:
        if self._exempt(ip, scope):
            return
        now = self._clock()
        b = self._buckets.setdefault((scope, ip), _Bucket())
        window = self.settings.window_ms / 1000
        b.failures = [t for t in b.failures if now - t < window]
        b.failures.append(now)
        if len(b.failures) >= self.settings.max_attempts:
            b.locked_until = now + self.settings.lockout_ms / 1000
            b.failures.clear()
            logger.warning("auth rate limit: %s locked out for scope %s", ip, scope)
        if len(self._buckets) > 10_000:  # bounded memory: forget the oldest keys
            for key in list(self._buckets)[:1000]:
                del self._buckets[key]

    def reset(self, ip: str, scope: str) -> None:
        self._buckets.pop((scope, ip), None)


def client_kind(client: Mapping[str, Any] | None) -> str:
    client = client or {}
    if client.get("id") == "cli" or client.get("mode") == "cli":
        return "cli"
    if client.get("id") in ("openclaw-control-ui",) or client.get("mode") == "ui":
        return "ui"
    if client.get("id") in ("webchat", "webchat-ui") or client.get("mode") == "webchat":
        return "webchat"
    return "other"


def auth_failure_message(reason: str | None, mode: str, provided: str, client: Mapping[str, Any] | None, local: bool) -> str:
    """The legacy's ``formatGatewayAuthFailureMessage`` (``ws-connection/auth-messages.ts``)."""
    kind = client_kind(client)
    ui = kind in ("ui", "webchat")
    ui_hint = "open the dashboard URL and paste the token in Control UI settings"
    missing_ui = "paste in Control UI settings or openclaw doctor --generate-gateway-token; restart"
    if kind == "cli":
        token_hint = "use this gateway's gateway.auth.token or pair the device" if local else "set gateway.remote.token to match gateway.auth.token"
        pw_hint = "use this gateway's gateway.auth.password" if local else "set gateway.remote.password to match gateway.auth.password"
    elif ui:
        token_hint, pw_hint = ui_hint, "enter the password in Control UI settings"
    else:
        token_hint, pw_hint = "provide gateway auth token", "provide gateway auth password"
    fixed = {
        "token_missing": f"unauthorized: gateway token missing ({missing_ui if ui else token_hint})",
        "token_mismatch": f"unauthorized: gateway token mismatch ({token_hint})",
        "token_missing_config": "unauthorized: gateway token not configured on gateway (set gateway.auth.token)",
        "password_missing": f"unauthorized: gateway password missing ({pw_hint})",
        "password_mismatch": f"unauthorized: gateway password mismatch ({pw_hint})",
        "password_missing_config": "unauthorized: gateway password not configured on gateway (set gateway.auth.password)",
        "rate_limited": "unauthorized: too many failed authentication attempts (retry later)",
        "device_token_mismatch": "unauthorized: device token mismatch (rotate/reissue device token)",
        "scope_mismatch": "unauthorized: device token scope mismatch (re-pair or approve scope upgrade)",
    }
    if reason in fixed:
        return fixed[reason]
    if mode == "token" and provided == "none":
        return f"unauthorized: gateway token missing ({token_hint})"
    if mode == "token" and provided == "device-token":
        return "unauthorized: device token rejected (pair/repair this device, or provide gateway token)"
    if mode == "password" and provided == "none":
        return f"unauthorized: gateway password missing ({pw_hint})"
    return "unauthorized"


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """A connect-time auth failure rendered as the legacy's error object."""

    message: str
    details: dict[str, Any]
    retry_after_ms: int | None = None

    def error(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": "INVALID_REQUEST", "message": self.message}
        if self.retry_after_ms is not None:
            err["retryable"] = True
            err["retryAfterMs"] = self.retry_after_ms
        err["details"] = self.details
        return err


def provided_kind(auth: Mapping[str, Any] | None) -> str:
    auth = auth or {}
    if auth.get("password"):
        return "password"
    if auth.get("token"):
        return "token"
    if auth.get("deviceToken"):
        return "device-token"
    if auth.get("bootstrapToken"):
        return "bootstrap-token"
    return "none"


class Authenticator:
    """Checks shared secrets for WS connects and HTTP bearers against the resolved ``AuthSettings``."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.settings = config.auth
        self.limiter = RateLimiter(config.auth.rate_limit)

    @staticmethod
    async def failure_delay() -> None:
        """The legacy delays wrong-secret answers (0.27–0.53 s observed); this sleeps without blocking others."""
        await asyncio.sleep(random.uniform(0.27, 0.5))

    def check_shared_secret(self, token: str | None, password: str | None, ip: str, headers: Mapping[str, str] | None = None) -> AuthResult:
        """Check connect/HTTP credentials. Does not sleep; callers add ``failure_delay`` on mismatch."""
        s = self.settings
        retry = self.limiter.retry_after_ms(ip, SCOPE_SHARED_SECRET)
        if retry is not None:
            return AuthResult(False, reason="rate_limited", rate_limited=True, retry_after_ms=retry)
        if s.mode == "none":
            return AuthResult(True, method="none")
        if s.mode == "trusted-proxy":
            return self._trusted_proxy(ip, headers or {})
        if s.mode == "password":
            if not s.password:
                return AuthResult(False, reason="password_missing_config")
            given = password or token
            if not given:
                return AuthResult(False, reason="password_missing")
            if secret_equal(given, s.password):
                return AuthResult(True, method="password")
            self.limiter.record_failure(ip, SCOPE_SHARED_SECRET)
            return AuthResult(False, reason="password_mismatch")
        if not s.token:
            return AuthResult(False, reason="token_missing_config")
        given = token or password
        if not given:
            return AuthResult(False, reason="token_missing")
        if secret_equal(given, s.token):
            return AuthResult(True, method="token")
        self.limiter.record_failure(ip, SCOPE_SHARED_SECRET)
        return AuthResult(False, reason="token_mismatch")

    def _trusted_proxy(self, ip: str, headers: Mapping[str, str]) -> AuthResult:
        tp = self.settings.trusted_proxy or {}
        proxies = self.config.trusted_proxies
        if ip not in proxies and not (tp.get("allowLoopback") and is_loopback(ip)):
            return AuthResult(False, reason="trusted_proxy_untrusted_source")
        lower = {k.lower(): v for k, v in headers.items()}
        for h in tp.get("requiredHeaders") or ():
            if not lower.get(h.lower()):
                return AuthResult(False, reason=f"trusted_proxy_missing_header_{h.lower()}")
        user = lower.get(str(tp.get("userHeader", "")).lower())
        if not user:
            return AuthResult(False, reason="trusted_proxy_user_missing")
        allow = tp.get("allowUsers") or []
        if allow and user not in allow:
            return AuthResult(False, reason="trusted_proxy_user_not_allowed")
        return AuthResult(True, method="trusted-proxy", user=user)

    def connect_failure(
        self, result: AuthResult, auth: Mapping[str, Any] | None, client: Mapping[str, Any] | None,
        *, has_device: bool, local: bool,
    ) -> AuthFailure:
        provided = provided_kind(auth)
        reason = result.reason
        can_retry = reason == "token_mismatch" and has_device and provided == "token" and not (auth or {}).get("deviceToken")
        step = "retry_with_device_token" if can_retry else _NEXT_STEP.get(reason or "", "review_auth_configuration")
        details = {
            "code": _DETAIL_CODES.get(reason or "", "AUTH_UNAUTHORIZED"),
            "authReason": reason,
            "canRetryWithDeviceToken": can_retry,
            "recommendedNextStep": step,
        }
        message = auth_failure_message(reason, self.settings.mode, provided, client, local)
        return AuthFailure(message, details, result.retry_after_ms if result.rate_limited else None)

    def check_http_bearer(self, request: Any) -> AuthResult:
        """``Authorization: Bearer <x>``: x is tried as the gateway token and as the password (§3.7)."""
        ip = peer_ip(request)
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        s = self.settings
        if s.mode == "token":
            return self.check_shared_secret(bearer, None, ip)
        if s.mode == "password":
            return self.check_shared_secret(None, bearer, ip)
        return self.check_shared_secret(bearer, bearer, ip, request.headers)

    def is_local_request(self, peer: str | None, headers: Mapping[str, str]) -> bool:
        """Reference §3.3 "local direct": loopback peer, local Host, no proxy headers from an untrusted peer."""
        if not is_loopback(peer):
            return False
        lower = {k.lower() for k in headers}
        proxied = bool(lower & {"x-forwarded-for", "x-real-ip", "x-forwarded-host"})
        if proxied and peer not in self.config.trusted_proxies:
            logger.warning("proxy headers from untrusted peer %s; treating the request as remote", peer)
            return False
        host = headers.get("Host", "") or headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]", 1)[0]
        return hostname in ("localhost", "127.0.0.1", "::1", "") or hostname.endswith(".ts.net") or is_loopback(hostname)


def peer_ip(request: Any) -> str:
    """The TCP peer address of an aiohttp request ('' when unknown)."""
    transport = getattr(request, "transport", None)
    if transport is not None:
        info = transport.get_extra_info("peername")
        if info:
            return str(info[0])
    return str(getattr(request, "remote", "") or "")
