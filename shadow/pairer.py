"""Pairing the legs of one client request, the shadow pipeline's ``pair`` stage state.

Owns :class:`Joined` (a resolved comparison unit) and :class:`Pairer`: HTTP by exchange id, WS ``res`` by request
id (and response index), WS events by name within a window; only what was mirrored is waited for. Timer events
and progress updates (``profile.timer_events``, ``profile.progress``) are never paired, and not counted here (the
replay's batch pairer counts them in ``wire.pairing.Pairer.skipped``). Pure state, no I/O. May import: stdlib,
``wire``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from wire.frames import parse_frame
from wire.model import Event, Kind, Leg, Observation, Res
from wire.profiles.base import Profile

__all__ = ["Joined", "Pairer", "payload_size"]


def payload_size(obs: Any) -> int:
    """Payload bytes an observation holds (what the byte budgets count)."""
    if not isinstance(obs, Observation):
        return 0
    if obs.data is not None:
        return len(obs.data)
    return len(obs.data_b64) if obs.data_b64 is not None else 0


@dataclass(slots=True)
class _Half:
    route: str
    protocol: str
    t: float
    legs: dict[Leg, Observation] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Joined:
    """A resolved comparison unit: both legs present (``outcome`` match|mismatch), or one leg left (unpaired|error)."""

    conn: str
    key: str
    route: str
    protocol: str
    outcome: str
    legs: dict[Leg, Observation]
    detail: Any = None  # the differ's result for a compared pair


class Pairer:
    """Joins the legs of one client request: HTTP by exchange id, WS ``res`` by request id (and response index),
    WS events by name in arrival order within ``window`` seconds. Only what was mirrored is waited for.
    """

    def __init__(self, window: float, profile: Profile, *, max_bytes: int = 64 << 20) -> None:
        self.window = window
        self.profile = profile
        self.max_bytes = max_bytes
        self.bytes = 0  # payload bytes held by halves waiting for their other leg
        self.pending: dict[tuple[str, str], _Half] = {}
        # Every half's (t, tiebreak, key, half), oldest first: expiry pops what is due instead of scanning all
        # pending halves. An entry whose half was resolved (or replaced) is skipped when it comes up.
        self._due: list[tuple[float, int, tuple[str, str], _Half]] = []
        self._tiebreak = itertools.count()
        self._pending_per_conn: Counter[str] = Counter()
        self._mirrored_ids: dict[str, dict[str, str]] = {}  # conn -> req id -> route
        self._res_index: dict[tuple[str, str, Leg], int] = {}
        self._events: dict[tuple[str, str], dict[Leg, deque[tuple[float, Observation]]]] = {}
        self.mirrored_conns: set[str] = set()

    def expect(self, conn: str, key: str, route: str, protocol: str, t: float) -> None:
        if protocol == "ws" and key.startswith("req:"):
            self._mirrored_ids.setdefault(conn, {})[key[4:]] = route
        elif protocol == "ws-conn":
            self.mirrored_conns.add(conn)
        else:
            self._add((conn, key), _Half(route, protocol, t))

    def _add(self, key: tuple[str, str], half: _Half) -> None:
        if key not in self.pending:
            self._pending_per_conn[key[0]] += 1
        self.pending[key] = half
        due = self._due
        if len(due) > 4 * len(self.pending) + 4096:  # mostly resolved entries: rebuild from what is pending
            due[:] = [e for e in due if self.pending.get(e[2]) is e[3]]
            heapq.heapify(due)
        heapq.heappush(due, (half.t, next(self._tiebreak), key, half))

    def close_conn(self, conn: str) -> None:
        self.mirrored_conns.discard(conn)

    def forget(self, conn: str, key: str) -> None:
        """Drop an expectation whose other leg will never come (its mirror job was dropped), without a result."""
        if (conn, key) in self.pending:
            self._resolve((conn, key), "forgotten")

    def receive(self, obs: Observation) -> list[Joined]:
        key = self._key(obs)
        if key is None:
            return []
        half = self.pending.get(key)
        if half is None:
            return []
        if obs.leg not in half.legs:
            half.legs[obs.leg] = obs
            self.bytes += payload_size(obs)
        if obs.kind is Kind.ERROR or len(half.legs) == 2:
            return [self._resolve(key, "error" if obs.kind is Kind.ERROR else "pair")]
        if self.bytes > self.max_bytes:  # the other leg is too slow to keep this half: give it up, counted
            return [self._resolve(key, "dropped")]
        return []

    def _resolve(self, key: tuple[str, str], outcome: str) -> Joined:
        half = self.pending.pop(key)
        left = self._pending_per_conn[key[0]] - 1
        if left:
            self._pending_per_conn[key[0]] = left
        else:
            del self._pending_per_conn[key[0]]
        self.bytes -= sum(payload_size(o) for o in half.legs.values())
        if key[1].startswith("res:"):  # forget the id, so long-lived connections keep no per-request state
            conn, rid = key[0], key[1][4:].rsplit(":", 1)[0]
            for leg in Leg:
                self._res_index.pop((conn, rid, leg), None)
            if half.route not in self.profile.multi_response:  # ``agent`` may still answer a second time
                ids = self._mirrored_ids.get(conn)
                if ids is not None:
                    ids.pop(rid, None)
        legs, half.legs = half.legs, {}  # its expiry entry may outlive it: keep no payload there
        return Joined(key[0], key[1], half.route, half.protocol, outcome, legs)

    def _key(self, obs: Observation) -> tuple[str, str] | None:
        if obs.kind in (Kind.HTTP_RESPONSE, Kind.ERROR) and obs.conn.startswith("h"):
            return (obs.conn, "http")
        if obs.kind is not Kind.WS_TEXT or obs.dir.value != "s2c" or obs.conn not in self.mirrored_conns:
            if obs.kind is Kind.ERROR:
                return (obs.conn, "error")
            return None
        frame = parse_frame(obs.data or "", t=obs.t)
        if isinstance(frame, Res):
            route = self._mirrored_ids.get(obs.conn, {}).get(frame.id)
            if route is None:
                return None
            idx_key = (obs.conn, frame.id, obs.leg)
            n = self._res_index.get(idx_key, 0)
            self._res_index[idx_key] = n + 1
            key = (obs.conn, f"res:{frame.id}:{n}")
            if key not in self.pending:
                self._add(key, _Half(route, "ws", obs.t))
            return key
        if isinstance(frame, Event) and frame.event not in self.profile.timer_events \
                and not self.profile.progress(frame):  # timer events and progress updates are never paired
            route = self.profile.event_label(frame.event)
            per = self._events.setdefault((obs.conn, frame.event), {Leg.LEGACY: deque(), Leg.CANDIDATE: deque()})
            other = obs.leg.other
            if per[other]:
                _, first = per[other].popleft()
                key = (obs.conn, f"event:{frame.event}:{id(first)}")
                self._add(key, _Half(route, "ws", first.t, {other: first}))
                return key  # ``first``'s bytes move from the event queue to the half
            if self.bytes + payload_size(obs) > self.max_bytes:
                return None
            self.bytes += payload_size(obs)
            per[obs.leg].append((obs.t, obs))
        return None

    def expire(self, now: float) -> list[Joined]:
        """Resolve halves older than the window as unpaired."""
        out: list[Joined] = []
        cutoff = now - self.window
        due = self._due
        while due and due[0][0] < cutoff:
            _, _, key, half = heapq.heappop(due)
            if self.pending.get(key) is half:
                out.append(self._resolve(key, "unpaired"))
        for (conn, name), per in list(self._events.items()):
            for leg, q in per.items():
                while q and q[0][0] < cutoff:
                    _, obs = q.popleft()
                    self.bytes -= payload_size(obs)
                    out.append(Joined(conn, f"event:{name}", self.profile.event_label(name), "ws", "unpaired",
                                      {leg: obs}))
            if not per[Leg.LEGACY] and not per[Leg.CANDIDATE] and conn not in self.mirrored_conns:
                del self._events[(conn, name)]
        for conn in [c for c in self._mirrored_ids if c not in self.mirrored_conns]:
            if conn not in self._pending_per_conn:
                self._mirrored_ids.pop(conn, None)
                for k in [k for k in self._res_index if k[0] == conn]:
                    del self._res_index[k]
        return out


# -- the pipeline ----------------------------------------------------------------------------------------------
