"""Device identity: Ed25519 connect-signature verification, paired devices, device tokens, the gateway's own key.

Owns ``build_device_payload`` (the v2/v3 signed strings of reference §3.4), ``verify_device`` (the legacy's order
of checks and messages: id mismatch -> stale -> nonce missing -> nonce mismatch -> signature -> public key),
``DeviceStore`` (paired devices and issued device tokens, persisted as JSON under ``<state>/devices/``; loopback
devices are paired silently) and ``GatewayIdentity`` (the gateway's Ed25519 key in ``<state>/identity/``).
May import ``cryptography`` and the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wire.device import payload_v2, payload_v3

__all__ = [
    "DeviceCheck",
    "DeviceStore",
    "GatewayIdentity",
    "b64url",
    "build_device_payload",
    "device_id_for",
    "raw_public_key",
    "verify_device",
]

logger = logging.getLogger(__name__)

SKEW_MS = 10 * 60 * 1000
_DETAIL = {
    "device-id-mismatch": "DEVICE_AUTH_DEVICE_ID_MISMATCH",
    "device-signature-stale": "DEVICE_AUTH_SIGNATURE_EXPIRED",
    "device-nonce-missing": "DEVICE_AUTH_NONCE_REQUIRED",
    "device-nonce-mismatch": "DEVICE_AUTH_NONCE_MISMATCH",
    "device-signature": "DEVICE_AUTH_SIGNATURE_INVALID",
    "device-public-key": "DEVICE_AUTH_PUBLIC_KEY_INVALID",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    text = text.strip().replace("+", "-").replace("/", "_")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public_key(public_key: str) -> bytes | None:
    """The 32 raw key bytes from base64url or a PEM ``PUBLIC KEY`` block; ``None`` when invalid."""
    try:
        if "BEGIN" in public_key:
            key = serialization.load_pem_public_key(public_key.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                return None
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        raw = _b64url_decode(public_key)
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    return raw if len(raw) == 32 else None


def device_id_for(public_key: str) -> str | None:
    raw = raw_public_key(public_key)
    return None if raw is None else hashlib.sha256(raw).hexdigest()


def build_device_payload(
    version: str, *, device_id: str, client_id: str, client_mode: str, role: str, scopes: Sequence[str],
    signed_at_ms: int, token: str | None, nonce: str, platform: str | None = None, device_family: str | None = None,
) -> str:
    """The signed string (``wire.device``): v3 adds normalized platform and device family to v2."""
    if version == "v3":
        return payload_v3(device_id=device_id, client_id=client_id, client_mode=client_mode, role=role, scopes=scopes,
                          signed_at_ms=signed_at_ms, token=token, nonce=nonce, platform=platform,
                          device_family=device_family)
    return payload_v2(device_id=device_id, client_id=client_id, client_mode=client_mode, role=role, scopes=scopes,
                      signed_at_ms=signed_at_ms, token=token, nonce=nonce)


@dataclass(frozen=True, slots=True)
class DeviceCheck:
    ok: bool
    reason: str | None = None
    message: str | None = None
    public_key: str | None = None
    version: str | None = None

    def error(self) -> dict[str, Any]:
        return {"code": "INVALID_REQUEST", "message": self.message,
                "details": {"code": _DETAIL.get(self.reason or "", "DEVICE_AUTH_INVALID"), "reason": self.reason}}


def verify_device(device: Mapping[str, Any], params: Mapping[str, Any], *, role: str, scopes: Sequence[str],
                  nonce: str, now_ms: int | None = None) -> DeviceCheck:
    """Check a connect ``device`` block against the challenge ``nonce`` (reference §3.4)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    public_key = device.get("publicKey")
    derived = device_id_for(public_key) if isinstance(public_key, str) else None
    if derived is None or derived != device.get("id"):
        return DeviceCheck(False, "device-id-mismatch", "device identity mismatch")
    signed_at = device.get("signedAt")
    if isinstance(signed_at, bool) or not isinstance(signed_at, int | float) or abs(now_ms - signed_at) > SKEW_MS:
        return DeviceCheck(False, "device-signature-stale", "device signature expired")
    raw_nonce = device.get("nonce")
    given_nonce = raw_nonce.strip() if isinstance(raw_nonce, str) else ""
    if not given_nonce:
        return DeviceCheck(False, "device-nonce-missing", "device nonce required")
    if given_nonce != nonce:
        return DeviceCheck(False, "device-nonce-mismatch", "device nonce mismatch")
    raw = raw_public_key(public_key)  # type: ignore[arg-type]
    assert raw is not None
    client = params.get("client") or {}
    auth = params.get("auth") or {}
    token = auth.get("token") or auth.get("deviceToken") or auth.get("bootstrapToken")
    try:
        sig = _b64url_decode(str(device.get("signature", "")))
    except ValueError:
        sig = b""
    key = Ed25519PublicKey.from_public_bytes(raw)
    for version in ("v3", "v2"):
        for tok in dict.fromkeys([token, auth.get("token"), auth.get("deviceToken"), None]):
            payload = build_device_payload(
                version, device_id=derived, client_id=str(client.get("id", "")), client_mode=str(client.get("mode", "")),
                role=role, scopes=scopes, signed_at_ms=int(signed_at), token=tok, nonce=given_nonce,
                platform=client.get("platform"), device_family=client.get("deviceFamily"),
            )
            try:
                key.verify(sig, payload.encode("utf-8"))
            except (InvalidSignature, ValueError):
                continue
            return DeviceCheck(True, public_key=b64url(raw), version=version)
    return DeviceCheck(False, "device-signature", "device signature invalid")


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.error("%s unreadable (%s); starting empty", path, exc)
        return None


def _norm_metadata(value: Any) -> str:
    """The legacy's ``normalizeDeviceMetadataForAuth``: trimmed, ASCII upper case lowered; non-strings are empty."""
    if not isinstance(value, str):
        return ""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in value.strip())


def metadata_changed(entry: Mapping[str, Any], client: Mapping[str, Any]) -> bool:
    """Whether ``client`` claims another platform or device family than the paired ``entry`` pinned (the legacy's
    ``resolvePinnedClientMetadata`` for the clients pyclaw serves: no native-app or node-host platform refreshes).
    A change needs re-approval (``NOT_PAIRED`` reason ``metadata-upgrade``)."""
    for key in ("platform", "deviceFamily"):
        pinned = _norm_metadata(entry.get(key))
        if pinned and pinned != _norm_metadata(client.get(key)):
            return True
    return False


class DeviceStore:
    """Paired devices and their device tokens. Tokens are stored as SHA-256 digests, never in clear."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "devices" / "paired.json"
        data = _read_json(self.path)
        self._paired: dict[str, dict[str, Any]] = data if isinstance(data, dict) else {}

    def _save(self) -> None:
        _write_json(self.path, self._paired)

    def get(self, device_id: str) -> dict[str, Any] | None:
        return self._paired.get(device_id)

    def pair(self, device_id: str, public_key: str, *, role: str, scopes: Sequence[str], client: Mapping[str, Any],
             approved_via: str = "silent") -> dict[str, Any]:
        now = int(time.time() * 1000)
        entry = self._paired.get(device_id) or {"deviceId": device_id, "createdAtMs": now}
        granted = sorted(set(entry.get("scopes", [])) | set(scopes))
        roles = sorted(set(entry.get("roles", [])) | {role})
        entry.update({
            "publicKey": public_key, "role": role, "roles": roles, "scopes": granted, "approvedScopes": granted,
            "clientId": client.get("id"), "clientMode": client.get("mode"),
            "displayName": client.get("displayName"), "approvedVia": entry.get("approvedVia", approved_via),
            "approvedAtMs": entry.get("approvedAtMs", now), "lastSeenAtMs": now, "lastSeenReason": "connect",
        })
        # platform and device family are pinned at first pairing (``metadata_changed`` guards later connects)
        for key in ("platform", "deviceFamily"):
            if key not in entry and isinstance(client.get(key), str) and client[key].strip():
                entry[key] = client[key]
        self._paired[device_id] = entry
        self._save()
        return entry

    def issue_token(self, device_id: str, role: str, scopes: Sequence[str]) -> dict[str, Any]:
        token = b64url(secrets.token_bytes(32))
        now = int(time.time() * 1000)
        entry = self._paired[device_id]
        entry.setdefault("tokens", {})[role] = {
            "sha256": hashlib.sha256(token.encode()).hexdigest(), "scopes": list(scopes), "issuedAtMs": now,
        }
        self._save()
        return {"token": token, "role": role, "scopes": list(scopes), "issuedAtMs": now}

    def verify_token(self, device_id: str | None, token: str | None, role: str, scopes: Sequence[str]) -> str | None:
        """``None`` when ``token`` is this device's token for ``role`` covering ``scopes``; else the failure reason."""
        if not device_id or not token:
            return "device_token_mismatch"
        rec = ((self._paired.get(device_id) or {}).get("tokens") or {}).get(role)
        if rec is None or not hmac.compare_digest(rec["sha256"], hashlib.sha256(token.encode()).hexdigest()):
            return "device_token_mismatch"
        if not set(scopes) <= set(rec.get("scopes", [])) and "operator.admin" not in rec.get("scopes", []):
            return "scope_mismatch"
        return None

    def list_paired(self) -> list[dict[str, Any]]:
        out = []
        for entry in self._paired.values():
            public = {k: v for k, v in entry.items() if k not in ("tokens", "approvedScopes", "displayName")}
            public["tokens"] = [
                {"role": r, "scopes": sorted(t.get("scopes", [])), "createdAtMs": t.get("issuedAtMs")}
                for r, t in (entry.get("tokens") or {}).items()
            ]
            out.append(public)
        return out


class GatewayIdentity:
    """The gateway's own Ed25519 identity, persisted in ``<state>/identity/device.json``."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key = b64url(raw)
        self.device_id = hashlib.sha256(raw).hexdigest()

    @classmethod
    def load_or_create(cls, state_dir: Path) -> GatewayIdentity:
        path = Path(state_dir) / "identity" / "device.json"
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("privateKeyPem"), str):
            key = serialization.load_pem_private_key(data["privateKeyPem"].encode(), password=None)
            if isinstance(key, Ed25519PrivateKey):
                return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        ident = cls(key)
        _write_json(path, {"version": 1, "deviceId": ident.device_id, "publicKey": ident.public_key,
                           "privateKeyPem": pem.decode(), "createdAtMs": int(time.time() * 1000)})
        return ident

    def sign(self, payload: str) -> str:
        return b64url(self._key.sign(payload.encode("utf-8")))
