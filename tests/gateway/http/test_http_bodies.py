"""JSON body parsing: our V8-style parse-error texts checked against the legacy's own runtime (Node 24's JSON.parse)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.http.bodies import parse_json_text

# Bodies the legacy answers with a V8 message that we rephrase exactly.
EXACT = ["{nope", "{", '{"a":1,}', '{"a" 1}', '{"a":1 "b":2}', "[1 2]", '{"a":1}x', '{"a":"x', '"abc',
         '{"a":"\x01"}', '{"a":\n nope}', "[1,2", '{"a":tru}', "nul", "{,}", '{"a":1}}', '{"a":1,', "[", "[1,",
         '{"a":', '{"a"', "tru", "1 2", '{"a":[1,}', '{"a":-}', '{"a":01}', '{"a":1.}', '"\\x"', '"\\u12"',
         '{"a":"b"c}', "  x", "x" * 30, '{"é":x}', '{"key": "value", "other": nope, "more": 1}', "-", "[1e]",
         '{"a":1}   ]', "1.", "[1e+]", '{"a":fals', "0x1", "1e", "[-", "[0.5e", '{"a":"\\uZZZZ"}']


def node_binary() -> Path:
    from parity.legacy.install import find_installation

    try:
        return find_installation().node
    except Exception as exc:  # noqa: BLE001 - any failure means the legacy is not installed here
        pytest.skip(f"legacy Node 24 not installed (run `parity legacy install`): {exc}")


def v8_messages(texts: list[str]) -> list[str]:
    texts = [t.strip() for t in texts]  # the legacy trims the body before JSON.parse
    script = ("const xs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "console.log(JSON.stringify(xs.map(t => { try { JSON.parse(t); return null }"
              " catch (e) { return e.message } })))")
    out = subprocess.run([str(node_binary()), "-e", script], input=json.dumps(texts), capture_output=True,
                         text=True, timeout=60, check=True, env={"PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_parse_errors_match_v8_exactly() -> None:
    expected = v8_messages(EXACT)
    got = []
    for text in EXACT:
        r = parse_json_text(text.encode())
        assert not r.ok
        got.append(r.error)
    mismatches = [(t, g, e) for t, g, e in zip(EXACT, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches


def test_empty_and_whitespace_bodies_are_empty_objects() -> None:
    for raw in (b"", b"  \n\t", "\u00a0".encode()):
        r = parse_json_text(raw)
        assert r.ok and r.value == {}


def test_deep_nesting_is_a_clean_error_not_a_crash() -> None:
    r = parse_json_text(b"[" * 100_000 + b"]" * 100_000)
    assert r.ok or r.error


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | st.text(max_size=40).map(str.encode))
def test_never_raises(raw: bytes) -> None:
    r = parse_json_text(raw)
    assert r.ok or isinstance(r.error, str) and r.error
