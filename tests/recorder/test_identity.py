"""recorder.identity: Ed25519 keys, signatures that verify, and the signed device block."""

from __future__ import annotations

from recorder.identity import DeviceIdentity, signature_token, verify
from wire.device import b64url_decode, device_id_from_public_key, payload_v3

PARAMS = {"client": {"id": "cli", "mode": "cli", "platform": "Linux"}, "role": "operator",
          "scopes": ["operator.read"], "auth": {"token": "tok"}}


def test_device_block_is_signed_over_the_v3_payload() -> None:
    ident = DeviceIdentity.generate()
    block = ident.device_block(PARAMS, nonce="nonce-1", signed_at_ms=123)
    assert block["id"] == ident.device_id == device_id_from_public_key(b64url_decode(block["publicKey"]))
    assert len(block["publicKey"]) == 43 and len(block["signature"]) == 86
    assert block["signedAt"] == 123 and block["nonce"] == "nonce-1"
    payload = payload_v3(device_id=ident.device_id, client_id="cli", client_mode="cli", role="operator",
                         scopes=["operator.read"], signed_at_ms=123, token="tok", nonce="nonce-1", platform="Linux")
    assert verify(block["publicKey"], payload, block["signature"])


def test_a_signature_does_not_verify_for_another_nonce_or_key() -> None:
    a, b = DeviceIdentity.generate(), DeviceIdentity.generate()
    sig = a.sign("v3|x|nonce-1")
    assert verify(a.public_key, "v3|x|nonce-1", sig)
    assert not verify(a.public_key, "v3|x|nonce-2", sig)
    assert not verify(b.public_key, "v3|x|nonce-1", sig)
    assert not verify(a.public_key, "v3|x|nonce-1", "not base64!")


def test_each_generated_identity_is_distinct() -> None:
    assert DeviceIdentity.generate().device_id != DeviceIdentity.generate().device_id


def test_signature_token_prefers_token_then_device_token() -> None:
    assert signature_token({"auth": {"token": "t", "deviceToken": "d"}}) == "t"
    assert signature_token({"auth": {"deviceToken": "d"}}) == "d"
    assert signature_token({"auth": {"password": "p"}}) is None
    assert signature_token({}) is None
