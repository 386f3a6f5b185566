"""The differ's records: :class:`Diff` and :class:`DiffKind`, the record limits, :func:`show` (a value as truncated
JSON text) and :func:`signature_path`. Pure; stdlib only. ``diffing.diff`` re-exports all of it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEEPDIFF_MAX_BYTES",
    "MAX_DIFFS_PER_PAIR",
    "MAX_VALUE_CHARS",
    "Diff",
    "DiffKind",
    "join_path",
    "show",
    "signature_path",
]

MAX_VALUE_CHARS = 512
#: Diff records kept per pair; findings past it are still counted (``PairResult.unrecorded``, field parity).
MAX_DIFFS_PER_PAIR = 200
DEEPDIFF_MAX_BYTES = 16 * 1024


class DiffKind(StrEnum):
    VALUE = "value"
    TYPE = "type"
    MISSING = "missing"  # present on legacy, absent on candidate
    EXTRA = "extra"  # present on candidate only
    ORDER = "order"
    STATUS = "status"
    HEADER = "header"
    CLOSE_CODE = "close-code"
    FRAME_COUNT = "frame-count"
    EVENT_MISSING = "event-missing"
    EVENT_EXTRA = "event-extra"
    PROTOCOL_ERROR = "protocol-error"


@dataclass(frozen=True, slots=True)
class Diff:
    """One difference: where, what kind, and both values as (truncated) JSON text (``None`` = absent)."""

    path: str
    kind: DiffKind
    legacy: str | None = None
    candidate: str | None = None


_NUM_SEG = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.|$)")


@functools.lru_cache(maxsize=4096)  # the same few paths recur on every batch
def signature_path(path: str) -> str:
    """Generalize list indices so one signature covers every element: ``a.3.ts`` -> ``a.*.ts``."""
    return _NUM_SEG.sub("*", path)


# --- values -----------------------------------------------------------------------------------------------------

_MARK = "…<truncated {n} chars>"


def show(v: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """JSON text of ``v`` cut at ``limit`` characters with a visible marker; never builds more than it needs."""
    enc = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    parts: list[str] = []
    size = 0
    it = enc.iterencode(v)
    for chunk in it:
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    else:
        return "".join(parts)
    text = "".join(parts)
    rest = size - limit + sum(len(c) for c in it)
    return text[:limit] + _MARK.format(n=rest)


def join_path(prefix: str, key: Any) -> str:
    """``prefix.key`` (just ``key`` at the root)."""
    return f"{prefix}.{key}" if prefix else str(key)
