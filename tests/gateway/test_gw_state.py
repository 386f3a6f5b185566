"""Per-client seq, the slow-consumer rule, event scope guards and the idempotency cache (reference §2.6, §2.7)."""

from __future__ import annotations

import json

from gateway.state import ClientConn, Dedupe, GatewayState, event_allowed


async def test_slow_consumer_drops_droppable_events_and_closes_on_others() -> None:
    conn = ClientConn("c1", "127.0.0.1", max_buffered=200)
    assert conn.send_event("tick", {"ts": 1}, drop_if_slow=True)
    assert not conn.send_event("presence", {"presence": ["x" * 300]}, drop_if_slow=True)  # dropped ...
    assert conn.seq == 2 and conn.close_request is None  # ... but the counter advanced and the client stays
    assert not conn.send_event("chat", {"text": "y" * 300})  # a non-droppable frame closes the slow client
    assert conn.close_request == (1008, "slow consumer")
    first = await conn.next_frame()
    assert first is not None and json.loads(first)["seq"] == 1
    assert await conn.next_frame() is None  # then the writer is told to close


async def test_broadcast_gives_each_client_its_own_seq_and_applies_scope_guards() -> None:
    state = GatewayState()
    reader, pairing = ClientConn("a", "127.0.0.1"), ClientConn("b", "127.0.0.1")
    reader.scopes, pairing.scopes = frozenset({"operator.read"}), frozenset({"operator.pairing"})
    for c in (reader, pairing):
        state.register(c)
        c.authorized = True
    assert state.broadcast("tick", {"ts": 1}) == 2
    assert state.broadcast("chat", {"state": "final"}) == 1  # chat needs operator.read
    assert state.broadcast("device.pair.requested", {}) == 1  # pairing events need operator.pairing
    assert state.broadcast("some.unknown.family", {}) == 0  # unknown families fail closed
    assert (reader.seq, pairing.seq) == (2, 2)
    assert event_allowed("anything", frozenset({"operator.admin"}), "operator")


def test_dedupe_ttl_and_bound() -> None:
    d = Dedupe(ttl_s=300, max_entries=3)
    for i in range(5):
        d.put(f"k{i}", i)
    assert d.get("k0") is None and d.get("k4") == 4
    expired = Dedupe(ttl_s=-1)
    expired.put("k", 1)
    assert expired.get("k") is None
