"""Helpers shared by the H4b tests (imported by tests/gateway/http/conftest.py and tests/gateway/agent/conftest.py): ``gateway.app.make_app`` under a real aiohttp server on 127.0.0.1.

- ``candidate_factory(**overrides)``: an async context manager yielding a ``Candidate`` (``client`` = aiohttp
  ``TestClient``, ``app``, ``token``, ``hook_token``, ``state_dir``) built from the same offline config shape the
  legacy fixture uses (reference §1.4), with ``overrides`` deep-merged on top. The model provider is the session
  ``fake_model`` (the one accepted stand-in) unless a test points ``models.providers`` elsewhere.
- ``candidate``: one default candidate per test.
- ``legacy_capture``: answers recorded from the real pinned legacy 2026.9.6 (tests/gateway/http/data).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import make_app
from gateway.config import config_from_mapping, deep_merge
from parity.legacy import FakeModelServer

DATA = Path(__file__).parent / "data" / "legacy_2026.9.6_capture.json"


@dataclass
class Candidate:
    client: TestClient[web.Request, web.Application]
    app: web.Application
    token: str
    hook_token: str
    state_dir: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def hook_auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.hook_token}"}


def offline_config(model_url: str, token: str, hook_token: str) -> dict[str, Any]:
    return {
        "gateway": {"mode": "local", "bind": "loopback", "auth": {"mode": "token", "token": token},
                    "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}}},
        "models": {"providers": {"fakellm": {
            "baseUrl": model_url, "apiKey": "fake-key", "api": "openai-completions",
            "models": [{"id": "fake-model", "name": "Fake", "reasoning": False, "input": ["text"],
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                        "contextWindow": 32000, "maxTokens": 1024}]}}},
        "agents": {"defaults": {"model": {"primary": "fakellm/fake-model"}}},
        "hooks": {"enabled": True, "token": hook_token, "path": "/hooks"},
    }


CandidateFactory = Callable[..., contextlib.AbstractAsyncContextManager[Candidate]]


@pytest.fixture
def candidate_factory(fake_model: FakeModelServer, tmp_path: Path) -> CandidateFactory:
    counter = iter(range(1000))

    @contextlib.asynccontextmanager
    async def make(overrides: dict[str, Any] | None = None, replace: dict[str, Any] | None = None,
                   ) -> AsyncIterator[Candidate]:
        token, hook_token = secrets.token_hex(24), secrets.token_hex(24)
        data = replace if replace is not None else offline_config(fake_model.url, token, hook_token)
        if overrides:
            data = deep_merge(data, overrides)
        state_dir = tmp_path / f"state{next(counter)}"
        state_dir.mkdir()
        app = make_app(config_from_mapping(data, state_dir))
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        try:
            yield Candidate(client, app, token, hook_token, state_dir)
        finally:
            await client.close()

    return make


@pytest.fixture
async def candidate(candidate_factory: CandidateFactory) -> AsyncIterator[Candidate]:
    async with candidate_factory() as c:
        yield c


@pytest.fixture(scope="session")
def legacy_capture() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
