"""Replay a trace against a target gateway and return what the target answered, as a trace.

Owns :func:`replay_trace`, the I/O shell ``parity replay`` (``diffing.cli_replay``) builds on. It re-sends the
client-to-server observations of each connection in order, connections concurrently, and records the target's
answers with the same connection ids and ``step`` ids, so the two legs pair up observation by observation.

What it changes on the way out, and why:

- ``<GW_TOKEN>``, ``<GW_PASSWORD>``, ``<HOOK_TOKEN>`` placeholders (the trace's redacted secrets) become the
  target's credentials (:meth:`recorder.target.Target.substitute`). ``<REDACTED>`` (a credential that was
  deliberately wrong when recorded) is sent as is: it is still wrong.
- The recorded ``connect.challenge`` nonce and ``ts`` on a connection become the live ones, and a connect
  frame whose ``device`` block was signed by the recorder (``meta.resign_steps`` in the header, or every
  device block when the header does not say) is **re-signed** with the target's own key against the target's
  nonce: a signed connect cannot be replayed to another gateway (reference section 3.4).
- Every UUID inside a c2s JSON frame or body (idempotency keys, texts, session keys made with ``{{uuid}}``)
  gets a fresh UUID, consistently within one replay, because the gateway answers a repeated
  ``idempotencyKey`` from its 5-minute dedupe cache (reference section 2.6) and coalesces a repeated wake
  text. A request's own ``id`` is kept: the differ pairs the legs by it. ``runId`` echoes the key, so the
  profile masks it anyway.

How long it waits after each send (a *segment* is one c2s observation and the s2c observations recorded after
it on the same connection): until every non-timer frame the recording got in that segment has a counterpart
(a ``res`` with the same id, an ``event`` with the same name and ``payload.state``/``payload.stream``), or the
connection closes, or the last expected frame arrived and the line went quiet for ``LATE_S`` (other expected
frames may still come: on a loaded machine a gateway's background events overtake or trail its answer), or the
timeout (5x the recorded segment duration + 2 s, at least ``MIN_WAIT_S``, at most ``timeout``). Segments that got
nothing when recorded wait for a short quiet window. A target that answers less therefore costs a timeout,
never a hang.

May import asyncio, aiohttp, websockets (through ``recorder.client``), ``wire``, ``recorder``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiohttp

from parity import TOOL
from recorder.client import Frame, ObservationLog, WaitTimeout, WsClient, http_exchange, parse_json
from recorder.format import Trace, TraceHeader
from recorder.target import Target
from wire.errors import UpstreamError
from wire.model import Direction, Kind, Leg, Observation
from wire.profiles.openclaw import TIMER_EVENTS as PROFILE_TIMER_EVENTS
from wire.profiles.openclaw import is_task_progress
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["LATE_S", "MIN_WAIT_S", "QUIET_S", "TIMER_EVENTS", "replay_trace"]

#: Events that arrive on timers or from background work; never waited for (reference section 8, "Timers"),
#: plus background notices seen on the legacy right after boot (``update.available``, ``cron``).
TIMER_EVENTS = PROFILE_TIMER_EVENTS | {"update.available", "cron"}
#: The shortest wait for a segment's answers, however fast the recording got them (a loaded machine is slower).
MIN_WAIT_S = 10.0
#: The wait for segments that got nothing when recorded.
QUIET_S = 0.3
#: Quiet window once the last expected frame arrived while others are still missing. The legacy's ``task``
#: events of an agent run trail its final ``res`` by over 0.3 s on a loaded 2-core machine; a target that never
#: sends them costs this much once per segment, not a timeout.
LATE_S = 2.0
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


async def replay_trace(
    trace: Trace,
    target: Target,
    *,
    leg: Leg,
    speed: float | None = None,
    timeout: float = 30.0,
    fresh_ids: bool = True,
) -> Trace:
    """Re-send ``trace``'s client side to ``target``; return the target's observations as a trace.

    Args:
        trace: a recorded trace (golden, shadow capture or import). Only its c2s observations are sent; its
            s2c observations decide how long to wait after each send.
        target: where to send, with the credentials and device key to use there.
        leg: stamped on every returned observation.
        speed: ``None`` sends each connection's next frame as soon as the previous answer is complete, all
            connections starting at once. A number keeps the recorded timing, divided by ``speed``
            (``2.0`` = twice as fast), including each connection's start offset.
        timeout: upper bound in seconds for any single wait.
        fresh_ids: replace UUIDs in c2s JSON (except request ids) with fresh ones, consistently.

    Returns:
        A :class:`Trace` whose observations (both directions, redacted with the target's secrets, times from
        the start of the replay) carry the recorded ``conn`` and ``step`` ids. ``complete`` is false and
        ``error`` says why when a connection could not be replayed to its end (the other connections still
        run). Never raises for what the target does; raises ``ValueError`` only for a trace it cannot read.
    """
    log = ObservationLog(leg=leg)
    log.now()  # start the clock
    state = _ReplayState(trace=trace, target=target, fresh_ids=fresh_ids)
    errors: list[str] = []
    conns = _by_connection(trace.observations)
    t_first = min((obs[0].t for obs in conns.values()), default=0.0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        async with asyncio.TaskGroup() as tg:
            for conn, obs in conns.items():
                tg.create_task(
                    _replay_connection(conn, obs, state, log, session, errors, speed=speed, timeout=timeout,
                                       offset=obs[0].t - t_first),
                    name=f"replay {conn}",
                )
    redactor = Redactor(target.secrets())
    replayed = _restamp_steps(conns, sorted(log.observations, key=lambda o: o.t))
    observations = tuple(redactor.observation(o) for o in replayed)
    meta: dict[str, Any] = {"replay_of": {"target": trace.header.target, "recorded_at": trace.header.recorded_at},
                            "leg": leg.value}
    if speed is not None:
        meta["speed"] = speed
    header = TraceHeader(
        profile=trace.header.profile,
        target=target.http_base,
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool=TOOL,
        scenario=trace.header.scenario,
        meta=meta,
    )
    error = "; ".join(errors) if errors else None
    return Trace(header=header, observations=observations, complete=not errors,
                 error=redactor.text(error) if error else None)


@dataclass(slots=True)
class _ReplayState:
    trace: Trace
    target: Target
    fresh_ids: bool
    id_map: dict[str, str] = field(default_factory=dict)

    @property
    def resign_steps(self) -> set[str] | None:
        steps = self.trace.header.meta.get("resign_steps")
        return set(steps) if isinstance(steps, list) else None

    def fresh_text(self, text: str) -> str:
        """Every UUID in ``text`` replaced by its fresh counterpart."""
        return _UUID_RE.sub(lambda m: self.fresh(m.group(0)), text)

    def fresh(self, old: str) -> str:
        if old not in self.id_map:
            self.id_map[old] = str(uuid.uuid4())
        return self.id_map[old]


def _by_connection(observations: Iterable[Observation]) -> dict[str, list[Observation]]:
    conns: dict[str, list[Observation]] = {}
    for obs in observations:
        conns.setdefault(obs.conn, []).append(obs)
    return conns


def _restamp_steps(recorded: dict[str, list[Observation]], replayed: list[Observation]) -> list[Observation]:
    """Give each replayed s2c observation the step id its recorded counterpart had.

    Within a segment, a replayed frame takes the step of the first unused recorded frame with the same
    signature (``res`` id, event name and state); anything else keeps the step of the segment's c2s
    observation or of the last matched frame. So an ``agent``/``chat`` event stream recorded under a
    ``ws_expect`` step is reported under that step on both legs.
    """
    segs = {conn: _segments(obs) for conn, obs in recorded.items()}
    position: dict[str, int] = {}
    pools: dict[str, list[tuple[tuple[str, ...] | str, str | None]]] = {}
    current: dict[str, str | None] = {}
    out: list[Observation] = []
    for o in replayed:
        if o.dir is Direction.C2S:
            i = position.get(o.conn, -1) + 1
            position[o.conn] = i
            answers = segs[o.conn][i][1] if i < len(segs.get(o.conn, [])) else []
            pools[o.conn] = [(_obs_signature(a), a.step) for a in answers]
            current[o.conn] = o.step
            out.append(o)
            continue
        sig = _obs_signature(o)
        pool = pools.get(o.conn, [])
        for j, (candidate, step) in enumerate(pool):
            if candidate == sig:
                current[o.conn] = step
                del pool[j]
                break
        out.append(replace(o, step=current.get(o.conn, o.step)))
    return out


def _obs_signature(o: Observation) -> tuple[str, ...] | str:
    if o.kind is Kind.WS_TEXT:
        j = parse_json(o.data)
        sig = _signature(j)
        if sig is not None:
            return sig
        if isinstance(j, dict) and j.get("type") == "event":
            return ("event", str(j.get("event")), "")
    return o.kind.value


def _segments(obs: list[Observation]) -> list[tuple[Observation, list[Observation]]]:
    """(c2s observation, the s2c observations recorded after it until the next c2s) for one connection."""
    out: list[tuple[Observation, list[Observation]]] = []
    for o in obs:
        if o.dir is Direction.C2S:
            out.append((o, []))
        elif out:
            out[-1][1].append(o)
    return out


async def _replay_connection(
    conn: str, obs: list[Observation], state: _ReplayState, log: ObservationLog, session: aiohttp.ClientSession,
    errors: list[str], *, speed: float | None, timeout: float, offset: float,
) -> None:
    segments = _segments(obs)
    if not segments:
        return
    t0 = segments[0][0].t
    loop = asyncio.get_running_loop()
    start = loop.time() + (offset / speed if speed else 0.0)
    is_ws = segments[0][0].kind is Kind.WS_OPEN
    client = WsClient(log, conn) if is_ws else None
    try:
        async with asyncio.TaskGroup() as tg:
            try:
                for i, (sent, answers) in enumerate(segments):
                    if speed:
                        await asyncio.sleep(max(0.0, start + (sent.t - t0) / speed - loop.time()))
                    nxt = segments[i + 1][0].t if i + 1 < len(segments) else None
                    if client is not None:
                        client.step = sent.step
                        alive = await _ws_segment(client, sent, answers, state, tg, timeout=timeout, next_t=nxt)
                        if not alive:
                            break
                    else:
                        await _http_segment(conn, sent, state, log, session, timeout=timeout)
            finally:
                if client is not None:
                    await client.abort()
    except* (UpstreamError, WaitTimeout) as group:
        for exc in group.exceptions:
            errors.append(f"{conn}: {exc}")


async def _ws_segment(client: WsClient, sent: Observation, answers: list[Observation], state: _ReplayState,
                      tg: asyncio.TaskGroup, *, timeout: float, next_t: float | None) -> bool:
    """Send one c2s observation and wait for its answers. Returns False when the connection is gone."""
    if sent.kind is Kind.WS_OPEN:
        await client.open(state.target.ws_url(sent.path or "/"), sent.path or "/", timeout=min(timeout, 10.0))
        tg.create_task(client.reader(), name=f"reader {client.conn}")
    elif client.closed:
        return False
    elif sent.kind is Kind.WS_TEXT:
        await client.send(_outgoing_text(sent, client, state))
    elif sent.kind is Kind.WS_BINARY:
        await client.send(sent.data_b64 or b"")
    elif sent.kind is Kind.WS_CLOSE:
        await client.close(sent.code or 1000, sent.reason or "")
        return False
    else:
        return True
    await _await_answers(client, sent, answers, timeout=timeout, next_t=next_t)
    return not client.closed


def _signature(frame_json: Any) -> tuple[str, ...] | None:
    if not isinstance(frame_json, dict):
        return None
    if frame_json.get("type") == "res":
        return ("res", str(frame_json.get("id")))
    if frame_json.get("type") == "event":
        name = str(frame_json.get("event"))
        if name in TIMER_EVENTS or is_task_progress(frame_json):  # their number varies run to run: never waited for
            return None
        payload = frame_json.get("payload")
        sub = ""
        if isinstance(payload, dict):
            sub = str(payload.get("state") or payload.get("stream") or "")
        return ("event", name, sub)
    return None


async def _await_answers(client: WsClient, sent: Observation, answers: list[Observation], *, timeout: float,
                         next_t: float | None) -> None:
    expect_close = any(a.kind is Kind.WS_CLOSE for a in answers)
    needed: Counter[tuple[str, ...]] = Counter()
    last: tuple[str, ...] | None = None
    for a in answers:
        if a.kind is Kind.WS_TEXT:
            sig = _signature(parse_json(a.data))
            if sig is not None:
                needed[sig] += 1
                last = sig
    if not needed and not expect_close:
        gap = (next_t - sent.t) if next_t is not None else QUIET_S
        try:
            await client.wait(lambda f: f.closed, timeout=max(0.05, min(gap, QUIET_S)), what="quiet", quiet=None)
        except WaitTimeout:
            pass
        return
    recorded = (answers[-1].t - sent.t) if answers else 0.0
    limit = min(timeout, max(MIN_WAIT_S, 5 * recorded + 2.0))
    seen: Counter[tuple[str, ...]] = Counter()
    last_seen = False

    def satisfied() -> bool:
        return not (needed - seen) and (client.closed or not expect_close)

    def step_done(frame: Frame) -> bool:
        nonlocal last_seen
        if frame.closed:
            return True
        sig = _signature(frame.json)
        if sig is None:
            return False
        seen[sig] += 1
        if sig == last and not last_seen and seen[sig] >= needed[sig]:
            last_seen = True
            return True  # from now on, a quiet line also ends the wait
        return satisfied()

    what = f"answers to step {sent.step or '?'}"
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return
        was_last = last_seen
        try:
            await client.wait(step_done, timeout=remaining, what=what, quiet=LATE_S if was_last else None)
        except WaitTimeout:
            logger.info("%s: %s incomplete after %.1fs", client.conn, what, limit)
            return  # missing answers are a finding for the differ, not an error of the replay
        if was_last or satisfied() or client.closed:
            return


def _challenge(frames: Iterable[Any]) -> tuple[str, int] | None:
    found = None
    for j in frames:
        if isinstance(j, dict) and j.get("type") == "event" and j.get("event") == "connect.challenge":
            p = j.get("payload") or {}
            if isinstance(p, dict) and isinstance(p.get("nonce"), str):
                found = (p["nonce"], int(p.get("ts") or 0))
    return found


def _outgoing_text(sent: Observation, client: WsClient, state: _ReplayState) -> str:
    """The frame to send now: credentials back in, live nonce/ts, re-signed device, fresh idempotency keys."""
    text = sent.data or ""
    value = parse_json(text)
    if not isinstance(value, (dict, list)):
        return state.target.substitute(text)
    live = _challenge(f.json for f in client.received if f.text is not None)
    recorded = _recorded_challenge(state.trace, sent)
    keep_id = value.get("id") if isinstance(value, dict) and value.get("type") == "req" else None
    value = _walk(value, state, recorded, live)
    if keep_id is not None and isinstance(value, dict):
        value["id"] = keep_id  # request ids stay as recorded: the differ pairs the legs by them
    if isinstance(value, dict) and value.get("method") == "connect":
        params = value.get("params")
        device = params.get("device") if isinstance(params, dict) else None
        resign = state.resign_steps
        if isinstance(params, dict) and isinstance(device, dict) and (resign is None or sent.step in resign):
            nonce, ts = live if live is not None else ("", int(time.time() * 1000))
            params["device"] = state.target.identity.device_block(params, nonce=nonce, signed_at_ms=ts)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _recorded_challenge(trace: Trace, sent: Observation) -> tuple[str, int] | None:
    before = (o for o in trace.observations
              if o.conn == sent.conn and o.dir is Direction.S2C and o.t <= sent.t and o.kind is Kind.WS_TEXT)
    return _challenge(parse_json(o.data) for o in before)


def _walk(v: Any, state: _ReplayState, recorded: tuple[str, int] | None, live: tuple[str, int] | None,
          key: str | None = None) -> Any:
    if isinstance(v, dict):
        return {k: _walk(x, state, recorded, live, k) for k, x in v.items()}
    if isinstance(v, list):
        return [_walk(x, state, recorded, live) for x in v]
    if isinstance(v, str):
        if recorded is not None and live is not None and v == recorded[0]:
            return live[0]
        if state.fresh_ids:
            v = state.fresh_text(v)
        return state.target.substitute(v)
    if isinstance(v, int) and not isinstance(v, bool) and recorded is not None and live is not None:
        if v == recorded[1] and recorded[1]:
            return live[1]
    return v


async def _http_segment(conn: str, sent: Observation, state: _ReplayState, log: ObservationLog,
                        session: aiohttp.ClientSession, *, timeout: float) -> None:
    if sent.kind is not Kind.HTTP_REQUEST:
        return
    target = state.target
    path = target.substitute(sent.path or "/")
    headers = [(k, target.substitute(v)) for k, v in sent.headers if k.lower() not in _HOP_HEADERS]
    body: bytes | None
    if sent.data_b64 is not None:
        body = sent.data_b64
    elif sent.data is not None:
        value = parse_json(sent.data)
        text = state.fresh_text(sent.data) if state.fresh_ids and isinstance(value, (dict, list)) else sent.data
        body = target.substitute(text).encode("utf-8")
    else:
        body = None
    await http_exchange(session, log, conn, url=target.http_url(path), method=sent.method or "GET", path=path,
                        headers=headers, body=body, timeout=timeout, step=sent.step)
