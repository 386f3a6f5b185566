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

