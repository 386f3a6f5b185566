"""The validator's fast yes/no path (``_ok``) agrees with the full error-collecting walk on every input.

``validate`` answers valid frames from ``_ok`` alone and only walks for messages when it says no, so a
disagreement would either let an invalid connect through or reject a valid one with no message.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_gw_fuzz import JSON

from gateway.protocol import CONNECT_PARAMS, REQUEST_FRAME, _ok, _walk, validate

BASE: dict[str, Any] = {
    "minProtocol": 4, "maxProtocol": 4,
    "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
    "role": "operator", "scopes": ["operator.read"], "auth": {"token": "x"}, "caps": ["a"],
    "permissions": {"a": True}, "modelCatalog": {"agentId": "a"},
    "device": {"id": "d", "publicKey": "p", "signature": "s", "signedAt": 1, "nonce": "n"},
}
KEYS = [*BASE, "locale", "bogus", "pathEnv", "computerUse"]
ODD = st.sampled_from([4, 0, "", "cli", ["x"], [""], {"id": "cli"}, {"shortId": "s"}, {"a": 1}])


def _errors(schema: Any, value: Any) -> list[str]:
    out: list[str] = []
    _walk(schema, value, "", out)
    return out


def test_a_full_valid_connect_passes_both_ways() -> None:
    assert _ok(CONNECT_PARAMS, BASE) and not _errors(CONNECT_PARAMS, BASE) and validate(CONNECT_PARAMS, BASE) == []


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), JSON | ODD, max_size=6), st.sets(st.sampled_from(list(BASE)), max_size=4))
def test_mutated_connect_params_agree(patch: dict[str, Any], drop: set[str]) -> None:
    value = {k: v for k, v in BASE.items() if k not in drop} | patch
    for schema in (CONNECT_PARAMS, REQUEST_FRAME):
        assert _ok(schema, value) == (not _errors(schema, value)), value
        assert validate(schema, value) == list(dict.fromkeys(_errors(schema, value)))


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_arbitrary_json_agrees(value: Any) -> None:
    for schema in (CONNECT_PARAMS, REQUEST_FRAME):
        assert _ok(schema, value) == (not _errors(schema, value))
