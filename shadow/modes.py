"""Proxy modes and the per-connection routing decision, switchable at runtime.

Owns :class:`ModeController`. A *routing* is decided once per client connection (per HTTP request for
plain HTTP) when it opens, and kept for its whole life: switching the mode changes new connections only, so
no open connection is dropped.

- ``shadow``: legacy answers the client; the candidate is mirrored.
- ``candidate-primary``: the candidate answers; the legacy is mirrored (confidence after the flip, a path back).
- ``canary``: ``percent`` of *clients* are answered by the candidate (legacy mirrored), the rest as in shadow.
  Sticky: the choice is a stable hash of the client key (the configured header, else the peer address).
- ``passthrough``: legacy answers; nothing is mirrored.

May import: stdlib, ``wire``, ``shadow.config``, ``shadow.metrics``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from shadow.config import MODES
from shadow.metrics import Metrics
from wire.errors import ConfigError
from wire.model import Leg

logger = logging.getLogger(__name__)

__all__ = ["ModeController", "Routing"]


@dataclass(frozen=True, slots=True)
class Routing:
    """Which leg answers the client and whether the other leg gets a mirror."""

    primary: Leg
    mirror: bool
    mode: str

    @property
    def secondary(self) -> Leg:
        return self.primary.other


def canary_bucket(client_key: str) -> float:
    """Stable position of a client in [0, 100) -- the same across processes and restarts."""
    digest = hashlib.blake2b(client_key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000 / 100.0


class ModeController:
    def __init__(self, mode: str = "shadow", *, canary_percent: float = 0.0, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._mode = "shadow"
        self._percent = 0.0
        self.set(mode, canary_percent)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def canary_percent(self) -> float:
        return self._percent

    def set(self, mode: str, canary_percent: float | None = None) -> None:
        """Switch for new connections. Raises :class:`ConfigError` on a bad mode or percentage."""
        if mode not in MODES:
            raise ConfigError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if canary_percent is not None:
            if not 0.0 <= canary_percent <= 100.0:
                raise ConfigError(f"canary.percent: expected 0..100, got {canary_percent}")
            self._percent = float(canary_percent)
        if mode != self._mode:
            logger.warning("mode %s -> %s (canary %.1f%%)", self._mode, mode, self._percent)
        self._mode = mode
        if self._metrics is not None:
            self._metrics.set_mode(mode, MODES)

    def route(self, client_key: str) -> Routing:
        mode = self._mode
        if mode == "passthrough":
            return Routing(Leg.LEGACY, False, mode)
        if mode == "candidate-primary":
            return Routing(Leg.CANDIDATE, True, mode)
        if mode == "canary" and canary_bucket(client_key) < self._percent:
            return Routing(Leg.CANDIDATE, True, mode)
        return Routing(Leg.LEGACY, True, mode)
