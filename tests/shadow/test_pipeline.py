"""shadow.pipeline: what crosses to the mirror process, and the queue gauges."""

from __future__ import annotations

import dataclasses
import pickle

from conftest import proxy_config
from prometheus_client import CollectorRegistry

from shadow.metrics import Metrics
from shadow.pipeline import HttpJob, Pipeline
from wire.model import Leg


def test_http_job_pickles_every_field() -> None:
    """``HttpJob.__reduce__`` lists the fields by hand (speed): a new field must be added there too."""
    values = {"conn": "h3", "leg": Leg.CANDIDATE, "method": "POST", "path": "/tools/invoke?x=1",
              "headers": (("Content-Type", "application/json"),), "body": b'{"a":1}', "route": "POST /tools/invoke",
              "queued_at": 12.5}
    assert {f.name for f in dataclasses.fields(HttpJob)} == set(values)
    job = HttpJob(**values)
    assert pickle.loads(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)) == job


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
