"""The secondary leg's side of the OpenClaw connect handshake, done by the proxy itself.

Owns :class:`Handshaker`: it waits for the secondary leg's own ``connect.challenge`` (reference §2.3) and turns
the client's ``connect`` request into one for that leg:

- ``params.auth`` is replaced whole by the secondary leg's own credentials from config (``token`` or
  ``password``). The client's secrets -- the legacy gateway token, a legacy-issued ``deviceToken``, a bootstrap
  token -- are never forwarded.
- A device-signed connect cannot be replayed to a second gateway: the nonce is part of the signed string
  (§3.4). With ``device_auth = "resign"`` the ``device`` block is rebuilt and signed with the proxy's own device
  key over the secondary's nonce and ``ts``; with ``"token"`` (default) it is removed (downgrade to token auth).
- Everything else (client info, role, scopes, caps, locale, the request id) is kept as the client sent it, so
  the two legs answer the same question.

:func:`rewrite_secrets` maps legacy secrets to the secondary's inside any other mirrored payload.
Signing comes from ``recorder.identity`` (Ed25519, ``cryptography``), the signed strings from ``wire.device``.
May import: stdlib, ``wire``, ``recorder.identity``, ``shadow.config``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from recorder.identity import DeviceIdentity
from shadow.config import Credentials
from wire.errors import ConfigError
from wire.frames import parse_frame
from wire.model import Event, Req

logger = logging.getLogger(__name__)

__all__ = ["Handshaker", "challenge_of", "load_identity", "rewrite_secrets", "secret_pairs"]


def load_identity(path: str) -> DeviceIdentity:
    """The proxy's device key: a PEM Ed25519 private key at ``path``, or a fresh one when ``path`` is empty."""
    if not path:
        return DeviceIdentity.generate()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"candidate.device_key: cannot load {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"candidate.device_key: {path} is not an Ed25519 private key")
    return DeviceIdentity(key)


def challenge_of(text: str) -> dict[str, Any] | None:
    """The payload of a ``connect.challenge`` event, or ``None`` when ``text`` is not one."""
    frame = parse_frame(text)
    if isinstance(frame, Event) and frame.event == "connect.challenge":
        payload = frame.value.get("payload")
        return payload if isinstance(payload, dict) else {}
    return None


def secret_pairs(secondary: Credentials, primary: Credentials) -> tuple[tuple[str, str], ...]:
    """(primary secret, secondary secret) for every secret the primary leg has."""
    pairs = [(primary.token, secondary.token), (primary.password, secondary.password),
             (primary.hook_token, secondary.hook_token)]
    return tuple((a, b) for a, b in pairs if a and a != b)


def rewrite_secrets(text: str, pairs: tuple[tuple[str, str], ...]) -> str:
    """Replace each (primary secret, secondary secret) by value. Cheap when none occurs."""
    for old, new in pairs:
        if old and old in text:
            text = text.replace(old, new)
    return text


class Handshaker:
    """Rewrites the client's connect for one secondary leg.

    Args:
        creds: the secondary leg's credentials (``[candidate]`` in shadow mode, ``[legacy]`` when the candidate
            is primary).
        primary: the primary leg's credentials (only used to recognise its secrets in other frames).
        identity: the proxy's device key (``device_auth = "resign"``); generated when ``None``.
    """

    def __init__(self, creds: Credentials, primary: Credentials, identity: DeviceIdentity | None = None) -> None:
        self.creds = creds
        self.identity = identity if identity is not None else (
            load_identity(creds.device_key) if creds.device_auth == "resign" else None)
        self.secret_pairs = secret_pairs(creds, primary)

    def auth(self) -> dict[str, str]:
        if self.creds.token:
            return {"token": self.creds.token}
        if self.creds.password:
            return {"password": self.creds.password}
        return {}

    def rewrite_connect(self, text: str, challenge: dict[str, Any]) -> str | None:
        """The connect request for the secondary leg, or ``None`` when ``text`` is not a connect request
        (then the caller forwards the frame as it is, after :func:`rewrite_secrets`).
        """
        frame = parse_frame(text)
        if not isinstance(frame, Req) or frame.method != "connect":
            return None
        value = dict(frame.value)
        params = value.get("params")
        if not isinstance(params, dict):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        params = dict(params)
        params["auth"] = self.auth()
        if "device" in params:
            if self.creds.device_auth == "resign" and self.identity is not None:
                nonce = str(challenge.get("nonce", ""))
                ts = challenge.get("ts")
                signed_at = int(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) else int(time.time() * 1000)
                params["device"] = self.identity.device_block(params, nonce=nonce, signed_at_ms=signed_at)
            else:
                del params["device"]
        value["params"] = params
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
