"""Device-identity strings of the OpenClaw handshake: signature payloads, device ids, base64url.

Owns the exact text a device signs when it connects (reference section 3.4) and the id derived from its key.
Pure and stdlib only (hashlib, base64): the key itself and the Ed25519 signing live in ``recorder.identity``,
which holds the ``cryptography`` import.

The signed string is the fields below joined by ``|`` (``openclaw/openclaw: src/gateway/device-auth.ts``,
``buildDeviceAuthPayloadV3``)::

    v3|<deviceId>|<client.id>|<client.mode>|<role>|<scopes joined by ,>|<signedAtMs>|<token or "">|<nonce>|<platform>|<deviceFamily>

``platform`` and ``deviceFamily`` are trimmed and ASCII-lowercased (``normalizeDeviceMetadataForAuth``); a
missing value is the empty string. ``v2`` is the same without the last two fields.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

__all__ = [
    "b64url_decode",
    "b64url_encode",
    "device_id_from_public_key",
    "normalize_metadata",
    "payload_v2",
    "payload_v3",
]


def b64url_encode(raw: bytes) -> str:
    """base64url without padding, as OpenClaw writes public keys and signatures."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url_encode`; accepts missing padding. Raises ``ValueError`` on bad input."""
    if any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=" for c in text):
        raise ValueError(f"not base64url: {text[:20]!r}")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def device_id_from_public_key(raw_public_key: bytes) -> str:
    """Lowercase hex SHA-256 of the raw 32-byte Ed25519 public key (64 characters)."""
    if len(raw_public_key) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw_public_key)}")
    return hashlib.sha256(raw_public_key).hexdigest()


def normalize_metadata(value: object) -> str:
    """``platform``/``deviceFamily`` as signed: trimmed, A-Z lowercased only; non-strings become ``""``."""
    if not isinstance(value, str):
        return ""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in value.strip())


def payload_v2(
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: Sequence[str],
    signed_at_ms: int,
    token: str | None,
    nonce: str,
) -> str:
    """The v2 signature payload (still accepted by 2026.9.6; ``openclaw-node`` signs it)."""
    return "|".join(
        ["v2", device_id, client_id, client_mode, role, ",".join(scopes), str(signed_at_ms), token or "", nonce]
    )


def payload_v3(
    *,
    device_id: str,
    client_id: str,
    client_mode: str,
    role: str,
    scopes: Sequence[str],
    signed_at_ms: int,
    token: str | None,
    nonce: str,
    platform: object = None,
    device_family: object = None,
) -> str:
    """The v3 signature payload: v2 plus the normalized platform and device family."""
    v2 = payload_v2(
        device_id=device_id,
        client_id=client_id,
        client_mode=client_mode,
        role=role,
        scopes=scopes,
        signed_at_ms=signed_at_ms,
        token=token,
        nonce=nonce,
    )
    return "|".join(["v3" + v2[2:], normalize_metadata(platform), normalize_metadata(device_family)])
