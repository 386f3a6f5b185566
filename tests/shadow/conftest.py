"""Fixtures for the shadow proxy tests: fake gateways on loopback and a proxy factory (fresh registry each)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from shadow_fakes import FakeGateway

from shadow.config import ShadowConfig
from shadow.proxy import ShadowProxy

ProxyFactory = Callable[..., Awaitable[ShadowProxy]]


def proxy_config(legacy_url: str, candidate_url: str = "", **over: Any) -> ShadowConfig:
    """A config on port 0 with test-sized limits; ``over`` are top-level keys or ``limits``/``policy`` tables."""
    limits = {"candidate_timeout": 1.0, "connect_retries": 2, "backoff_initial": 0.05, "backoff_max": 0.2,
              "pair_window": 2.0, **over.pop("limits", {})}
    d: dict[str, Any] = {
        "mode": over.pop("mode", "shadow" if candidate_url else "passthrough"),
        "listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
        "legacy": {"url": legacy_url, "token": "tok-legacy", **over.pop("legacy", {})},
        "candidate": {"url": candidate_url, "token": "tok-cand", **over.pop("candidate", {})} if candidate_url else {},
        "limits": limits,
        **over,
    }
    return ShadowConfig.from_mapping(d)


@pytest.fixture
async def fake_legacy() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway(token="tok-legacy").start()
    yield gw
    await gw.stop()


@pytest.fixture
async def fake_candidate() -> AsyncIterator[FakeGateway]:
    gw = await FakeGateway(token="tok-cand", fixed_nonce=False).start()
    yield gw
    await gw.stop()


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    proxies: list[ShadowProxy] = []

    async def make(legacy_url: str, candidate_url: str = "", **over: Any) -> ShadowProxy:
        proxy = ShadowProxy(proxy_config(legacy_url, candidate_url, **over))
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        await p.stop()
