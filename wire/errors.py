"""The one exception root of openclaw-parity.

Owns every exception type the project raises on purpose. Imports nothing.

    ParityError
     ├── FrameError(ValueError)        a frame we built or were asked to parse is malformed (our side)
     ├── TraceFormatError(ValueError)  a trace file line is not valid trace format v1
     ├── ScenarioError(ValueError)     a scenario file is malformed (file and line in the message)
     ├── ConfigError(ValueError)       bad configuration; names the key path
     ├── UpstreamError(ConnectionError) a leg could not be reached or answered nonsense at transport level
     │    └── LegProtocolError          a leg's HTTP/1.1 answer did not parse (the lean upstream client)
     └── LegacyError(RuntimeError)     installing, starting or stopping the legacy gateway failed

Following h11's local/remote split, a malformed frame *from a leg* is a finding (a diff of kind
``protocol_error``), never an exception: these types are for bugs in our own input and for bad config.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FrameError",
    "LegProtocolError",
    "LegacyError",
    "ParityError",
    "ScenarioError",
    "TraceFormatError",
    "UpstreamError",
]


class ParityError(Exception):
    """Root of every exception openclaw-parity raises on purpose."""


class FrameError(ParityError, ValueError):
    """A frame is malformed."""


class TraceFormatError(ParityError, ValueError):
    """A trace line is not valid; ``path`` and ``line`` say where."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path or '<stream>'}:{line}" if line is not None else (path or "<stream>")
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class ScenarioError(ParityError, ValueError):
    """A scenario file is malformed; the message names the file and line."""


class ConfigError(ParityError, ValueError):
    """Bad configuration; the message names the key path."""


class UpstreamError(ParityError, ConnectionError):
    """A leg could not be reached."""


class LegProtocolError(UpstreamError):
    """A leg answered with bytes that are not valid HTTP/1.1."""


class LegacyError(ParityError, RuntimeError):
    """The legacy gateway could not be installed, started or stopped."""
