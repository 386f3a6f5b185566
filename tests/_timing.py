"""Timeouts for tests, in one scalable unit, and a bounded wait helper.

``MS`` is one millisecond times ``PARITY_TEST_TIMEOUT_FACTOR`` (default 1), in seconds: write ``timeout=500 * MS``.
Import it as ``from _timing import MS, S`` (``tests/`` is on ``sys.path`` because of the root conftest; the test
directories have no ``__init__.py``, so test file basenames must be unique across ``tests/``).
Slow or loaded machines raise the factor instead of editing tests. Tests never fail on wall-clock speed; these
are deadlines for conditions that must eventually hold.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

FACTOR = float(os.environ.get("PARITY_TEST_TIMEOUT_FACTOR") or 1.0)
#: One (scaled) millisecond, in seconds.
MS = 0.001 * FACTOR
#: One (scaled) second, in seconds.
S = 1000 * MS


def wait_until(predicate: Callable[[], object], timeout: float = 10 * S, interval: float = 0.05,
               what: str = "condition") -> None:
    """Poll ``predicate`` until truthy; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], object | Awaitable[object]], timeout: float = 10 * S,
                           interval: float = 0.05, what: str = "condition") -> None:
    """``wait_until`` for async tests; ``predicate`` may be a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        await asyncio.sleep(interval)
