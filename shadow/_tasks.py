"""Fire-and-forget tasks that are never garbage-collected mid-flight.

Owns :func:`spawn`. ``asyncio`` keeps only weak references to tasks, so a task nobody holds can vanish
while it runs (mitmproxy's ``keep_ref=True``, the asyncio docs' warning). Every background task of the
shadow proxy goes through here; an exception that escapes a spawned task is logged, never lost silently.
May import: stdlib only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

_TASKS: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Schedule ``coro`` on the running loop and keep a strong reference until it finishes."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _TASKS.add(task)
    task.add_done_callback(_done)
    return task


def _done(task: asyncio.Task[Any]) -> None:
    _TASKS.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        logger.error("background task %s failed: %r", task.get_name(), exc, exc_info=exc)


def pending() -> int:
    """How many spawned tasks are still running (for tests and /healthz)."""
    return len(_TASKS)


async def cancel_all(tasks: set[asyncio.Task[Any]] | list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them to finish, swallowing their cancellation."""
    live = [t for t in tasks if not t.done()]
    for t in live:
        t.cancel()
    if live:
        await asyncio.gather(*live, return_exceptions=True)
