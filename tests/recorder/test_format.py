"""Trace format v1 (recorder.format): writer/reader round trips, redaction on write, strict and skip modes."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.format import FORMAT_VERSION, TraceHeader, TraceReader, TraceWriter, read_trace
from wire.errors import TraceFormatError
from wire.model import Direction, Kind, Leg, Observation
from wire.redact import Redactor

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
headers = st.lists(st.tuples(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12), text),
                   max_size=4).map(tuple)


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    kind = draw(st.sampled_from(list(Kind)))
    binary = draw(st.booleans())
    return Observation(
        t=draw(st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda x: round(x, 6))),
        conn=draw(st.text(alphabet="abch0123456789", min_size=1, max_size=5)),
        leg=draw(st.sampled_from(list(Leg))),
        dir=draw(st.sampled_from(list(Direction))),
        kind=kind,
        data=None if binary else draw(st.none() | text),
        data_b64=draw(st.binary(min_size=1, max_size=40)) if binary else None,
        method=draw(st.none() | st.sampled_from(["GET", "POST", "HEAD"])),
        path=draw(st.none() | text),
        status=draw(st.none() | st.integers(100, 599)),
        headers=draw(headers),
        code=draw(st.none() | st.integers(1000, 4999)),
        reason=draw(st.none() | text),
        step=draw(st.none() | st.text(alphabet="s0123456789-", min_size=1, max_size=6)),
    )


def _write(obs: list[Observation], *, complete: bool = True, error: str | None = None,
           header: TraceHeader | None = None) -> str:
    buf = io.StringIO()
    w = TraceWriter(buf, header or TraceHeader(target="http://127.0.0.1:1", scenario="x"))
    for o in obs:
        w.write(o)
    w.close(complete=complete, error=error)
    return buf.getvalue()


@settings(max_examples=60, deadline=None)
@given(st.lists(observations(), max_size=8))
def test_round_trip_preserves_every_field(obs: list[Observation]) -> None:
    # Payloads that look like JSON holding a secret-named key are masked on write (by design), so build
    # the expectation through the same default redactor.
    expected = [Redactor().observation(o) for o in obs]
    trace = read_trace(io.StringIO(_write(obs)), strict=True)
    assert list(trace.observations) == expected
    assert trace.complete and trace.error is None and trace.skipped_lines == ()


@given(st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=4), st.integers() | text, max_size=3))
def test_header_round_trip(meta: dict[str, object]) -> None:
    h = TraceHeader(profile="openclaw", target="ws://127.0.0.1:9", recorded_at="2026-11-23T00:00:00+00:00",
                    tool="openclaw-parity 0.1.0", scenario="s-1", meta=meta)
    assert read_trace(io.StringIO(_write([], header=h))).header == h


def test_unicode_and_binary_survive_byte_exact() -> None:
    o1 = Observation(t=0.5, conn="c1", dir=Direction.S2C, kind=Kind.WS_TEXT, data="héllo \u2603 \U0001F600 \"q\"")
    o2 = Observation(t=1.0, conn="c1", dir=Direction.S2C, kind=Kind.WS_BINARY, data_b64=b"\x00\xff\xfe")
    out = _write([o1, o2])
    assert "\u2603" in out  # written as UTF-8, not \\u-escaped
    assert json.loads(out.splitlines()[2])["b64"] == "AP/+"
    assert read_trace(io.StringIO(out)).observations == (o1, o2)


def test_writer_redacts_before_anything_reaches_the_stream() -> None:
    secret = "f" * 48
    buf = io.StringIO()
    w = TraceWriter(buf, TraceHeader(), redactor=Redactor({"GW_TOKEN": secret}))
    w.write(Observation(t=0, conn="c1", dir=Direction.C2S, kind=Kind.WS_TEXT,
                        data=json.dumps({"params": {"auth": {"token": secret}, "device": {"signature": "sig"}}})))
    w.write(Observation(t=0, conn="h1", dir=Direction.C2S, kind=Kind.HTTP_REQUEST, method="POST",
                        path=f"/hooks/wake?token={secret}", headers=(("Authorization", f"Bearer {secret}"),)))
    w.close(error=f"failed with {secret}")
    out = buf.getvalue()
    assert secret not in out
    frame = json.loads(json.loads(out.splitlines()[1])["data"])
    assert frame["params"] == {"auth": {"token": "<GW_TOKEN>"}, "device": {"signature": "<REDACTED>"}}
    assert "Bearer <GW_TOKEN>" in out and "token=<GW_TOKEN>" in out


def test_missing_end_line_reads_as_incomplete() -> None:
    out = _write([Observation(t=0, conn="c1", dir=Direction.C2S, kind=Kind.WS_OPEN, path="/")])
    truncated = "\n".join(out.splitlines()[:-1]) + "\n"
    trace = read_trace(io.StringIO(truncated))
    assert not trace.complete and len(trace.observations) == 1


def test_incomplete_end_line_keeps_the_error() -> None:
    trace = read_trace(io.StringIO(_write([], complete=False, error="step s2 timed out")))
    assert trace.complete is False and trace.error == "step s2 timed out"


def test_strict_mode_names_file_and_line() -> None:
    out = _write([Observation(t=0, conn="c1", dir=Direction.C2S, kind=Kind.WS_OPEN)]).splitlines()
    out.insert(2, '{"t": 1, "conn": "c1", "dir": "sideways", "kind": "ws-text"}')
    with pytest.raises(TraceFormatError, match=r"^x\.jsonl:3: bad observation"):
        read_trace(io.StringIO("\n".join(out) + "\n"), path="x.jsonl", strict=True)


def test_skip_mode_counts_bad_lines_and_keeps_the_rest() -> None:
    lines = _write([Observation(t=0, conn="c1", dir=Direction.C2S, kind=Kind.WS_OPEN),
                    Observation(t=1, conn="c1", dir=Direction.S2C, kind=Kind.WS_CLOSE, code=1000)]).splitlines()
    lines.insert(2, "not json at all")
    lines.insert(3, "[1, 2]")
    trace = read_trace(io.StringIO("\n".join(lines) + "\n"), path="y.jsonl")
    assert len(trace.observations) == 2 and trace.complete
    assert [n for n, _ in trace.skipped_lines] == [3, 4]


@pytest.mark.parametrize(("first", "message"), [
    ("", "empty trace"),
    ('{"format": "something-else", "version": 1}', "not a trace header"),
    (f'{{"format": "openclaw-parity-trace", "version": {FORMAT_VERSION + 1}}}', "unsupported trace version"),
    ("{broken", "bad header"),
])
def test_bad_headers_are_errors_at_line_1(first: str, message: str) -> None:
    with pytest.raises(TraceFormatError, match=f"z:1: .*{message}"):
        TraceReader(io.StringIO(first + "\n"), path="z")


def test_observation_after_the_end_line_is_rejected() -> None:
    lines = _write([]).splitlines() + ['{"t": 0, "conn": "c1", "dir": "c2s", "kind": "ws-open"}']
    with pytest.raises(TraceFormatError, match="after the end line"):
        read_trace(io.StringIO("\n".join(lines)), strict=True)
