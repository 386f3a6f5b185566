"""The diagnostic stability recorder behind ``diagnostics.stability``: a bounded ring of sanitized events.

Owns ``DiagnosticRecorder`` (the legacy's ``diagnostic-stability`` ring: capacity 1000, per-process ``seq``,
``dropped`` counts overwritten records), ``query_from_params`` (the legacy's ``limit``/``type``/``sinceSeq``
checks and texts) and ``DIAGNOSTICS_KEY``. pyclaw records the events it has a real source for:
``model.call.started`` / ``model.call.completed`` / ``model.call.error`` (the provider client) and
``payload.large`` (the WS pre-auth frame limit). The legacy's other event types (run phases, queue lanes, session
states, memory samples, heartbeats) have no counterpart here (docs/compatibility.md). Imports stdlib and aiohttp's
``AppKey`` only.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

__all__ = ["CAPACITY", "DEFAULT_LIMIT", "DIAGNOSTICS_KEY", "DiagnosticRecorder", "Query", "query_from_params"]

CAPACITY = 1000
DEFAULT_LIMIT = 50
_DIGITS = re.compile(r"^\d+$")


@dataclass(frozen=True, slots=True)
class Query:
    limit: int = DEFAULT_LIMIT
    type: str | None = None
    since_seq: int | None = None


def _non_negative(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise ValueError(f"{field} must be a non-negative integer")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 0:
        raise ValueError(f"{field} must be a non-negative integer")
    return int(value)


def query_from_params(params: Any) -> Query:
    """The legacy's ``normalizeDiagnosticStabilityQuery``; raises ``ValueError`` with its message."""
    p = params if isinstance(params, dict) else {}
    limit = _non_negative(p.get("limit"), "limit")
    if limit is not None and not 1 <= limit <= CAPACITY:
        raise ValueError(f"limit must be between 1 and {CAPACITY}")
    raw_type = p.get("type")
    kind: str | None = None
    if raw_type not in (None, ""):
        if not isinstance(raw_type, str) or not raw_type.strip():
            raise ValueError("type must be a non-empty string")
        kind = raw_type.strip()
    return Query(limit=DEFAULT_LIMIT if limit is None else limit, type=kind,
                 since_seq=_non_negative(p.get("sinceSeq"), "sinceSeq"))


class DiagnosticRecorder:
    """A ring of at most ``capacity`` records ``{"seq", "ts", "type", ...fields}`` (``None`` fields dropped)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.dropped = 0
        self._seq = 0
        self._records: deque[dict[str, Any]] = deque(maxlen=capacity)

    def record(self, kind: str, **fields: Any) -> None:
        self._seq += 1
        if len(self._records) == self.capacity:
            self.dropped += 1
        rec: dict[str, Any] = {"seq": self._seq, "ts": int(time.time() * 1000), "type": kind}
        rec.update({k: v for k, v in fields.items() if v is not None})
        self._records.append(rec)

    def snapshot(self, query: Query | None = None) -> dict[str, Any]:
        q = query or Query()
        filtered = [r for r in self._records
                    if (q.type is None or r["type"] == q.type) and (q.since_seq is None or r["seq"] > q.since_seq)]
        out: dict[str, Any] = {
            "generatedAt": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "capacity": self.capacity, "count": len(filtered), "dropped": self.dropped,
        }
        if filtered:
            out["firstSeq"], out["lastSeq"] = filtered[0]["seq"], filtered[-1]["seq"]
        out["events"] = [dict(r) for r in filtered[-q.limit:]]
        out["summary"] = _summary(filtered)
        return out


def _summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, int] = {}
    large: dict[str, Any] = {"count": 0, "rejected": 0, "truncated": 0, "chunked": 0, "bySurface": {}}
    for r in records:
        by_type[r["type"]] = by_type.get(r["type"], 0) + 1
        if r["type"] == "payload.large":
            large["count"] += 1
            if r.get("action") in ("rejected", "truncated", "chunked"):
                large[r["action"]] += 1
            surface = r.get("surface") or "unknown"
            large["bySurface"][surface] = large["bySurface"].get(surface, 0) + 1
    summary: dict[str, Any] = {"byType": by_type}
    if large["count"]:
        summary["payloadLarge"] = large
    return summary


DIAGNOSTICS_KEY = web.AppKey("diagnostics", DiagnosticRecorder)
