"""Every Grafana panel query returns data from a REAL Prometheus scraping parity metrics under traffic.

Prometheus is Debian's binary on 127.0.0.1 (``parity.prometheus.PrometheusServer``: tmp TSDB, 1 s scrapes, the
project's rules.yml evaluated every second).

- ``test_panels_against_real_shadow_proxies``: two real ``shadow.proxy.ShadowProxy`` instances in front of the
  real legacy, under WS and HTTP traffic. One mirrors to the legacy itself (pairs, latencies); the other mirrors to
  a closed port with a 1-frame queue, so candidate errors and drops happen for real. Both are scraped as job
  ``parity-shadow`` and every panel must return data.
- ``test_every_panel_query_returns_data``: a fast variant without the legacy: an endpoint built from the real
  ``shadow.metrics.Metrics`` class, fed pair/latency/drop/error traffic shaped like a proxy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from parity.legacy import free_port
from parity.prometheus import PrometheusServer, find_prometheus
from shadow.config import ShadowConfig
from shadow.metrics import Metrics
from shadow.proxy import ShadowProxy

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    find_prometheus() is None,
    reason="prometheus not installed (Debian package 'prometheus'; scripts/setup.sh installs it as root)",
)

ROUTES = ("health", "chat.send", "sessions.list", "POST /hooks/wake")


def panel_queries() -> list[tuple[str, str, str]]:
    spec = importlib.util.spec_from_file_location("parity_dashboards_build", ROOT / "dashboards" / "build.py")
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    out = []
    for name, build in builder.DASHBOARDS.items():
        dashboard = build()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                out.append((f"{name} / {panel['title']} / {target['refId']}", target["expr"], panel["type"]))
    return out


def concrete(expr: str) -> str:
    """What Grafana would send: template variables and the rate interval substituted."""
    return expr.replace("$__rate_interval", "15s").replace("$route", ".+")


def drive(metrics: Metrics, rng: random.Random, n: int) -> None:
    """One burst of proxy-like traffic: pairs (5% mismatch on chat.send), latencies, a few drops and errors."""
    metrics.set_mode("shadow", ("shadow", "candidate-primary", "canary", "passthrough"))
    metrics.client_connections.labels(protocol="ws").set(3)
    metrics.client_connections.labels(protocol="http").set(1)
    metrics.queue_depth.labels(queue="mirror").set(rng.randint(0, 5))
    metrics.queue_depth.labels(queue="pair").set(rng.randint(0, 5))
    for _ in range(n):
        route = rng.choice(ROUTES)
        protocol = "http" if route.startswith("POST ") else "ws"
        match = not (route == "chat.send" and rng.random() < 0.05)
        outcome = "match" if match else "mismatch"
        metrics.pair(route, match)
        metrics.policy_decisions.labels(route=route, decision="mirror").inc()
        # Legacy answers within the (2.5 ms, 5 ms] bucket, the candidate within (5 ms, 10 ms]: whatever the sample,
        # the interpolated p50 ratio lies in (1, 4).
        for leg, low, high in (("legacy", 0.0026, 0.0049), ("candidate", 0.0051, 0.0099)):
            metrics.requests.labels(leg=leg, protocol=protocol, route=route, outcome=outcome).inc()
            metrics.latency.labels(leg=leg, protocol=protocol, route=route).observe(rng.uniform(low, high))
            metrics.frames.labels(leg=leg, direction="c2s").inc()
            metrics.frames.labels(leg=leg, direction="s2c").inc()
    metrics.drop("mirror", "full")
    metrics.candidate_errors.labels(kind="timeout").inc()
    metrics.legacy_errors.labels(kind="closed").inc()
    metrics.stage_errors.labels(stage="pair").inc()


@pytest.fixture
def metrics_endpoint() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics(CollectorRegistry())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield metrics, f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_every_panel_query_returns_data(tmp_path: Path, metrics_endpoint: tuple[Metrics, str]) -> None:
    metrics, target = metrics_endpoint
    queries = panel_queries()
    assert len(queries) > 25
    rng = random.Random(7)
    with PrometheusServer(tmp_path / "prom", [target], scrape_interval=1.0, rule_interval=1.0) as prom:
        empty: dict[str, str] = {}
        wrong: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            drive(metrics, rng, 200)
            empty = {where: concrete(expr) for where, expr, _kind in queries if not prom.query(concrete(expr))}
            # The figures are the ones the traffic implies, not just present. (Right after start a 5m rate can
            # still be 0/0 = NaN, when two scrapes saw the same counter value: wait for it to settle.)
            wrong = [] if empty else figure_problems(prom)
            if not empty and not wrong:
                break
            time.sleep(1.0)
        assert not empty, "panels without data after 120 s:\n" + "\n".join(f"{k}: {v}" for k, v in empty.items())
        assert not wrong, wrong


def figure_problems(prom: PrometheusServer) -> list[str]:
    problems = []
    health = [float(r["value"][1]) for r in prom.query('route:parity_ratio:rate5m{route="health"}')]
    if health != [1.0]:
        problems.append(f"health parity {health}, expected [1.0]")
    chat = [float(r["value"][1]) for r in prom.query('route:parity_ratio:rate5m{route="chat.send"}')]
    if len(chat) != 1 or not 0.8 < chat[0] < 1.0:
        problems.append(f"chat.send parity {chat}, expected one value in (0.8, 1)")
    ratios = [float(r["value"][1]) for r in prom.query("route:parity_latency_ratio:p50_rate5m")]
    if len(ratios) != len(ROUTES) or not all(1.0 < v < 4.0 for v in ratios):
        problems.append(f"p50 latency ratios {ratios}, expected {len(ROUTES)} values in (1, 4)")
    verdicts = {r["metric"]["route"]: float(r["value"][1]) for r in prom.query("route:parity_live_verdict:30m")}
    if set(verdicts) != set(ROUTES) or verdicts.get("chat.send") not in (1.0, 2.0):
        problems.append(f"live verdicts {verdicts}: chat.send must be fail (1) or, before 50 pairs, inconclusive (2)")
    return problems


def test_a_query_for_a_missing_metric_is_caught(tmp_path: Path, metrics_endpoint: tuple[Metrics, str]) -> None:
    """The emptiness check is real: a panel on a series nobody exports stays empty."""
    metrics, target = metrics_endpoint
    with PrometheusServer(tmp_path / "prom", [target], scrape_interval=1.0, rule_interval=1.0) as prom:
        drive(metrics, random.Random(1), 10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not prom.query("parity_pairs_total"):
            time.sleep(0.5)
        assert prom.query("parity_pairs_total")
        assert prom.query("rate(parity_no_such_series_total[15s])") == []


# -- the real proxy ----------------------------------------------------------------------------------------------


async def ws_session(session: aiohttp.ClientSession, url: str, token: str, rpcs: int) -> None:
    """Challenge, token connect (cli, no device), then ``rpcs`` read RPCs, each awaited by id."""
    async with session.ws_connect(url.replace("http://", "ws://"), timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
        challenge = await ws.receive_json(timeout=30)
        assert challenge["event"] == "connect.challenge"
        methods = ["connect"] + [random.choice(["health", "status", "sessions.list", "models.list"]) for _ in range(rpcs)]
        for method in methods:
            rid = str(uuid.uuid4())
            params: dict[str, Any] = {}
            if method == "connect":
                params = {"minProtocol": 4, "maxProtocol": 4, "role": "operator", "scopes": ["operator.read"],
                          "client": {"id": "cli", "version": "0.1", "platform": "linux", "mode": "cli"},
                          "auth": {"token": token}}
            await ws.send_str(json.dumps({"type": "req", "id": rid, "method": method, "params": params}))
            while True:
                frame = await ws.receive_json(timeout=60)
                if frame.get("type") == "res" and frame.get("id") == rid:
                    assert frame["ok"], frame
                    break


async def drive_proxy(url: str, token: str) -> None:
    """Read-only traffic (the legacy is shared with other tests): probes, tools invoke sessions_list, read RPCs."""
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{url}/healthz") as resp:
                assert resp.status == 200
            async with session.post(f"{url}/tools/invoke", json={"tool": "sessions_list", "args": {}},
                                    headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
        await asyncio.gather(*(ws_session(session, url, token, 8) for _ in range(2)))


@pytest.fixture
async def two_proxies(legacy: Any) -> AsyncIterator[tuple[ShadowProxy, ShadowProxy]]:
    base = {"listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
            "legacy": {"url": legacy.http_url, "token": legacy.token, "hook_token": legacy.hook_token}}
    healthy = ShadowProxy(ShadowConfig.from_mapping({
        **base, "candidate": {"url": legacy.http_url, "token": legacy.token, "hook_token": legacy.hook_token}}))
    broken = ShadowProxy(ShadowConfig.from_mapping({
        **base, "candidate": {"url": f"http://127.0.0.1:{free_port()}", "token": "x" * 48},
        "limits": {"conn_queue": 1, "candidate_timeout": 1.0, "connect_retries": 0}}))
    async with healthy, broken:
        yield healthy, broken


async def test_panels_against_real_shadow_proxies(tmp_path: Path, legacy: Any,
                                                  two_proxies: tuple[ShadowProxy, ShadowProxy]) -> None:
    healthy, broken = two_proxies
    targets = [p.admin_url.removeprefix("http://") for p in (healthy, broken)]
    queries = panel_queries()
    prom = PrometheusServer(tmp_path / "prom", targets, scrape_interval=1.0, rule_interval=1.0)
    await asyncio.to_thread(prom.start)
    try:
        empty: dict[str, str] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            await asyncio.gather(drive_proxy(healthy.url, legacy.token), drive_proxy(broken.url, legacy.token))
            await asyncio.sleep(1.5)
            empty = {}
            for where, expr, _kind in queries:
                if not await asyncio.to_thread(prom.query, concrete(expr)):
                    empty[where] = concrete(expr)
            if not empty:
                break
        assert not empty, "panels without data:\n" + "\n".join(f"{k}: {v}" for k, v in empty.items())
        up = await asyncio.to_thread(prom.query, 'up{job="parity-shadow"} == 1')
        assert len(up) == 2
        errors = await asyncio.to_thread(prom.query, "sum(parity_candidate_errors_total)")
        assert float(errors[0]["value"][1]) > 0
        assert broken.metrics.total("parity_candidate_errors_total") > 0
        assert healthy.metrics.total("parity_pairs_total") > 0
    finally:
        await asyncio.to_thread(prom.stop)
