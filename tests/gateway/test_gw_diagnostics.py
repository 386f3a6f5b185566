"""``diagnostics.stability``: the ring of recorded diagnostic events (gateway.diagnostics), as the legacy answers it.

The golden trace rpc-diagnostics-stability shows the legacy's shape: ``capacity`` 1000, ``count``, ``dropped``,
``firstSeq``/``lastSeq``, the last ``limit`` (50) ``events`` and a ``summary`` (``byType``, ``payloadLarge``).
"""

from __future__ import annotations

import json

import pytest
from gw_support import GatewayFactory, RunningGateway, offline_config, open_client

from gateway.diagnostics import DiagnosticRecorder, Query, query_from_params
from parity.legacy import FakeModelServer


def test_ring_keeps_the_newest_records_and_counts_the_dropped() -> None:
    rec = DiagnosticRecorder(capacity=3)
    for i in range(5):
        rec.record("model.call.started" if i % 2 else "payload.large", surface="gateway.ws.preauth" if i % 2 == 0 else None,
                   action="rejected")
    snap = rec.snapshot(Query(limit=2))
    assert (snap["capacity"], snap["count"], snap["dropped"], snap["firstSeq"], snap["lastSeq"]) == (3, 3, 2, 3, 5)
    assert [e["seq"] for e in snap["events"]] == [4, 5]
    assert "surface" not in snap["events"][0]  # None fields are left out, as the legacy's JSON drops undefined
    assert snap["summary"] == {"byType": {"payload.large": 2, "model.call.started": 1},
                               "payloadLarge": {"count": 2, "rejected": 2, "truncated": 0, "chunked": 0,
                                                "bySurface": {"gateway.ws.preauth": 2}}}
    assert rec.snapshot(Query(type="model.call.started"))["count"] == 1
    assert rec.snapshot(Query(since_seq=4))["firstSeq"] == 5
    empty = DiagnosticRecorder().snapshot()
    assert "firstSeq" not in empty and empty["events"] == [] and empty["summary"] == {"byType": {}}


@pytest.mark.parametrize(("params", "message"), [
    ({"limit": 0}, "limit must be between 1 and 1000"),
    ({"limit": 1001}, "limit must be between 1 and 1000"),
    ({"limit": "x"}, "limit must be a non-negative integer"),
    ({"limit": -1}, "limit must be a non-negative integer"),
    ({"sinceSeq": 1.5}, "sinceSeq must be a non-negative integer"),
    ({"type": 5}, "type must be a non-empty string"),
    ({"type": "  "}, "type must be a non-empty string"),
])
def test_query_errors_are_the_legacys(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        query_from_params(params)


def test_query_defaults() -> None:
    assert query_from_params({}) == Query(limit=50)
    assert query_from_params({"limit": "7", "type": " payload.large ", "sinceSeq": 3}) == Query(7, "payload.large", 3)


async def test_preauth_oversize_is_recorded_as_payload_large(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        await c.send(json.dumps({"type": "req", "id": "1", "method": "connect", "params": {"pad": "x" * 70_000}}))
        assert (await c.closed())[0] == 1009
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        res = await c.call("diagnostics.stability", {})
        bad = await c.call("diagnostics.stability", {"limit": 0})
    snap = res["payload"]
    event = snap["events"][-1]
    assert {k: v for k, v in event.items() if k not in ("seq", "ts")} == {  # the golden trace's record
        "type": "payload.large", "surface": "gateway.ws.preauth", "action": "rejected", "limitBytes": 65536,
        "reason": "preauth_frame_limit"}
    assert snap["summary"]["payloadLarge"] == {"count": 1, "rejected": 1, "truncated": 0, "chunked": 0,
                                               "bySurface": {"gateway.ws.preauth": 1}}
    assert bad["error"] == {"code": "INVALID_REQUEST", "message": "limit must be between 1 and 1000"}


async def test_model_calls_are_recorded(gw_factory: GatewayFactory, fake_model: FakeModelServer) -> None:
    token = "tok-" + "d" * 20
    async with gw_factory(data=offline_config(token, fake_model.url)) as g, open_client(g.url) as c:
        assert (await c.connect(auth={"token": token}))["ok"]
        await c.chat_turn("ping", "d-1")
        snap = (await c.call("diagnostics.stability", {"type": "model.call.completed"}))["payload"]
        started = (await c.call("diagnostics.stability", {"type": "model.call.started"}))["payload"]
    assert started["count"] == snap["count"] >= 1
    call = snap["events"][-1]
    assert call["provider"] == "fakellm" and call["model"] == "fake-model"
    assert call["requestBytes"] > 0 and call["responseBytes"] > 0 and call["durationMs"] >= call["timeToFirstByteMs"] >= 0
