"""wire.device: the exact signed strings (reference section 3.4), device ids and base64url."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.device import (
    b64url_decode,
    b64url_encode,
    device_id_from_public_key,
    normalize_metadata,
    payload_v2,
    payload_v3,
)

ARGS = dict(device_id="ab" * 32, client_id="cli", client_mode="cli", role="operator",
            scopes=["operator.admin", "operator.read"], signed_at_ms=1795472466705, token="tok", nonce="n-1")


def test_v3_payload_is_the_documented_pipe_string() -> None:
    assert payload_v3(**ARGS, platform=" Linux ", device_family="Desktop") == (
        f"v3|{'ab' * 32}|cli|cli|operator|operator.admin,operator.read|1795472466705|tok|n-1|linux|desktop"
    )


def test_v3_missing_token_and_metadata_are_empty_fields() -> None:
    args = {**ARGS, "token": None}
    assert payload_v3(**args).endswith("|1795472466705||n-1||")


def test_v2_is_v3_without_the_metadata_fields() -> None:
    v2 = payload_v2(**ARGS)
    assert v2 == f"v2|{'ab' * 32}|cli|cli|operator|operator.admin,operator.read|1795472466705|tok|n-1"
    assert payload_v3(**ARGS).startswith("v3" + v2[2:] + "|")


def test_scopes_keep_the_requested_order() -> None:
    a = payload_v3(**{**ARGS, "scopes": ["b", "a"]})
    assert "|b,a|" in a


@pytest.mark.parametrize(("value", "expected"), [
    ("Linux", "linux"), ("  MacOS ", "macos"), ("ÄBC", "Äbc"), (None, ""), (3, ""), ("", ""), ("   ", ""),
])
def test_metadata_normalization_lowercases_ascii_only(value: object, expected: str) -> None:
    assert normalize_metadata(value) == expected


def test_device_id_is_hex_sha256_of_the_raw_key() -> None:
    raw = bytes(range(32))
    assert device_id_from_public_key(raw) == hashlib.sha256(raw).hexdigest()
    assert len(device_id_from_public_key(raw)) == 64


def test_device_id_rejects_a_key_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        device_id_from_public_key(b"short")


@given(st.binary(max_size=100))
def test_b64url_round_trip_without_padding(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == raw


def test_b64url_key_and_signature_lengths() -> None:
    assert len(b64url_encode(b"\x00" * 32)) == 43
    assert len(b64url_encode(b"\x00" * 64)) == 86


def test_b64url_decode_rejects_standard_alphabet() -> None:
    with pytest.raises(ValueError):
        b64url_decode("ab+/")
