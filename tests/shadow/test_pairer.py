"""shadow.pairer.Pairer: expiry by deadline, what it keeps after a pair resolves, per-connection clean-up."""

from __future__ import annotations

import json

from shadow.pairer import Pairer
from wire.model import Direction, Kind, Leg, Observation
from wire.profiles.openclaw import get_profile


def _http(conn: str, leg: Leg, t: float, body: str = "ok") -> Observation:
    return Observation(t=t, conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE, status=200, data=body)


def _event(conn: str, leg: Leg, t: float, name: str = "chat") -> Observation:
    return Observation(t=t, conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.WS_TEXT,
                       data=json.dumps({"type": "event", "event": name, "payload": {"n": t}}))


def test_expiry_resolves_exactly_the_halves_past_the_window_in_any_arrival_order() -> None:
    p = Pairer(10.0, get_profile("openclaw"))
    # HTTP halves expected at t = 0..99, then a WS event half whose legacy frame is older than all of them.
    for i in range(100):
        p.expect(f"h{i}", "http", "GET /healthz", "http", float(i))
    p.expect("c1", "conn", "", "ws-conn", 0.0)
    assert p.receive(_event("c1", Leg.LEGACY, 0.5)) == []  # queued by name, waiting for the candidate's
    joined = p.receive(_event("c1", Leg.CANDIDATE, 120.0))
    assert joined and joined[0].outcome == "pair"
    p.expect("c2", "conn", "", "ws-conn", 0.0)
    p.receive(_event("c2", Leg.CANDIDATE, -5.0))
    p.receive(_event("c2", Leg.LEGACY, 130.0))  # pairs at once: no half left behind
    # Half of the HTTP halves get their legs and resolve as pairs before any expiry.
    for i in range(0, 100, 2):
        p.receive(_http(f"h{i}", Leg.LEGACY, float(i) + 0.1))
        assert [j.outcome for j in p.receive(_http(f"h{i}", Leg.CANDIDATE, float(i) + 0.2))] == ["pair"]
    # Now at t = 60: halves expected before t = 50 and still unresolved are due, the others are not.
    due = p.expire(60.0)
    assert sorted(j.conn for j in due) == sorted(f"h{i}" for i in range(1, 50, 2))
    assert all(j.outcome == "unpaired" for j in due)
    assert p.expire(60.0) == []  # nothing is reported twice
    rest = p.expire(float("inf"))
    assert sorted(j.conn for j in rest) == sorted(f"h{i}" for i in range(51, 100, 2))
    assert not p.pending and p.bytes == 0


def test_a_resolved_pair_leaves_no_payload_behind_and_the_deadline_list_stays_bounded() -> None:
    p = Pairer(10.0, get_profile("openclaw"))
    big = "x" * 10_000
    for i in range(20_000):
        conn = f"h{i}"
        p.expect(conn, "http", "GET /healthz", "http", float(i))
        p.receive(_http(conn, Leg.LEGACY, float(i), big))
        (j,) = p.receive(_http(conn, Leg.CANDIDATE, float(i), big))
        assert j.outcome == "pair" and j.legs[Leg.LEGACY].data == big
    assert not p.pending and p.bytes == 0
    # Resolved halves may still sit in the deadline list until due, but hold no observation, and the list is
    # rebuilt once it is mostly stale: 20,000 pairs leave at most a few thousand entries.
    assert len(p._due) <= 4096 + 1
    assert all(not half.legs for *_, half in p._due)


def test_a_closed_connection_is_forgotten_once_its_last_half_resolves() -> None:
    p = Pairer(10.0, get_profile("openclaw"))
    p.expect("c1", "conn", "", "ws-conn", 0.0)
    p.expect("c1", "req:r1", "health", "ws", 0.0)
    res = json.dumps({"type": "res", "id": "r1", "ok": True, "payload": {}})
    p.receive(Observation(t=0.1, conn="c1", leg=Leg.LEGACY, dir=Direction.S2C, kind=Kind.WS_TEXT, data=res))
    p.close_conn("c1")
    assert p.expire(1.0) == [] and "c1" in p._mirrored_ids  # its half still waits for the candidate
    (j,) = p.expire(20.0)
    assert j.outcome == "unpaired" and j.route == "health"
    assert "c1" not in p._mirrored_ids and not p._res_index


def test_task_progress_upserts_are_not_paired_so_the_final_upserts_meet() -> None:
    """Legacy sends 3 running upserts, the candidate 1: only the completed ones are paired (profile.progress)."""
    def task(leg: Leg, t: float, status: str) -> Observation:
        return Observation(t=t, conn="c1", leg=leg, dir=Direction.S2C, kind=Kind.WS_TEXT,
                           data=json.dumps({"type": "event", "event": "task", "payload": {"task": {"status": status}}}))

    p = Pairer(10.0, get_profile("openclaw"))
    p.expect("c1", "conn", "", "ws-conn", 0.0)
    for t in (1.0, 2.0, 3.0):
        assert p.receive(task(Leg.LEGACY, t, "running")) == []
    assert p.receive(task(Leg.LEGACY, 4.0, "completed")) == []
    assert p.receive(task(Leg.CANDIDATE, 1.5, "running")) == []
    (joined,) = p.receive(task(Leg.CANDIDATE, 4.5, "completed"))
    assert joined.outcome == "pair"
    assert all('"completed"' in (obs.data or "") for obs in joined.legs.values())
    assert p.bytes == 0 and p.expire(float("inf")) == []
