"""Redaction: configured secrets by value, secret-bearing headers and keys by position."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire.model import Direction, Kind, Observation
from wire.redact import Redactor

TOKEN = "a" * 8 + "0123456789abcdef0123456789abcdef01234567"
HOOK = "f" * 48
R = Redactor({"GW_TOKEN": TOKEN, "HOOK_TOKEN": HOOK})


def _ws(text: str) -> Observation:
    return Observation(t=0.0, conn="c1", dir=Direction.C2S, kind=Kind.WS_TEXT, data=text)


def test_connect_frame_token_becomes_placeholder_and_signature_masked() -> None:
    frame = {
        "type": "req", "id": "1", "method": "connect",
        "params": {"auth": {"token": TOKEN}, "device": {"id": "d", "signature": "sig-xyz", "nonce": "n"}},
    }
    out = R.observation(_ws(json.dumps(frame)))
    assert TOKEN not in (out.data or "")
    assert "sig-xyz" not in (out.data or "")
    decoded = json.loads(out.data or "")
    assert decoded["params"]["auth"]["token"] == "<GW_TOKEN>"
    assert decoded["params"]["device"]["signature"] == "<REDACTED>"
    assert decoded["params"]["device"]["nonce"] == "n"  # not a secret: kept


def test_text_without_secret_keys_keeps_exact_bytes() -> None:
    raw = '{"type":"res",  "id":"x","ok":true}'
    assert R.observation(_ws(raw)).data == raw


def test_headers_known_and_unknown_secrets() -> None:
    obs = Observation(
        t=0.0, conn="h1", dir=Direction.C2S, kind=Kind.HTTP_REQUEST, method="POST", path=f"/hooks/wake?token={HOOK}",
        headers=(("Authorization", f"Bearer {TOKEN}"), ("X-OpenClaw-Token", "unknown-secret"), ("Accept", "*/*")),
    )
    out = R.observation(obs)
    assert out.path == "/hooks/wake?token=<HOOK_TOKEN>"
    assert out.header("authorization") == "Bearer <GW_TOKEN>"
    assert out.header("x-openclaw-token") == "<REDACTED>"
    assert out.header("accept") == "*/*"


def test_malformed_json_with_secret_key_is_still_masked() -> None:
    out = R.observation(_ws('{"auth":{"password":"hunter2"}, oops'))
    assert "hunter2" not in (out.data or "")


def test_close_reason_and_binary_payload() -> None:
    obs = Observation(t=1.0, conn="c1", dir=Direction.S2C, kind=Kind.WS_CLOSE, code=1008, reason=f"bad {TOKEN}")
    assert R.observation(obs).reason == "bad <GW_TOKEN>"
    binobs = Observation(t=1.0, conn="c1", dir=Direction.S2C, kind=Kind.WS_BINARY, data_b64=b"\xff" + TOKEN.encode())
    assert TOKEN.encode() not in (R.observation(binobs).data_b64 or b"")


def test_longest_secret_wins_when_one_contains_another() -> None:
    r = Redactor({"SHORT": "abc", "LONG": "abcdef"})
    assert r.text("xx abcdef yy abc") == "xx <LONG> yy <SHORT>"


@pytest.mark.parametrize("empty", ["", None])
def test_empty_secret_values_are_ignored(empty: str | None) -> None:
    r = Redactor({"GW_PASSWORD": empty or ""})
    assert r.text("unchanged") == "unchanged"


@given(st.text(max_size=200))
def test_no_configured_secret_survives_any_text(prefix: str) -> None:
    s = prefix + TOKEN + prefix + HOOK
    out = R.text(s)
    assert TOKEN not in out and HOOK not in out


def test_value_redacts_lists_keeps_scalars_and_names_known_secrets_by_position() -> None:
    from wire.redact import Redactor as _R

    r = _R({"GW_TOKEN": "sek"})
    assert r.value({"token": "sek", "list": [1, "a sek b", None], "n": 1.5, "password": "other"}) == {
        "token": "<GW_TOKEN>", "list": [1, "a <GW_TOKEN> b", None], "n": 1.5, "password": "<REDACTED>"}
