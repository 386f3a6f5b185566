"""wire.pairing: join by (connection, key); events as multisets by name; timers excluded; explicit leftovers."""

from __future__ import annotations

from wire.correlate import correlate
from wire.frames import parse_frame
from wire.model import Direction, Exchange, ExchangeKind, Kind, Leg, Observation
from wire.pairing import Pairer, pair_exchanges
from wire.profiles.openclaw import OPENCLAW


def ex(leg: Leg, key: str, *, conn: str = "c1", kind: ExchangeKind = ExchangeKind.WS, group: str = "health",
       t: float = 0.0, request: bool = True) -> Exchange:
    req = parse_frame(f'{{"type":"req","id":"{key}","method":"{group}"}}', t=t) if request else None
    return Exchange(leg=leg, conn=conn, key=key, kind=kind, group=group, request=req, t_start=t, t_end=t)


L, C = Leg.LEGACY, Leg.CANDIDATE


def test_batch_pairs_by_conn_and_key() -> None:
    pairs = pair_exchanges([ex(L, "a"), ex(L, "b"), ex(L, "a", conn="c2")],
                           [ex(C, "b"), ex(C, "a", conn="c2"), ex(C, "a")], OPENCLAW, scenario="s")
    assert [(p.conn, p.key, p.legacy is not None, p.candidate is not None) for p in pairs] == [
        ("c1", "a", True, True), ("c1", "b", True, True), ("c2", "a", True, True)]
    assert all(p.scenario == "s" and p.legacy.leg is L and p.candidate.leg is C for p in pairs)  # type: ignore[union-attr]


def test_leftover_requests_pair_by_group_ordinal_then_stay_one_sided() -> None:
    pairs = pair_exchanges([ex(L, "r1", group="status"), ex(L, "only-legacy", group="health")],
                           [ex(C, "x9", group="status"), ex(C, "only-cand", group="models.list")], OPENCLAW)
    joined = [(p.legacy.key if p.legacy else None, p.candidate.key if p.candidate else None) for p in pairs]
    assert joined == [("r1", "x9"), ("only-legacy", None), (None, "only-cand")]


def test_events_pair_as_multisets_by_name_and_timers_are_excluded() -> None:
    def ev(leg: Leg, key: str, t: float) -> Exchange:
        return ex(leg, key, kind=ExchangeKind.EVENT, group=key.split(":")[1].split("#")[0], t=t, request=False)

    legacy = [ev(L, "event:chat#1", 1), ev(L, "event:agent#1", 2), ev(L, "event:chat#2", 3), ev(L, "event:tick#1", 4)]
    candidate = [ev(C, "event:agent#1", 1), ev(C, "event:chat#1", 2), ev(C, "event:tick#1", 3),
                 ev(C, "event:tick#2", 5)]
    pairs = pair_exchanges(legacy, candidate, OPENCLAW)
    assert sorted((p.key, p.legacy is not None, p.candidate is not None) for p in pairs) == [
        ("event:agent#1", True, True), ("event:chat#1", True, True), ("event:chat#2", True, False)]


def test_streaming_pairer() -> None:
    p = Pairer(OPENCLAW, scenario="live")
    assert p.add(ex(L, "a", t=0)) is None
    pair = p.add(ex(C, "a", t=0.1))
    assert pair is not None and pair.legacy is not None and pair.candidate is not None and pair.scenario == "live"
    assert p.add(ex(C, "b", t=1)) is None
    assert p.add(ex(L, "b", t=1)) is not None  # candidate first works too
    assert p.add(Exchange(leg=L, conn="c1", key="event:tick#1", kind=ExchangeKind.EVENT, group="tick")) is None
    assert p.skipped == 1
    # Same leg, same key twice: the older one is flushed as one-sided.
    p.add(ex(L, "dup", t=2))
    flushed = p.add(ex(L, "dup", t=3))
    assert flushed is not None and flushed.candidate is None and flushed.legacy is not None
    # Expiry: events wait event_window, requests response_timeout.
    p.add(ex(C, "event:chat#1", kind=ExchangeKind.EVENT, group="chat", t=10, request=False))
    assert p.waiting == 2
    expired = p.expire(now=10 + OPENCLAW.event_window)
    assert [(e.key, e.legacy is None) for e in expired] == [("event:chat#1", True)]
    assert p.expire(now=3 + OPENCLAW.response_timeout - 1) == []
    (last,) = p.flush()
    assert last.key == "dup" and last.candidate is None and p.waiting == 0


def _task_events(leg: Leg, *statuses: str) -> list[Exchange]:
    obs = [Observation(t=t, conn="c1", dir=Direction.S2C, kind=Kind.WS_TEXT, leg=leg,
                       data=f'{{"type":"event","event":"task","payload":{{"task":{{"status":"{s}"}}}}}}')
           for t, s in enumerate(statuses)]
    return correlate(obs, OPENCLAW)


def test_progress_updates_are_skipped_and_final_events_pair_whatever_their_number() -> None:
    """A/A: 6 running upserts in one legacy run, 5 in the next; only the completed upserts are paired."""
    legacy = _task_events(L, *["running"] * 6, "completed")
    candidate = _task_events(C, *["running"] * 5, "completed")
    pairs = pair_exchanges(legacy, candidate, OPENCLAW)
    assert [(p.key, p.legacy is not None, p.candidate is not None) for p in pairs] == [("event:task#1", True, True)]
    streaming = Pairer(OPENCLAW)
    joined = [pair for e in legacy + candidate if (pair := streaming.add(e)) is not None]
    assert [p.key for p in joined] == ["event:task#1"] and streaming.skipped == 11 and streaming.waiting == 0
    # a final state the candidate never sends is still a one-sided pair
    alone = pair_exchanges(legacy, _task_events(C, "running"), OPENCLAW)
    assert [(p.key, p.candidate is None) for p in alone] == [("event:task#1", True)]
