"""The diff stage takes what is queued as one batch (one worker message per batch); a pair whose comparison raises
is one stage error and costs none of the other pairs of its batch."""

from __future__ import annotations

from typing import Any

from conftest import proxy_config
from prometheus_client import CollectorRegistry

from shadow.metrics import Metrics
from shadow.pipeline import DIFF_BATCH, Joined, Pipeline
from wire.model import Direction, Kind, Leg, Observation


def _joined(key: str) -> Joined:
    obs = Observation(t=0.0, conn="c1", leg=Leg.LEGACY, dir=Direction.S2C, kind=Kind.WS_TEXT, data="{}")
    return Joined("c1", key, "health", "ws", "pair", {Leg.LEGACY: obs, Leg.CANDIDATE: obs})


async def test_queued_pairs_are_compared_in_batches_and_one_failure_costs_one_pair() -> None:
    batches: list[int] = []

    def comparator(joined: Joined) -> tuple[bool, Any]:
        if joined.key == "bad":
            raise ValueError("cannot compare this one")
        return joined.key != "differs", None

    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(proxy_config("http://127.0.0.1:9"), metrics, comparator=comparator)
    stage = pipeline.stages["diff"]
    handler = stage.handler

    async def spy(batch: list[Joined]) -> None:
        batches.append(len(batch))
        await handler(batch)

    stage.handler = spy
    keys = [str(i) for i in range(100)] + ["bad", "differs"]
    for k in keys:
        assert stage.offer(_joined(k))
    await pipeline.start()
    try:
        await stage.drain(10.0)
    finally:
        await pipeline.close()
    assert sum(batches) == len(keys) and max(batches) == DIFF_BATCH and len(batches) == 2
    assert metrics.total("parity_stage_errors_total", stage="diff") == 1
    assert metrics.total("parity_pairs_total", outcome="match") == 100
    assert metrics.total("parity_pairs_total", outcome="mismatch") == 1


def test_http_job_pickles_every_field() -> None:
    """``HttpJob.__reduce__`` lists the fields by hand (speed): a new field must be added there too."""
    import dataclasses
    import pickle

    from shadow.pipeline import HttpJob

    values = {"conn": "h3", "leg": Leg.CANDIDATE, "method": "POST", "path": "/tools/invoke?x=1",
              "headers": (("Content-Type", "application/json"),), "body": b'{"a":1}', "route": "POST /tools/invoke",
              "queued_at": 12.5}
    assert {f.name for f in dataclasses.fields(HttpJob)} == set(values)
    job = HttpJob(**values)
    assert pickle.loads(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)) == job


async def test_queue_depth_and_mirror_bytes_are_read_when_scraped() -> None:
    """The depth gauges are not set per item: they read the queue and the budget at scrape time."""
    from shadow.pipeline import HttpJob

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
