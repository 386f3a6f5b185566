"""Recording: both legs' observations reach a redacted trace; write-ahead lines are durable before forwarding;
pairs are compared through the profile and counted (match and mismatch)."""

from __future__ import annotations

import json

import aiohttp
from _timing import S, async_wait_until
from shadow_fakes import FakeGateway, ws_transcript

from recorder.format import read_trace
from wire.model import Kind, Leg


async def test_trace_has_both_legs_and_no_secrets(tmp_path, fake_legacy: FakeGateway, fake_candidate: FakeGateway,
                                                  make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, record={"trace_dir": str(tmp_path)})
    await ws_transcript(proxy.url)
    async with aiohttp.ClientSession() as s, s.post(proxy.url + "/tools/invoke", data=b"{}",
                                                    headers={"Authorization": "Bearer tok-legacy"}) as r:
        assert r.status == 200
    await async_wait_until(lambda: proxy.metrics.total("parity_pairs_total", route="health") == 1, 20 * S,
                           what="health pair")
    await proxy.stop()
    (path,) = list(tmp_path.glob("shadow-*.jsonl"))
    text = path.read_text()
    assert "tok-legacy" not in text and "tok-cand" not in text
    trace = read_trace(open(path), strict=True)
    assert trace.complete
    legs = {(o.leg, o.kind) for o in trace.observations}
    assert (Leg.LEGACY, Kind.WS_TEXT) in legs and (Leg.CANDIDATE, Kind.WS_TEXT) in legs
    assert (Leg.LEGACY, Kind.HTTP_REQUEST) in legs
    connects = [o for o in trace.observations if o.kind is Kind.WS_TEXT and '"connect"' in (o.data or "")]
    assert connects and all("<GW_TOKEN>" in (o.data or "") or "<REDACTED>" in (o.data or "") for o in connects)


async def test_write_ahead_is_on_disk_before_the_legacy_sees_the_request(tmp_path, make_proxy) -> None:
    wal = tmp_path / "wal.jsonl"
    seen_at_forward: list[int] = []

    class Recording(FakeGateway):
        async def _handle(self, request):  # type: ignore[override]
            seen_at_forward.append(wal.read_text().count("\n") if wal.exists() else -1)
            return await super()._handle(request)

    legacy = await Recording(token="tok-legacy").start()
    try:
        proxy = await make_proxy(legacy.url, record={"write_ahead": True, "write_ahead_path": str(wal)})
        async with aiohttp.ClientSession() as s:
            for i in range(3):
                async with s.post(proxy.url + "/hooks/wake", data=json.dumps({"text": f"w{i}"}).encode(),
                                  headers={"Authorization": "Bearer tok-legacy"}) as r:
                    assert r.status == 200
            async with s.get(proxy.url + "/healthz") as r:  # read-only: not written ahead
                assert r.status == 200
        # header line + 1 line per write, and each was there before the legacy got the request
        assert seen_at_forward[:3] == [2, 3, 4]
        lines = wal.read_text().splitlines()
        assert len(lines) == 4 and "tok-legacy" not in wal.read_text()
        assert [json.loads(x)["path"] for x in lines[1:]] == ["/hooks/wake"] * 3
    finally:
        await legacy.stop()


async def test_ws_write_ahead_holds_each_side_effecting_frame_before_the_legacy_sees_it(tmp_path, make_proxy) -> None:
    """WS too: a side-effecting request frame (``chat.send``) is on disk, redacted, before the legacy receives it;
    read-only frames (connect, ``health``, ``status``) and non-JSON text are not written ahead."""
    wal = tmp_path / "wal.jsonl"
    lines_at_receipt: dict[str, int] = {}

    class Spy(list[str]):
        def append(self, text: str) -> None:  # FakeGateway._ws appends each frame as it receives it
            try:
                key = str(json.loads(text).get("method"))
            except (ValueError, AttributeError):
                key = text
            lines_at_receipt[key] = wal.read_text().count("\n") if wal.exists() else -1
            super().append(text)

    legacy = await FakeGateway(token="tok-legacy", ws_frames=Spy()).start()
    try:
        proxy = await make_proxy(legacy.url, record={"write_ahead": True, "write_ahead_path": str(wal)})
        await ws_transcript(proxy.url)
        # header + chat.send only; it was already there when the legacy got it
        assert lines_at_receipt["connect"] == 1 and lines_at_receipt["health"] == 1
        assert lines_at_receipt["chat.send"] == 2
        assert lines_at_receipt["{not json"] == 1 and lines_at_receipt["status"] == 2
        lines = wal.read_text().splitlines()
        assert len(lines) == 2 and "tok-legacy" not in wal.read_text()
        written = json.loads(lines[1])
        assert written["kind"] == "ws-text" and json.loads(written["data"])["method"] == "chat.send"
    finally:
        await legacy.stop()


async def test_mismatch_is_counted_and_ratio_drops(fake_legacy: FakeGateway, make_proxy) -> None:
    other = await FakeGateway(token="tok-cand", name="different").start()
    try:
        proxy = await make_proxy(fake_legacy.url, other.url)
        await ws_transcript(proxy.url)
        m = proxy.metrics
        # hello-ok differs (gatewayName is not volatile in the profile), health is equal
        await async_wait_until(lambda: m.total("parity_pairs_total", route="health") == 1, 20 * S, what="pairs")
        assert m.value("parity_pairs_total", {"route": "health", "outcome": "match"}) == 1
        await async_wait_until(lambda: m.value("parity_pairs_total", {"route": "connect", "outcome": "mismatch"}) == 1,
                               20 * S, what="connect mismatch")
        assert m.value("parity_requests_total", {"leg": "candidate", "protocol": "ws", "route": "connect",
                                                 "outcome": "mismatch"}) == 1
        assert m.value("parity_requests_total", {"leg": "legacy", "protocol": "ws", "route": "chat.send",
                                                 "outcome": "skipped"}) == 1
        assert 0 < m.value("parity_ratio", {"route": "*"}) < 1
    finally:
        await other.stop()


async def test_pairs_reach_the_parity_store(tmp_path, fake_legacy: FakeGateway, make_proxy) -> None:
    from diffing.store import Store

    other = await FakeGateway(token="tok-cand", name="different").start()
    db = f"sqlite:///{tmp_path / 'parity.db'}"
    try:
        proxy = await make_proxy(fake_legacy.url, other.url, record={"db": db})
        await ws_transcript(proxy.url)
        m = proxy.metrics
        await async_wait_until(lambda: m.total("parity_pairs_total", route="health") == 1, 20 * S, what="pairs")
        run_id = proxy.run_id
        await proxy.stop()
    finally:
        await other.stop()
    store = await Store.open(db)
    try:
        rows = await store.pair_rows(run_id)
        diffs = await store.diff_rows(run_id)
    finally:
        await store.close()
    routes = {r["route"]: r for r in rows}
    assert routes["health"]["equal"] and not routes["connect"]["equal"]
    assert any("gatewayName" in d["path"] for d in diffs)
    assert all("tok-legacy" not in str(r) and "tok-cand" not in str(r) for r in rows + diffs)


def test_pairer_keeps_no_state_per_finished_request() -> None:
    """A long-lived connection with many RPCs must not grow the pairer (ids are forgotten once paired)."""
    from shadow.pipeline import Pairer
    from wire.model import Direction, Observation
    from wire.profiles.openclaw import get_profile

    p = Pairer(10.0, get_profile("openclaw"))
    p.expect("c1", "conn", "", "ws-conn", 0.0)
    outcomes = []
    for i in range(500):
        p.expect("c1", f"req:r{i}", "health", "ws", float(i))
        for leg in (Leg.LEGACY, Leg.CANDIDATE):
            obs = Observation(t=float(i), conn="c1", leg=leg, dir=Direction.S2C, kind=Kind.WS_TEXT,
                              data=json.dumps({"type": "res", "id": f"r{i}", "ok": True, "payload": {}}))
            outcomes += [r.outcome for r in p.receive(obs)]
    assert outcomes == ["pair"] * 500
    assert not p.pending and not p._res_index and not p._mirrored_ids["c1"] and p.bytes == 0


async def test_sampling_zero_keeps_only_record_only_requests(tmp_path, fake_legacy: FakeGateway,
                                                             fake_candidate: FakeGateway, make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, policy={"status": "record-only"},
                             record={"trace_dir": str(tmp_path), "sample_rate": 0.0})
    await ws_transcript(proxy.url)
    m = proxy.metrics
    assert m.value("parity_policy_decisions_total", {"route": "status", "decision": "record-only"}) == 1
    await proxy.stop()
    (path,) = list(tmp_path.glob("shadow-*.jsonl"))
    trace = read_trace(open(path), strict=True)
    assert [json.loads(o.data or "{}").get("method") for o in trace.observations] == ["status"]
    assert not any('"status"' in f for f in fake_candidate.ws_frames), "record-only must not be mirrored"
