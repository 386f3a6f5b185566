"""wire.errors: one root, builtin bases, and where a trace error happened."""

from __future__ import annotations

from wire.errors import ConfigError, FrameError, ParityError, TraceFormatError, UpstreamError


def test_tree_and_locations() -> None:
    for cls, base in ((FrameError, ValueError), (ConfigError, ValueError), (UpstreamError, ConnectionError)):
        assert issubclass(cls, ParityError) and issubclass(cls, base)
    e = TraceFormatError("bad observation", path="t.jsonl", line=7)
    assert str(e) == "t.jsonl:7: bad observation" and (e.path, e.line) == ("t.jsonl", 7)
    assert str(TraceFormatError("empty", line=1)) == "<stream>:1: empty"
    assert str(TraceFormatError("unreadable", path="x.jsonl")) == "x.jsonl: unreadable"
