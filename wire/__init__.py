"""Sans-I/O core shared by every package: stdlib only, no asyncio, sockets, clocks, env or files.

See ``docs/architecture.md``. Curated re-exports; submodules hold the rest.
"""

from wire.errors import (
    ConfigError,
    FrameError,
    LegacyError,
    ParityError,
    ScenarioError,
    TraceFormatError,
    UpstreamError,
)
from wire.model import ConnId, Direction, Json, Kind, Leg, Observation
from wire.redact import Redactor

__all__ = [
    "ConfigError",
    "ConnId",
    "Direction",
    "FrameError",
    "Json",
    "Kind",
    "Leg",
    "LegacyError",
    "Observation",
    "ParityError",
    "Redactor",
    "ScenarioError",
    "TraceFormatError",
    "UpstreamError",
]
