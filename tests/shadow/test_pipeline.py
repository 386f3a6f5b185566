"""shadow.pipeline: the mirror deadline, and the queue gauges."""

from __future__ import annotations

import asyncio

from conftest import proxy_config
from prometheus_client import CollectorRegistry

from shadow.metrics import Metrics
from shadow.pipeline import INLINE_COMPARE_MAX, HttpJob, Pipeline
from wire.model import Direction, Kind, Leg, Observation


async def test_a_job_past_its_deadline_is_dropped_and_its_expectation_forgotten() -> None:
    """A mirror job that waited in the queue past ``candidate_timeout`` is not sent; the primary's request is
    counted dropped, once, and its half does not wait out the pair window to be counted ``unpaired`` as well."""
    now = [100.0]
    metrics = Metrics(CollectorRegistry())
    sent: list[HttpJob] = []

    async def send(job: HttpJob) -> None:
        sent.append(job)

    pipeline = Pipeline(proxy_config("http://127.0.0.1:9", limits={"candidate_timeout": 1.0}), metrics,
                        http_mirror=send, clock=lambda: now[0])
    await pipeline.start()
    try:
        pipeline.expect("h1", "http", "GET /healthz", "http")
        assert pipeline.mirror_http(HttpJob("h1", Leg.CANDIDATE, "GET", "/healthz", (), b"", "GET /healthz", 98.5))
        pipeline.observe(Observation(t=0.5, conn="h1", leg=Leg.LEGACY, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE,
                                     status=200, data="{}"))  # the primary's answer: h1's half holds it
        pipeline.expect("h2", "http", "GET /healthz", "http")  # a fresh one still goes
        assert pipeline.mirror_http(HttpJob("h2", Leg.CANDIDATE, "GET", "/healthz", (), b"", "GET /healthz", 99.9))
        for name in ("mirror", "pair"):
            await pipeline.stages[name].drain(5.0)
        assert [j.conn for j in sent] == ["h2"]
        assert set(pipeline.pairer.pending) == {("h2", "http")}
        assert metrics.value("parity_dropped_total", {"stage": "mirror", "reason": "deadline"}) == 1
        now[0] += 60.0  # far past the pair window: h2's half expires, h1 left nothing to expire
        for result in pipeline.pairer.expire(pipeline.now()):
            pipeline._account(result)
        assert metrics.total("parity_requests_total", outcome="dropped") == 1
        assert metrics.total("parity_requests_total", leg="legacy", outcome="dropped") == 1
        assert metrics.total("parity_requests_total", outcome="unpaired") == 0  # h2 had no observation yet
    finally:
        await pipeline.close(0.5)


async def test_queue_depth_and_mirror_bytes_are_read_when_scraped() -> None:
    """The depth gauges are not set per item: they read the queue and the budget at scrape time."""
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(proxy_config("http://127.0.0.1:9"), metrics)  # stages not started: nothing is taken
    for i in range(3):
        assert pipeline.mirror_http(HttpJob(f"h{i}", Leg.CANDIDATE, "GET", "/", (), b"x" * 100, "GET /", 0.0))
    pipeline.expect("c1", "req:r1", "health", "ws")
    assert metrics.value("parity_queue_depth", {"queue": "mirror"}) == 3
    assert metrics.value("parity_queue_depth", {"queue": "pair"}) == 1
    assert metrics.value("parity_queue_depth", {"queue": "mirror_bytes"}) == 300
    pipeline.budget.give(300)
    assert metrics.value("parity_queue_depth", {"queue": "mirror_bytes"}) == 0


async def test_small_pairs_the_cheap_stages_settle_are_compared_on_the_loop_the_rest_by_the_worker() -> None:
    """The diff stage keeps the round trip to a worker for pairs that need DeepDiff: small pairs equal after
    normalization (the same payload, or one differing only in a masked volatile field) are settled in place; a
    real difference, in the body or a header, and a large pair go to the worker; every verdict is counted."""
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(proxy_config("http://127.0.0.1:9", limits={"diff_workers": 1}), metrics)
    await pipeline.start()

    def answer(conn: str, leg: Leg, body: str, ctype: str = "application/json") -> None:
        pipeline.observe(Observation(t=1.0, conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE,
                                     status=200, headers=(("Content-Type", ctype),), data=body))

    big = '{"x":"' + "y" * (INLINE_COMPARE_MAX + 10) + '"}'
    cases = {  # conn: (legacy body, candidate body, candidate content type, settled in place, verdict)
        "h1": ('{"ok":true}', '{"ok":true}', "application/json", True, "match"),  # raw-equal
        "h2": ('{"ok":true,"ts":1}', '{"ts":2,"ok":true}', "application/json", True, "match"),  # a masked field
        "h3": ('{"ok":true}', '{"ok":false}', "application/json", False, "mismatch"),  # a real difference
        "h4": ('{"ok":true}', '{"ok":true}', "text/plain", False, "mismatch"),  # another header
        "h5": (big, big, "application/json", False, "match"),  # larger than INLINE_COMPARE_MAX
    }
    try:
        for n, (conn, (lbody, cbody, ctype, in_place, verdict)) in enumerate(cases.items(), 1):
            before = pipeline.inline_compared
            pipeline.expect(conn, "http", "GET /healthz", "http")
            answer(conn, Leg.LEGACY, lbody)
            answer(conn, Leg.CANDIDATE, cbody, ctype)
            for _ in range(600):
                if metrics.total("parity_pairs_total") == n:
                    break
                await asyncio.sleep(0.05)
            assert metrics.total("parity_pairs_total", outcome=verdict) >= 1, conn
            assert pipeline.inline_compared - before == int(in_place), conn
        assert metrics.total("parity_pairs_total", outcome="match") == 3
        assert metrics.total("parity_pairs_total", outcome="mismatch") == 2
        assert metrics.value("parity_stage_errors_total", {"stage": "diff"}) == 0
    finally:
        await pipeline.close(0.5)


async def test_a_pipeline_starts_on_a_shared_pool_that_lost_its_worker() -> None:
    """The diff pool is shared by the pipelines of a process; one whose worker died since its last use (no pair
    went to it to notice) is replaced at start instead of failing the proxy's start."""
    import os
    import signal

    from shadow import compare

    pool = compare.executor(1)
    pool.submit(compare.warm).result(60)
    for pid in list(pool._processes):  # noqa: SLF001 - the worker to kill
        os.kill(pid, signal.SIGKILL)
    for _ in range(600):
        if pool._broken:  # noqa: SLF001 - the pool notices the death on its own thread
            break
        await asyncio.sleep(0.05)
    assert pool._broken  # noqa: SLF001
    pipeline = Pipeline(proxy_config("http://127.0.0.1:9", limits={"diff_workers": 1}), Metrics(CollectorRegistry()))
    await pipeline.start()
    try:
        assert compare.executor(1) is not pool
    finally:
        await pipeline.close(0.5)
