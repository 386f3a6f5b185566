"""An Ed25519 device identity and the signed ``device`` block of an OpenClaw connect frame.

Owns the private key (``cryptography``) and signing. The payload strings come from ``wire.device``. A key is
generated per recording (and per replay target), never stored in a trace: only the public key and the
device id, which are not secrets, may appear there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from wire.device import b64url_decode, b64url_encode, device_id_from_public_key, payload_v3

logger = logging.getLogger(__name__)

__all__ = ["DeviceIdentity", "signature_token", "verify"]


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """One device key. ``generate()`` makes a fresh one."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key_raw(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def public_key(self) -> str:
        """base64url of the raw 32-byte key (43 characters)."""
        return b64url_encode(self.public_key_raw)

    @property
    def device_id(self) -> str:
        return device_id_from_public_key(self.public_key_raw)

    def sign(self, payload: str) -> str:
        """Ed25519 signature of the UTF-8 payload, base64url (86 characters)."""
        return b64url_encode(self.private_key.sign(payload.encode("utf-8")))

    def device_block(self, params: Mapping[str, Any], *, nonce: str, signed_at_ms: int) -> dict[str, Any]:
        """The signed v3 ``device`` object for connect ``params`` (client, role, scopes, auth already final)."""
        client = params.get("client") or {}
        payload = payload_v3(
            device_id=self.device_id,
            client_id=str(client.get("id", "")),
            client_mode=str(client.get("mode", "")),
            role=str(params.get("role") or "operator"),
            scopes=[str(s) for s in params.get("scopes") or []],
            signed_at_ms=signed_at_ms,
            token=signature_token(params),
            nonce=nonce,
            platform=client.get("platform"),
            device_family=client.get("deviceFamily"),
        )
        return {
            "id": self.device_id,
            "publicKey": self.public_key,
            "signature": self.sign(payload),
            "signedAt": signed_at_ms,
            "nonce": nonce,
        }


def signature_token(params: Mapping[str, Any]) -> str | None:
    """The credential that goes into the signed payload: ``auth.token``, else ``auth.deviceToken``."""
    auth = params.get("auth") or {}
    if not isinstance(auth, Mapping):
        return None
    for key in ("token", "deviceToken", "bootstrapToken"):
        value = auth.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def verify(public_key_b64url: str, payload: str, signature_b64url: str) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``payload`` by that key."""
    from cryptography.exceptions import InvalidSignature

    try:
        key = Ed25519PublicKey.from_public_bytes(b64url_decode(public_key_b64url))
        key.verify(b64url_decode(signature_b64url), payload.encode("utf-8"))
    except (InvalidSignature, ValueError):
        return False
    return True
