"""Trace format v1: a header line, one observation per line, and a closing ``trace-end`` line.

Owns reading and writing traces. Pure over text streams (no file opening, no clocks): callers pass an
open stream and the time values. Imports only the stdlib and ``wire``.

Layout (see ``docs/trace-format.md``)::

    {"format":"openclaw-parity-trace","version":1,"profile":"openclaw","target":...,"recorded_at":...,"tool":...}
    {"t":0.0,"conn":"c1","leg":"legacy","dir":"c2s","kind":"ws-open","path":"/"}
    ...
    {"end":true,"complete":true,"observations":N}

A trace without the end line, or with ``complete: false``, is *incomplete*: the recorder crashed or the
scenario failed part-way. Readers keep what is there and say so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from wire.errors import TraceFormatError
from wire.model import Observation
from wire.redact import Redactor

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Trace",
    "TraceHeader",
    "TraceReader",
    "TraceWriter",
    "read_trace",
]

FORMAT_NAME = "openclaw-parity-trace"
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceHeader:
    """Line 1 of a trace."""

    profile: str = "openclaw"
    target: str = ""
    recorded_at: str = ""
    tool: str = ""
    scenario: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": self.version,
            "profile": self.profile,
            "target": self.target,
            "recorded_at": self.recorded_at,
            "tool": self.tool,
        }
        if self.scenario is not None:
            d["scenario"] = self.scenario
        if self.meta:
            d["meta"] = self.meta
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TraceHeader:
        if d.get("format") != FORMAT_NAME:
            raise ValueError(f"not a trace header (format={d.get('format')!r})")
        version = d.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported trace version {version!r} (this tool reads {FORMAT_VERSION})")
        return cls(
            profile=str(d.get("profile", "openclaw")),
            target=str(d.get("target", "")),
            recorded_at=str(d.get("recorded_at", "")),
            tool=str(d.get("tool", "")),
            scenario=d.get("scenario"),
            meta=dict(d.get("meta") or {}),
            version=version,
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """A whole trace in memory."""

    header: TraceHeader
    observations: tuple[Observation, ...]
    complete: bool
    error: str | None = None
    skipped_lines: tuple[tuple[int, str], ...] = ()


class TraceWriter:
    """Writes one trace to a text stream, redacting every observation before it is written.

    Each line is flushed as written, so a crash leaves every earlier observation on disk and the trace
    reads back as incomplete.
    """

    def __init__(self, stream: IO[str], header: TraceHeader, *, redactor: Redactor | None = None) -> None:
        self._stream = stream
        self._redactor = redactor or Redactor()
        self._count = 0
        self._closed = False
        self._line(header.to_json())

    @property
    def count(self) -> int:
        return self._count

    def write(self, obs: Observation) -> None:
        if self._closed:
            raise ValueError("trace already closed")
        self._line(self._redactor.observation(obs).to_json())
        self._count += 1

    def close(self, *, complete: bool = True, error: str | None = None) -> None:
        """Write the end line. ``complete=False`` marks a partial trace, with the reason."""
        if self._closed:
            return
        end: dict[str, Any] = {"end": True, "complete": complete, "observations": self._count}
        if error:
            end["error"] = self._redactor.text(error)
        self._line(end)
        self._closed = True

    def _line(self, d: dict[str, Any]) -> None:
        self._stream.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._stream.flush()


class TraceReader:
    """Iterates the observations of a trace stream.

    Args:
        stream: text stream positioned at line 1.
        path: shown in error messages.
        strict: raise :class:`TraceFormatError` on the first bad line; otherwise skip it and record it in
            :attr:`skipped` as (line number, message).
    """

    def __init__(self, stream: IO[str], *, path: str | None = None, strict: bool = False) -> None:
        self._stream = stream
        self.path = path
        self.strict = strict
        self.skipped: list[tuple[int, str]] = []
        self.complete = False
        self.error: str | None = None
        first = stream.readline()
        if not first.strip():
            raise TraceFormatError("empty trace (no header line)", path=path, line=1)
        try:
            self.header = TraceHeader.from_json(json.loads(first))
        except (ValueError, TypeError, AttributeError) as exc:
            raise TraceFormatError(f"bad header: {exc}", path=path, line=1) from exc
        self._lineno = 1

    def __iter__(self) -> Iterator[Observation]:
        for raw in self._stream:
            self._lineno += 1
            if not raw.strip():
                continue
            try:
                d = json.loads(raw)
                if not isinstance(d, dict):
                    raise ValueError("a trace line must be a JSON object")
                if d.get("end") is True:
                    self.complete = bool(d.get("complete"))
                    self.error = d.get("error")
                    continue
                if self.complete:
                    raise ValueError("observation after the end line")
                yield Observation.from_json(d)
            except (ValueError, TypeError, KeyError) as exc:
                msg = f"bad observation: {exc.__class__.__name__}: {exc}"
                if self.strict:
                    raise TraceFormatError(msg, path=self.path, line=self._lineno) from exc
                self.skipped.append((self._lineno, msg))


def read_trace(stream: IO[str], *, path: str | None = None, strict: bool = False) -> Trace:
    """Read a whole trace. See :class:`TraceReader` for ``strict``."""
    reader = TraceReader(stream, path=path, strict=strict)
    observations = tuple(reader)
    return Trace(
        header=reader.header,
        observations=observations,
        complete=reader.complete,
        error=reader.error,
        skipped_lines=tuple(reader.skipped),
    )
