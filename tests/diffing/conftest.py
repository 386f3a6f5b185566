"""Fixtures for the diffing tests: ``wrong_candidate`` (see ``wrong_candidate.py``) in front of ``legacy``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from wrong_candidate import WrongCandidate


@pytest.fixture
async def wrong_candidate(legacy: Any) -> AsyncIterator[WrongCandidate]:
    proxy = WrongCandidate(legacy.http_url)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
