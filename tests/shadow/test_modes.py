"""Modes: who answers, sticky canary, and runtime switching through the admin API without dropping connections."""

from __future__ import annotations

import json

import aiohttp
import pytest
from _timing import S, async_wait_until
from shadow_fakes import WS_SCRIPT, FakeGateway

from shadow.modes import ModeController, canary_bucket
from wire.errors import ConfigError
from wire.model import Leg


@pytest.fixture
async def two_gateways():
    legacy = await FakeGateway(token="tok", name="legacy").start()
    candidate = await FakeGateway(token="tok", name="candidate").start()
    yield legacy, candidate
    await candidate.stop()
    await legacy.stop()


async def _who(url: str, key: str = "k") -> str:
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz", headers={"x-parity-client": key}) as r:
        assert r.status == 200
        return r.headers["X-Gateway"]


async def _set_mode(admin: str, **body: object) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as s, s.post(admin + "/mode", json=body) as r:
        await r.read()
        return r


def test_canary_bucket_is_stable_and_spread() -> None:
    assert canary_bucket("client-1") == canary_bucket("client-1")
    buckets = [canary_bucket(f"client-{i}") for i in range(2000)]
    share = sum(b < 25.0 for b in buckets) / len(buckets)
    assert 0.2 < share < 0.3  # about a quarter of clients in a 25 % canary
    mc = ModeController("canary", canary_percent=25.0)
    assert all(mc.route(f"client-{i}").primary is (Leg.CANDIDATE if b < 25.0 else Leg.LEGACY)
               for i, b in enumerate(buckets[:200]))


def test_mode_controller_rejects_bad_input() -> None:
    mc = ModeController()
    with pytest.raises(ConfigError, match="mode: expected one of"):
        mc.set("flip")
    with pytest.raises(ConfigError, match="canary.percent"):
        mc.set("canary", 101.0)
    assert mc.mode == "shadow"


async def test_modes_choose_who_answers(two_gateways, make_proxy) -> None:
    legacy, candidate = two_gateways
    proxy = await make_proxy(legacy.url, candidate.url, legacy={"token": "tok"}, candidate={"token": "tok"})
    admin = proxy.admin_url
    assert await _who(proxy.url) == "legacy"
    assert (await _set_mode(admin, mode="candidate-primary")).status == 200
    assert await _who(proxy.url) == "candidate"
    # the legacy is now the mirrored leg: it receives the same request
    n = len(legacy.http_requests)
    assert await _who(proxy.url) == "candidate"
    await async_wait_until(lambda: len(legacy.http_requests) > n, 5 * S, what="legacy mirrored")
    assert (await _set_mode(admin, mode="canary", canary_percent=50)).status == 200
    keys = [f"user-{i}" for i in range(40)]
    first = [await _who(proxy.url, k) for k in keys]
    again = [await _who(proxy.url, k) for k in keys]
    assert first == again, "canary must be sticky per client"
    assert {"legacy", "candidate"} == set(first)
    assert first == ["candidate" if canary_bucket(k) < 50 else "legacy" for k in keys]
    assert (await _set_mode(admin, mode="passthrough")).status == 200
    n_c = len(candidate.http_requests)
    assert await _who(proxy.url) == "legacy"
    assert len(candidate.http_requests) == n_c, "passthrough must not mirror"
    assert proxy.metrics.value("parity_mode", {"mode": "passthrough"}) == 1
    assert proxy.metrics.value("parity_mode", {"mode": "shadow"}) == 0


async def test_mode_switch_keeps_open_connections(two_gateways, make_proxy) -> None:
    legacy, candidate = two_gateways
    proxy = await make_proxy(legacy.url, candidate.url, legacy={"token": "tok"}, candidate={"token": "tok"})
    connect = json.loads(WS_SCRIPT[0])
    connect["params"]["auth"] = {"token": "tok"}
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url.replace("http", "ws") + "/") as ws:
        await ws.receive_str(timeout=5 * S)  # challenge
        await ws.send_str(json.dumps(connect))
        hello = json.loads(await ws.receive_str(timeout=5 * S))
        assert hello["payload"]["server"]["version"] == "legacy"
        r = await _set_mode(proxy.admin_url, mode="candidate-primary")
        assert r.status == 200
        for i in range(5):  # the open connection keeps its routing: still answered by the legacy
            await ws.send_str(json.dumps({"type": "req", "id": f"h{i}", "method": "health"}))
            res = json.loads(await ws.receive_str(timeout=5 * S))
            assert res["id"] == f"h{i}" and res["ok"] is True
        assert sum('"health"' in f for f in legacy.ws_frames) == 5
        assert await _who(proxy.url) == "candidate"  # new traffic follows the new mode
        assert not ws.closed


async def test_admin_api_rejects_bad_mode_and_serves_metrics(two_gateways, make_proxy) -> None:
    legacy, candidate = two_gateways
    proxy = await make_proxy(legacy.url, candidate.url)
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.admin_url + "/mode", json={"mode": "sideways"}) as r:
            assert r.status == 400
            assert "mode: expected one of" in (await r.json())["error"]
        async with s.post(proxy.admin_url + "/mode", data=b"{nope") as r:
            assert r.status == 400 and "not JSON" in (await r.json())["error"]
        async with s.get(proxy.admin_url + "/healthz") as r:
            health = await r.json()
            assert health["ok"] is True and health["mode"] == "shadow" and set(health["queues"]) >= {"mirror", "pair"}
        await _who(proxy.url)
        async with s.get(proxy.admin_url + "/metrics") as r:
            text = await r.text()
    for name in ("parity_requests_total", "parity_policy_decisions_total", "parity_mode", "parity_proxy_rss_bytes",
                 "parity_client_connections", "parity_latency_seconds_bucket", "parity_queue_depth"):
        assert name in text, name
    assert 'parity_latency_seconds_count{leg="legacy",protocol="http",route="GET /healthz"} 1.0' in text
