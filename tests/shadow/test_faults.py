"""Fault isolation: whatever the candidate does, the client transcript is the legacy's, the client sees no error,
the proxy keeps serving, and the fault is counted in the metrics (issue 6 acceptance)."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import pytest
from _timing import S, async_wait_until
from shadow_fakes import Exposed, FakeGateway, GarbageServer, free_port, http_transcript, ws_transcript


def _cand(m: Exposed, kind: str | None = None) -> float:
    return m.total("parity_candidate_errors_total", **({"kind": kind} if kind else {}))


#: where the mirror side runs: in the proxy's process, or in its mirror process (``limits.mirror_process``)
PLACEMENTS = {"in-process": {}, "mirror-process": {"mirror_process": True}}

FAULTS: dict[str, tuple[str | None, dict[str, int], Callable[[Exposed], bool], str]] = {
    # name: (FakeGateway fault, limits, counted?, what the metric shows)
    "slow-5s": ("slow", {}, lambda m: _cand(m, "timeout") > 0, "candidate_errors{kind=timeout}"),
    "killed-mid-stream": ("kill", {}, lambda m: _cand(m, "closed") + _cand(m, "connect") > 0,
                          "candidate_errors{kind=closed|connect}"),
    "garbage-frames": ("garbage", {}, lambda m: _cand(m, "protocol") >= 2, "candidate_errors{kind=protocol}"),
    "oversized-frame": ("oversized", {"max_frame": 1 << 20}, lambda m: _cand(m, "protocol") >= 1,
                        "candidate_errors{kind=protocol} (1009)"),
    "abrupt-close": ("abrupt", {}, lambda m: _cand(m, "closed") >= 1, "candidate_errors{kind=closed}"),
    "event-flood": ("flood", {"global_queue": 256},
                    lambda m: m.total("parity_dropped_total", stage="pair", reason="full") > 0,
                    "dropped_total{stage=pair,reason=full}"),
}


async def _still_serving(url: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        assert r.status == 200 and await r.read() == b'{"ok":true,"status":"live"}'


@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("name", list(FAULTS))
async def test_candidate_fault_never_reaches_the_client(name: str, placement: str, fake_legacy: FakeGateway,
                                                        make_proxy) -> None:
    fault, limits, counted, what = FAULTS[name]
    limits = {**limits, **PLACEMENTS[placement]}
    candidate = await FakeGateway(token="tok-cand", fault=fault, fixed_nonce=False).start()
    try:
        direct_http = await http_transcript(fake_legacy.url)
        direct_ws = await ws_transcript(fake_legacy.url)
        proxy = await make_proxy(fake_legacy.url, candidate.url, limits=limits,
                                 policy={"POST /tools/invoke": "mirror"})
        # WS first so a fault that kills the candidate process hits an open mirror session mid-stream
        assert await ws_transcript(proxy.url) == direct_ws
        assert await http_transcript(proxy.url) == direct_http
        await _still_serving(proxy.url)
        if placement == "mirror-process":  # the candidate really was handled by the child
            assert proxy.health()["mirror_process"]["alive"]
        await async_wait_until(lambda: counted(Exposed(proxy)), 15 * S, what=f"{name} counted as {what}")
        assert Exposed(proxy).total("parity_legacy_errors_total") == 0
    finally:
        await candidate.stop()


async def test_candidate_down_at_start(fake_legacy: FakeGateway, make_proxy) -> None:
    direct_http = await http_transcript(fake_legacy.url)
    direct_ws = await ws_transcript(fake_legacy.url)
    proxy = await make_proxy(fake_legacy.url, f"http://127.0.0.1:{free_port()}", policy={"GET /*": "mirror"})
    assert await ws_transcript(proxy.url) == direct_ws
    assert await http_transcript(proxy.url) == direct_http
    await _still_serving(proxy.url)
    await async_wait_until(lambda: _cand(proxy.metrics, "connect") >= 3, 10 * S, what="connect errors counted")
    # retried with backoff (connect_retries=2 -> 3 attempts for the WS session), then gave up without harm
    await async_wait_until(
        lambda: proxy.metrics.total("parity_requests_total", leg="candidate", outcome="error") >= 1, 10 * S,
        what="HTTP mirror failures counted as candidate errors")


async def test_candidate_answers_invalid_http(fake_legacy: FakeGateway, make_proxy) -> None:
    garbage = await GarbageServer().start()
    try:
        direct_http = await http_transcript(fake_legacy.url)
        direct_ws = await ws_transcript(fake_legacy.url)
        proxy = await make_proxy(fake_legacy.url, garbage.url)
        assert await http_transcript(proxy.url) == direct_http
        assert await ws_transcript(proxy.url) == direct_ws
        await _still_serving(proxy.url)
        await async_wait_until(lambda: _cand(proxy.metrics, "protocol") + _cand(proxy.metrics, "closed") >= 2,
                               10 * S, what="invalid HTTP counted")
        assert garbage.connections >= 2
    finally:
        await garbage.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "aiohttp"])
async def test_legacy_down_gives_502_and_1011_then_recovers(fast: bool, make_proxy,
                                                            fake_candidate: FakeGateway) -> None:
    port = free_port()
    proxy = await make_proxy(f"http://127.0.0.1:{port}", fake_candidate.url, limits={"fast_http": fast})
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/healthz") as r:
            body = await r.text()
            assert r.status == 502
            assert "legacy gateway is unavailable" in body and "connect" in body
        async with s.ws_connect(proxy.url.replace("http", "ws") + "/") as ws:
            msg = await ws.receive(5 * S)
            assert msg.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 1011 and "legacy gateway unavailable" in (msg.extra or "")
    assert proxy.metrics.total("parity_legacy_errors_total", kind="connect") >= 2
    legacy = await FakeGateway(token="tok-legacy").start(port=port)
    try:
        await _still_serving(proxy.url)  # recovered by itself: no restart, no admin call
        assert await ws_transcript(proxy.url) == await ws_transcript(legacy.url)
    finally:
        await legacy.stop()


async def test_overload_sheds_mirror_work_never_client_work(fake_legacy: FakeGateway, fake_candidate: FakeGateway,
                                                            make_proxy) -> None:
    """With ``shed_lag_ms`` set, a busy event loop drops new mirror work (counted as overload); clients are served."""
    import asyncio
    import time

    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={"shed_lag_ms": 5.0})
    stop = False

    async def hog() -> None:  # a CPU hog sharing the proxy's loop
        while not stop:
            time.sleep(0.03)
            await asyncio.sleep(0.005)

    task = asyncio.ensure_future(hog())
    try:
        await async_wait_until(lambda: proxy.pipeline.budget.overloaded, 10 * S, what="overload detected")
        n = len(fake_candidate.http_requests)
        await _still_serving(proxy.url)
        assert proxy.metrics.value("parity_dropped_total", {"stage": "mirror", "reason": "overload"}) >= 1
        assert len(fake_candidate.http_requests) == n
    finally:
        stop = True
        await task
    await async_wait_until(lambda: not proxy.pipeline.budget.overloaded, 10 * S, what="overload cleared")
    await _still_serving(proxy.url)
    await async_wait_until(lambda: any(p == "/healthz" for _, p, _, _ in fake_candidate.http_requests), 5 * S,
                           what="mirroring resumed")


async def test_diff_worker_killed_is_replaced_and_pairs_keep_being_compared(
    fake_legacy: FakeGateway, fake_candidate: FakeGateway, make_proxy
) -> None:
    """A diff worker process that dies (OOM killer, a signal) breaks its pool; the next pair starts a new one, and
    every pair is still compared. The client never notices."""
    import os
    import signal

    from shadow import compare

    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={"diff_workers": 1})
    compared = lambda: proxy.metrics.total("parity_pairs_total")  # noqa: E731

    async def one() -> None:  # 16 KB, more than the diff stage compares in place: each pair goes to the worker
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/binary") as r:
            assert r.status == 200 and await r.read() == bytes(range(256)) * 64

    await one()
    await async_wait_until(lambda: compared() == 1, 20 * S, what="first pair compared in the worker")
    pool = compare._EXECUTORS[1]
    pids = list(pool._processes)  # noqa: SLF001 - the worker to kill
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for _ in range(3):
        await one()
    await async_wait_until(lambda: compared() == 4, 30 * S, what="pairs compared after the worker died")
    assert compare._EXECUTORS[1] is not pool, "a new pool replaced the broken one"
    assert proxy.metrics.total("parity_stage_errors_total") == 0
