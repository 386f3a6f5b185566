"""Capture for the shadow proxy: observations to a trace file, and write-ahead recording of side-effecting requests.

Owns :class:`TraceSink` (a ``TraceWriter`` on a file the proxy opens once per run) and :class:`WriteAheadLog`
(``--write-ahead``: every side-effecting request is appended and ``fsync``'d *before* it is forwarded to the
legacy, so a crash of the proxy or the legacy cannot lose a write -- opensearch-migrations' capture proxy).
Both redact through ``wire.redact.Redactor`` before anything reaches the disk. May import: stdlib, ``wire``,
``recorder.format``. (Written by the shadow helper; the recorder package owns the format.)
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import os
from pathlib import Path
from typing import IO

from recorder.format import TraceHeader, TraceWriter
from wire.model import Observation
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["TraceSink", "WriteAheadLog"]


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class TraceSink:
    """One trace file for one proxy run; :meth:`write` is the pipeline's ``record`` stage handler."""

    def __init__(self, path: str | Path, *, redactor: Redactor, target: str = "", tool: str = "parity shadow",
                 meta: dict[str, object] | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: IO[str] = self.path.open("w", encoding="utf-8")
        header = TraceHeader(target=target, recorded_at=_now_iso(), tool=tool, meta=dict(meta or {}))
        self._writer = TraceWriter(self._stream, header, redactor=redactor)

    @property
    def count(self) -> int:
        return self._writer.count

    def write(self, obs: Observation) -> None:
        self._writer.write(obs)

    def close(self, *, complete: bool = True, error: str | None = None) -> None:
        self._writer.close(complete=complete, error=error)
        self._stream.close()


class WriteAheadLog:
    """Append-only, fsync'd log of side-effecting requests, in trace format v1.

    :meth:`append` returns only after the line is on stable storage; the fsync runs in a worker thread so the
    event loop keeps serving other clients meanwhile. Appends are serialised, so lines never interleave.
    """

    def __init__(self, path: str | Path, *, redactor: Redactor, target: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._stream: IO[str] = self.path.open("a", encoding="utf-8")
        self._redactor = redactor
        self._lock = asyncio.Lock()
        self.count = 0
        if fresh:
            header = TraceHeader(target=target, recorded_at=_now_iso(), tool="parity shadow --write-ahead")
            self._writer: TraceWriter | None = TraceWriter(self._stream, header, redactor=redactor)
        else:  # appending to an earlier run's log: keep writing observation lines after it
            self._writer = None
        self._sync()

    def _write_sync(self, obs: Observation) -> None:
        if self._writer is not None:
            self._writer.write(obs)
        else:
            import json

            line = json.dumps(self._redactor.observation(obs).to_json(), ensure_ascii=False, separators=(",", ":"))
            self._stream.write(line + "\n")
            self._stream.flush()
        self._sync()

    def _sync(self) -> None:
        self._stream.flush()
        os.fsync(self._stream.fileno())

    async def append(self, obs: Observation) -> None:
        """Durably record ``obs`` (redacted). Returns after fsync."""
        async with self._lock:
            await asyncio.to_thread(self._write_sync, obs)
            self.count += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close(complete=True)
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self._stream.close()
