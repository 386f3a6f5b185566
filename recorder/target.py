"""Where a recording or a replay goes: the gateway's URL and the credentials to use there.

Owns :class:`Target`. A trace never holds credentials; placeholders (``<GW_TOKEN>``, ``<GW_PASSWORD>``,
``<HOOK_TOKEN>``) stand for them, and a ``Target`` supplies the live values again when a trace is replayed
or a scenario runs. Imports only the stdlib, ``wire`` and ``recorder.identity``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from recorder.identity import DeviceIdentity
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PLACEHOLDERS", "Target"]

#: Redactor placeholder name -> Target attribute. The recorder redacts with these names, the replayer
#: substitutes them back.
PLACEHOLDERS: dict[str, str] = {"GW_TOKEN": "token", "GW_PASSWORD": "password", "HOOK_TOKEN": "hook_token"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """A gateway to record from or replay to.

    Args:
        url: base URL, ``http://127.0.0.1:18789`` or ``ws://127.0.0.1:18789`` (either scheme; both are derived).
        token: the gateway token (``gateway.auth.token``), if the gateway runs in token mode.
        password: the gateway password, if it runs in password mode.
        hook_token: the hooks token (``hooks.token``).
        identity: the Ed25519 device key used to sign connects to this target; generated when not given.
        name: a label for reports (``legacy``, ``candidate``).
        auth_mode: ``token`` or ``password``: which mode the target gateway runs in.
    """

    url: str
    token: str | None = None
    password: str | None = None
    hook_token: str | None = None
    identity: DeviceIdentity = field(default_factory=DeviceIdentity.generate, repr=False)
    name: str = ""
    auth_mode: str = "token"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise ConfigError(f"target url: expected http(s):// or ws(s)://host:port, got {self.url!r}")
        if self.auth_mode not in ("token", "password", "none"):
            raise ConfigError(f"target auth_mode: expected token, password or none, got {self.auth_mode!r}")

    def _base(self, secure_scheme: str, plain_scheme: str) -> str:
        parts = urlsplit(self.url)
        scheme = secure_scheme if parts.scheme in ("https", "wss") else plain_scheme
        return urlunsplit((scheme, parts.netloc, "", "", "")).rstrip("/")

    @property
    def http_base(self) -> str:
        return self._base("https", "http")

    @property
    def ws_base(self) -> str:
        return self._base("wss", "ws")

    def http_url(self, path: str) -> str:
        return self.http_base + (path if path.startswith("/") else "/" + path)

    def ws_url(self, path: str = "/") -> str:
        return self.ws_base + (path if path.startswith("/") else "/" + path)

    def secrets(self) -> dict[str, str]:
        """Placeholder name -> live value, for ``wire.redact.Redactor`` (empty values left out)."""
        out: dict[str, str] = {}
        for name, attr in PLACEHOLDERS.items():
            value = getattr(self, attr)
            if value:
                out[name] = value
        return out

    def substitute(self, text: str) -> str:
        """Put the live credentials back where a trace has ``<GW_TOKEN>``-style placeholders."""
        for name, attr in PLACEHOLDERS.items():
            marker = f"<{name}>"
            if marker in text:
                text = text.replace(marker, getattr(self, attr) or "")
        return text
