"""Sans-I/O core shared by every package: stdlib only, no asyncio, sockets, clocks, env or files.

See ``docs/architecture.md``. Curated re-exports of the values and state machines most callers need;
submodules hold the rest (``wire.normalize`` rule kinds, ``wire.profiles``, ``wire.device``).
"""

from wire.correlate import Correlated, Correlator, Orphaned, TimedOut, Unsolicited, correlate
from wire.errors import (
    ConfigError,
    FrameError,
    LegacyError,
    ParityError,
    ScenarioError,
    TraceFormatError,
    UpstreamError,
)
from wire.frames import parse_frame, parse_observation
from wire.model import (
    ConnId,
    Direction,
    Event,
    Exchange,
    ExchangeKind,
    Frame,
    Json,
    Kind,
    Leg,
    Observation,
    Other,
    Pair,
    Req,
    Res,
)
from wire.pairing import Pairer, pair_exchanges
from wire.redact import Redactor

__all__ = [
    "ConfigError",
    "ConnId",
    "Correlated",
    "Correlator",
    "Direction",
    "Event",
    "Exchange",
    "ExchangeKind",
    "Frame",
    "FrameError",
    "Json",
    "Kind",
    "Leg",
    "LegacyError",
    "Observation",
    "Orphaned",
    "Other",
    "Pair",
    "Pairer",
    "ParityError",
    "Redactor",
    "Req",
    "Res",
    "ScenarioError",
    "TimedOut",
    "TraceFormatError",
    "Unsolicited",
    "UpstreamError",
    "correlate",
    "pair_exchanges",
    "parse_frame",
    "parse_observation",
]
