"""The shadow pipeline: stages listed once, in order, joined by bounded queues; the Tap the forwarders feed.

Owns :data:`STAGES`, :class:`Stage`, :class:`Budget`, :class:`Pairer` (the pairing stage's state) and
:class:`Pipeline` (which is the :class:`Tap`). The forwarder (``shadow.forward`` or ``shadow.mitm``) only calls
the Tap's non-blocking methods: every ``offer`` is ``put_nowait``; a full queue drops and counts
(``parity_dropped_total{stage, reason="full"}``), it never waits. Each stage handles one item at a time inside
a safecall-style guard: an exception is logged, counted in ``parity_stage_errors_total{stage}`` and the stage
moves on. Only ``ConfigError`` at startup may stop the proxy.

Stages, in order:

1. ``mirror``  -- HTTP requests re-sent to the secondary leg (``concurrency`` workers, a deadline per item).
   WebSocket mirroring is per connection (``shadow.mirror.MirrorSession``), bounded by its own queue and the
   global :class:`Budget`.
2. ``pair``    -- observations of both legs; responses paired by exchange/request id, events by name within a
   window (cheap, in the event loop).
3. ``diff``    -- each pair compared by the one differ (``diffing.diff.compare_pair`` with the profile) in a
   worker *process* (``limits.diff_workers``; 0 = inline): explaining a mismatch costs milliseconds of CPU
   (DeepDiff), which must never run on the client path's event loop. Outcome metrics and ``parity_ratio``.
4. ``record``  -- sampled observations of both legs to a trace (``recorder.format.TraceWriter``, redacted).
5. ``store``   -- pairs to the parity store (``diffing.store``) when one is configured.

May import: stdlib, ``wire``, ``recorder``, ``diffing``, ``shadow.{config,metrics,policy,_tasks}``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol

from shadow._tasks import cancel_all, spawn
from shadow.config import ShadowConfig
from shadow.metrics import Metrics
from wire.frames import http_response, parse_frame, parse_observation
from wire.model import Event, Exchange, ExchangeKind, Kind, Leg, Observation, Other, Pair, Req, Res, Response
from wire.profiles.base import Profile

logger = logging.getLogger(__name__)

__all__ = ["STAGES", "Budget", "HttpJob", "Joined", "Pairer", "Pipeline", "Stage", "Tap"]

STAGES = ("mirror", "pair", "diff", "record", "store")



class Tap(Protocol):
    """What a forwarder feeds. Every method returns at once."""

    def observe(self, obs: Observation, *, force_record: bool = False) -> None: ...

    def expect(self, conn: str, key: str, route: str, protocol: str) -> None: ...

    def mirror_http(self, job: HttpJob) -> bool: ...


@dataclass(frozen=True, slots=True)
class HttpJob:
    """One HTTP request to re-send to the secondary leg."""

    conn: str
    leg: Leg
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    route: str
    queued_at: float


class Budget:
    """Global byte budget for payloads waiting for the secondary leg (all connections together)."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.used = 0
        self._gauge = metrics.queue_depth.labels(queue="mirror_bytes")
        self.over_rss = False  # set by the pipeline's RSS sampler when limits.rss_cap_mb is exceeded
        self.overloaded = False  # set by the loop-lag sampler when limits.shed_lag_ms is exceeded

    def take(self, n: int) -> str | None:
        """Reserve ``n`` bytes. Returns ``None`` on success, else the drop reason."""
        if self.over_rss:
            return "rss"
        if self.overloaded:
            return "overload"
        if self.used + n > self.limit:
            return "bytes"
        self.used += n
        self._gauge.set(self.used)
        return None

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)
        self._gauge.set(self.used)


class Stage:
    """One pipeline stage: a bounded queue and ``workers`` loops calling ``handler`` inside a guard."""

    def __init__(self, name: str, handler: Callable[[Any], Awaitable[None]], metrics: Metrics, *,
                 maxsize: int, workers: int = 1, batch: int = 1) -> None:
        self.name = name
        self.handler = handler
        self.metrics = metrics
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self.workers = workers
        self.batch = batch  # > 1: the handler gets a list of what is queued (up to this many), not one item
        self._depth = metrics.queue_depth.labels(queue=name)
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.metrics.drop(self.name, "full")
            return False
        self._depth.set(self.queue.qsize())
        return True

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(spawn(self._run(), name=f"stage-{self.name}-{i}"))

    async def _run(self) -> None:
        while True:
            items = [await self.queue.get()]
            while len(items) < self.batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
            self._depth.set(self.queue.qsize())
            try:
                await self.handler(items if self.batch > 1 else items[0])
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.stage_errors.labels(stage=self.name).inc(len(items))
                logger.exception("stage %s failed on %d item(s)", self.name, len(items))
            finally:
                for _ in items:
                    self.queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Wait until the queue is empty and handled (bounded by ``timeout``)."""
        try:
            await asyncio.wait_for(self.queue.join(), timeout)
        except TimeoutError:
            logger.warning("stage %s: %d items left at shutdown", self.name, self.queue.qsize())

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks.clear()


def _size(obs: Any) -> int:
    if not isinstance(obs, Observation):
        return 0
    if obs.data is not None:
        return len(obs.data)
    return len(obs.data_b64) if obs.data_b64 is not None else 0


# -- pairing -------------------------------------------------------------------------------------------------

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


#: ``joined -> (equal, detail)``; ``detail`` goes to the store (the differ's result).
Comparator = Callable[[Joined], tuple[bool, Any]]


def exact_compare(joined: Joined) -> tuple[bool, Any]:
    """Byte equality of status and payload: for tests of the pipeline itself, never for parity verdicts."""
    a, b = joined.legs[Leg.LEGACY], joined.legs[Leg.CANDIDATE]
    return a.status == b.status and a.code == b.code and a.body == b.body, None


class ProfileComparator:
    """Compares through ``diffing.diff.compare_pair`` with the profile's normalization (the one differ)."""

    def __init__(self, profile: Profile) -> None:
        from diffing import diff

        self.profile = profile
        self._diff = diff

    def exchange(self, joined: Joined, leg: Leg) -> Exchange:
        obs = joined.legs[leg]
        response: Response
        if obs.kind is Kind.HTTP_RESPONSE:
            kind, response = ExchangeKind.HTTP, http_response(obs)
        else:
            frame = parse_observation(obs)
            assert frame is not None
            kind = ExchangeKind.EVENT if isinstance(frame, Event) else ExchangeKind.WS
            response = frame if not isinstance(frame, Req) else Other(raw=frame.raw, value=frame.value,
                                                                      problem="a req frame from the server")
        return Exchange(leg=leg, conn=joined.conn, key=joined.key, kind=kind, group=joined.route,
                        responses=(response,), t_start=obs.t, t_end=obs.t)

    def __call__(self, joined: Joined) -> tuple[bool, Any]:
        lx, cx = self.exchange(joined, Leg.LEGACY), self.exchange(joined, Leg.CANDIDATE)
        pair = Pair(conn=joined.conn, key=joined.key, kind=lx.kind, group=joined.route, legacy=lx, candidate=cx)
        result = self._diff.compare_pair(pair, self.profile)
        return result.equal, result


_EXECUTORS: dict[int, Any] = {}
_WORKER_COMPARATORS: dict[str, ProfileComparator] = {}


def _executor(workers: int) -> Any:
    """One shared process pool per size (spawned, not forked: the parent runs an event loop and threads)."""
    pool = _EXECUTORS.get(workers)
    if pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = _EXECUTORS[workers] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                         initializer=_lower_priority)
        if len(_EXECUTORS) == 1:
            import atexit

            atexit.register(_shutdown_executors)
    return pool


def _discard_executor(workers: int, broken: Any) -> None:
    """Forget ``broken``, unless a concurrent diff already replaced it (the fresh pool stays)."""
    if _EXECUTORS.get(workers) is broken:
        del _EXECUTORS[workers]
        broken.shutdown(wait=False, cancel_futures=True)


def _shutdown_executors() -> None:
    """Stop the diff workers before interpreter teardown (an executor collected after it logs a spurious error)."""
    while _EXECUTORS:
        _, pool = _EXECUTORS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


def _warm() -> None:
    from wire.profiles.openclaw import get_profile

    get_profile("openclaw")


def _lower_priority() -> None:
    """Diff workers yield the CPU to the client path (the proxy, and legacy/candidate on shared cores)."""
    import os

    try:
        os.nice(10)
    except OSError:
        pass


def compare_joined(profile_name: str, joined: Joined) -> tuple[bool, Any]:
    """Runs in a diff worker process: the profile comparator on one pair (picklable in and out)."""
    cmp = _WORKER_COMPARATORS.get(profile_name)
    if cmp is None:
        from wire.profiles.openclaw import get_profile

        cmp = _WORKER_COMPARATORS[profile_name] = ProfileComparator(get_profile(profile_name))
    return cmp(joined)


#: Pairs sent to a diff worker in one message at most (whatever is queued when the worker is free).
DIFF_BATCH = 64


@dataclass(frozen=True, slots=True)
class _Failed:
    """A pair whose comparison raised: counted as a diff-stage error, not a mismatch."""

    error: str


def _guarded(cmp: Callable[[Joined], tuple[bool, Any]], joined: Joined) -> tuple[bool, Any]:
    try:
        return cmp(joined)
    except Exception as exc:  # one bad pair must not cost the rest of its batch
        return False, _Failed(f"{type(exc).__name__}: {exc}"[:300])


def compare_many(profile_name: str, batch: list[Joined]) -> list[tuple[bool, Any]]:
    """Runs in a diff worker process: :func:`compare_joined` on each pair of a batch, each guarded."""
    return [_guarded(lambda j: compare_joined(profile_name, j), joined) for joined in batch]


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
            self.pending[(conn, key)] = _Half(route, protocol, t)

    def close_conn(self, conn: str) -> None:
        self.mirrored_conns.discard(conn)

    def receive(self, obs: Observation) -> list[Joined]:
        key = self._key(obs)
        if key is None:
            return []
        half = self.pending.get(key)
        if half is None:
            return []
        if obs.leg not in half.legs:
            half.legs[obs.leg] = obs
            self.bytes += _size(obs)
        if obs.kind is Kind.ERROR or len(half.legs) == 2:
            return [self._resolve(key, "error" if obs.kind is Kind.ERROR else "pair")]
        if self.bytes > self.max_bytes:  # the other leg is too slow to keep this half: give it up, counted
            return [self._resolve(key, "dropped")]
        return []

    def _resolve(self, key: tuple[str, str], outcome: str) -> Joined:
        half = self.pending.pop(key)
        self.bytes -= sum(_size(o) for o in half.legs.values())
        if key[1].startswith("res:"):  # forget the id, so long-lived connections keep no per-request state
            conn, rid = key[0], key[1][4:].rsplit(":", 1)[0]
            for leg in Leg:
                self._res_index.pop((conn, rid, leg), None)
            if half.route not in self.profile.multi_response:  # ``agent`` may still answer a second time
                ids = self._mirrored_ids.get(conn)
                if ids is not None:
                    ids.pop(rid, None)
        return Joined(key[0], key[1], half.route, half.protocol, outcome, dict(half.legs))

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
                self.pending[key] = _Half(route, "ws", obs.t)
            return key
        if isinstance(frame, Event) and frame.event not in self.profile.timer_events:
            route = self.profile.event_label(frame.event)
            per = self._events.setdefault((obs.conn, frame.event), {Leg.LEGACY: deque(), Leg.CANDIDATE: deque()})
            other = Leg.CANDIDATE if obs.leg is Leg.LEGACY else Leg.LEGACY
            if per[other]:
                _, first = per[other].popleft()
                key = (obs.conn, f"event:{frame.event}:{id(first)}")
                self.pending[key] = _Half(route, "ws", first.t, {other: first})
                return key  # ``first``'s bytes move from the event queue to the half
            if self.bytes + _size(obs) > self.max_bytes:
                return None
            self.bytes += _size(obs)
            per[obs.leg].append((obs.t, obs))
        return None

    def expire(self, now: float) -> list[Joined]:
        """Resolve halves older than the window as unpaired."""
        out: list[Joined] = []
        cutoff = now - self.window
        for key, half in list(self.pending.items()):
            if half.t < cutoff:
                out.append(self._resolve(key, "unpaired"))
        for (conn, name), per in list(self._events.items()):
            for leg, q in per.items():
                while q and q[0][0] < cutoff:
                    _, obs = q.popleft()
                    self.bytes -= _size(obs)
                    out.append(Joined(conn, f"event:{name}", self.profile.event_label(name), "ws", "unpaired",
                                      {leg: obs}))
            if not per[Leg.LEGACY] and not per[Leg.CANDIDATE] and conn not in self.mirrored_conns:
                del self._events[(conn, name)]
        for conn in [c for c in self._mirrored_ids if c not in self.mirrored_conns]:
            if not any(k[0] == conn for k in self.pending):
                self._mirrored_ids.pop(conn, None)
                for k in [k for k in self._res_index if k[0] == conn]:
                    del self._res_index[k]
        return out


# -- the pipeline ----------------------------------------------------------------------------------------------

class Pipeline:
    """Owns the stages and their lifecycle; is the :class:`Tap` the forwarders feed.

    Args:
        config: the proxy config (limits, sampling).
        metrics: the proxy's metrics.
        http_mirror: coroutine re-sending one :class:`HttpJob` (``shadow.mirror.HttpMirror.send``).
        profile: the protocol profile (labels, timer events, normalization).
        comparator: ``joined -> (equal, detail)``; default :class:`ProfileComparator` (``diffing.diff``).
        recorder: called with each sampled observation (a ``TraceWriter.write``), or ``None``.
        store: called with each :class:`Joined` (the parity store adapter), or ``None``.
        clock: monotonic seconds (injected for tests).
    """

    def __init__(self, config: ShadowConfig, metrics: Metrics, *,
                 http_mirror: Callable[[HttpJob], Awaitable[None]] | None = None,
                 profile: Profile | None = None,
                 comparator: Comparator | None = None,
                 recorder: Callable[[Observation], Any] | None = None,
                 store: Callable[[Joined], Awaitable[None]] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.clock = clock
        self.t0 = clock()
        if profile is None:
            from wire.profiles.openclaw import get_profile

            profile = get_profile(config.profile)
        self.profile = profile
        self.comparator = comparator or ProfileComparator(profile)
        self._use_workers = comparator is None and config.limits.diff_workers > 0
        self.budget = Budget(config.limits.max_queued_bytes, metrics)
        self.pairer = Pairer(config.limits.pair_window, profile, max_bytes=config.limits.max_queued_bytes)
        self.pair_bytes = 0  # payload bytes waiting in the pair queue
        self._http_mirror = http_mirror
        self._recorder = recorder
        self._store = store
        self._rng = rng or random.Random()
        self._sampled: dict[str, bool] = {}
        lim = config.limits
        handlers: dict[str, tuple[Callable[[Any], Awaitable[None]], int]] = {
            "mirror": (self._do_mirror, lim.candidate_concurrency),
            "pair": (self._do_pair, 1),
            "diff": (self._do_diff, max(1, lim.diff_workers)),
            "record": (self._do_record, 1),
            "store": (self._do_store, 1),
        }
        self.stages = {name: Stage(name, handlers[name][0], metrics, maxsize=lim.global_queue,
                                   workers=handlers[name][1], batch=DIFF_BATCH if name == "diff" else 1)
                       for name in STAGES}
        self._bg: list[asyncio.Task[None]] = []

    def set_http_mirror(self, fn: Callable[[HttpJob], Awaitable[None]]) -> None:
        self._http_mirror = fn

    def set_store(self, fn: Callable[[Joined], Awaitable[None]] | None) -> None:
        self._store = fn

    def now(self) -> float:
        return self.clock() - self.t0

    async def start(self) -> None:
        for stage in self.stages.values():
            stage.start()
        self._bg.append(spawn(self._housekeeping(), name="pipeline-housekeeping"))
        if self._use_workers:  # spawn the diff worker now, not on the first pair
            asyncio.get_running_loop().run_in_executor(_executor(self.config.limits.diff_workers), _warm)
        if self.config.limits.shed_lag_ms > 0:
            self._bg.append(spawn(self._lag_sampler(), name="pipeline-lag"))

    async def close(self, drain: float = 2.0) -> None:
        for name in STAGES:
            await self.stages[name].drain(drain)
        for result in self.pairer.expire(float("inf")):
            self._account(result)
        for name in ("diff", "store"):  # what the final expiry produced
            await self.stages[name].drain(drain)
        await cancel_all(self._bg)
        for stage in self.stages.values():
            await stage.stop()

    # -- Tap ----------------------------------------------------------------------------------------------
    def observe(self, obs: Observation, *, force_record: bool = False) -> None:
        """One observation of either leg (already on the wire; the client path does not wait).

        ``force_record`` bypasses sampling (policy ``record-only``: not mirrored live, always kept for replay).
        """
        if obs.kind in (Kind.WS_TEXT, Kind.WS_BINARY):
            self.metrics.frames.labels(leg=obs.leg.value, direction=obs.dir.value).inc()
        size = _size(obs)
        if self.pair_bytes + size > self.config.limits.max_queued_bytes:
            self.metrics.drop("pair", "bytes")
        elif self.stages["pair"].offer(obs):
            self.pair_bytes += size
        if self._recorder is not None and (force_record or self._is_sampled(obs.conn)):
            self.stages["record"].offer(obs)

    def expect(self, conn: str, key: str, route: str, protocol: str) -> None:
        """Announce that ``key`` on ``conn`` was mirrored, so the pair stage waits for both legs."""
        self.stages["pair"].offer(("expect", conn, key, route, protocol, self.now()))

    def mirror_http(self, job: HttpJob) -> bool:
        reason = self.budget.take(len(job.body))
        if reason is not None:
            self.metrics.drop("mirror", reason)
            return False
        if not self.stages["mirror"].offer(job):
            self.budget.give(len(job.body))
            return False
        return True

    def count(self, leg: Leg, protocol: str, route: str, outcome: str) -> None:
        self.metrics.requests.labels(leg=leg.value, protocol=protocol, route=route, outcome=outcome).inc()

    def _is_sampled(self, conn: str) -> bool:
        rate = self.config.record.sample_rate
        if rate >= 1.0:
            return True
        s = self._sampled.get(conn)
        if s is None:
            s = self._rng.random() < rate
            if len(self._sampled) > 100_000:
                self._sampled.clear()
            self._sampled[conn] = s
        return s

    # -- stage handlers -----------------------------------------------------------------------------------
    async def _do_mirror(self, job: HttpJob) -> None:
        try:
            if self.clock() - job.queued_at > self.config.limits.candidate_timeout:
                self.metrics.drop("mirror", "deadline")
                self.count(job.leg, "http", job.route, "dropped")
                return
            if self._http_mirror is not None:
                await self._http_mirror(job)
        finally:
            self.budget.give(len(job.body))

    async def _do_pair(self, item: Any) -> None:
        if isinstance(item, tuple):
            if item[0] == "expire":
                for result in self.pairer.expire(self.now()):
                    self._account(result)
                return
            if item[0] == "close":
                self.pairer.close_conn(item[1])
                return
            _, conn, key, route, protocol, t = item
            self.pairer.expect(conn, key, route, protocol, t)
            return
        self.pair_bytes -= _size(item)
        for result in self.pairer.receive(item):
            self._account(result)

    async def _do_diff(self, batch: list[Joined]) -> None:
        """Compare what the diff queue holds, in one call to a worker process: one wake-up and one pickled
        message per batch instead of per pair (each costs a system call and a thread switch on the loop's time).
        """
        if self._use_workers:
            loop = asyncio.get_running_loop()
            workers = self.config.limits.diff_workers
            pool = _executor(workers)
            try:
                results = await loop.run_in_executor(pool, compare_many, self.profile.name, batch)
            except BrokenProcessPool:
                # a worker died (OOM killer, a signal): a fresh pool for these pairs and the ones after them
                logger.error("diff worker died; starting a new pool of %d", workers)
                _discard_executor(workers, pool)
                results = await loop.run_in_executor(_executor(workers), compare_many, self.profile.name, batch)
        else:
            results = [_guarded(self.comparator, joined) for joined in batch]
        for joined, (match, detail) in zip(batch, results, strict=True):
            if isinstance(detail, _Failed):
                self.metrics.stage_errors.labels(stage="diff").inc()
                logger.error("comparing %s %s failed: %s", joined.route, joined.key, detail.error)
                continue
            self._account_pair(joined, match, detail)

    def _account(self, result: Joined) -> None:
        if result.outcome == "pair":
            self.stages["diff"].offer(result)
            return
        self._account_other(result)

    def _account_pair(self, result: Joined, match: bool, detail: Any) -> None:
        outcome = "match" if match else "mismatch"
        self.metrics.pair(result.route, match)
        proto = "http" if result.protocol == "http" else "ws"
        for leg in (Leg.LEGACY, Leg.CANDIDATE):
            self.count(leg, proto, result.route, outcome)
        result = Joined(result.conn, result.key, result.route, result.protocol, outcome, result.legs, detail)
        if self._store is not None:
            self.stages["store"].offer(result)

    def _account_other(self, result: Joined) -> None:
        if result.outcome == "dropped":
            self.metrics.drop("pair", "bytes")
        for leg, obs in result.legs.items():
            outcome = "error" if obs.kind is Kind.ERROR else result.outcome
            self.count(leg, "http" if result.protocol == "http" else "ws", result.route, outcome)
        if self._store is not None:
            self.stages["store"].offer(result)

    async def _do_record(self, obs: Observation) -> None:
        assert self._recorder is not None
        self._recorder(obs)

    async def _do_store(self, result: Joined) -> None:
        if self._store is not None:
            await self._store(result)

    async def _lag_sampler(self) -> None:
        """Event-loop lag as an EWMA; above ``shed_lag_ms`` new mirror work is shed until it halves."""
        loop = asyncio.get_running_loop()
        limit = self.config.limits.shed_lag_ms / 1000.0
        ewma, period = 0.0, 0.01
        while True:
            t = loop.time()
            await asyncio.sleep(period)
            ewma = 0.8 * ewma + 0.2 * max(0.0, loop.time() - t - period)
            over = ewma > limit if not self.budget.overloaded else ewma > limit / 2
            if over != self.budget.overloaded:
                logger.info("event-loop lag %.1f ms: mirroring %s", ewma * 1000, "shed" if over else "resumed")
                self.budget.overloaded = over

    async def _housekeeping(self) -> None:
        cap = self.config.limits.rss_cap_mb * 1024 * 1024
        while True:
            await asyncio.sleep(0.25)
            if cap:
                from shadow.metrics import rss_bytes

                over = rss_bytes() > cap
                if over != self.budget.over_rss:
                    logger.warning("proxy RSS %s the cap (%d MiB): mirroring %s", "above" if over else "below",
                                   self.config.limits.rss_cap_mb, "paused" if over else "resumed")
                self.budget.over_rss = over
            # expire halves through the pair queue's own worker, so pairer state has one writer
            self.stages["pair"].offer(("expire",))
