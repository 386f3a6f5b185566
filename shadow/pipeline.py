"""The shadow pipeline: stages listed once, in order, joined by bounded queues; the Tap protocol the forwarders feed.

Owns :data:`STAGES`, :class:`Stage`, :class:`Budget`, :class:`Pipeline` and the :class:`Tap` protocol (implemented by
``shadow.side.LocalSide`` over a Pipeline, and by ``shadow.remote.RemoteSide``); the pairing stage's state is
``shadow.pairer``, the comparators and diff worker processes are ``shadow.compare``. The forwarder
(``shadow.forward`` or ``shadow.mitm``) only calls the Tap's non-blocking methods, and those only the
Pipeline's: every ``offer`` is ``put_nowait``; a full queue drops and counts
(``parity_dropped_total{stage, reason="full"}``), it never waits. Each stage handles one item (the diff stage: one batch) at a time inside
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
   (DeepDiff), which must never run on the client path's event loop. A pair whose legs carry at most
   :data:`INLINE_COMPARE_MAX` bytes each is first tried on the loop with the differ's cheap stages
   (``diffing.diff.settle_pair``): equal after normalization, it never costs a round trip to a worker; only what
   needs explaining goes there. Outcome metrics and ``parity_ratio``.
4. ``record``  -- sampled observations of both legs to a trace (``recorder.format.TraceWriter``, redacted).
5. ``store``   -- pairs to the parity store (``diffing.store``) when one is configured.

May import: stdlib, ``wire``, ``recorder``, ``diffing``, ``shadow.{compare,config,metrics,pairer,policy,_tasks}``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from shadow._tasks import cancel_all, spawn
from shadow.compare import (
    DIFF_BATCH,
    Comparator,
    Failed,
    ProfileComparator,
    compare_many,
    discard_executor,
    executor,
    guarded,
    warm,
)
from shadow.config import ShadowConfig
from shadow.metrics import Metrics
from shadow.pairer import Joined, Pairer, payload_size
from wire.model import Kind, Leg, Observation
from wire.profiles.base import Profile

logger = logging.getLogger(__name__)

__all__ = ["STAGES", "Budget", "HttpJob", "Joined", "MirrorHandle", "Pairer", "Pipeline", "Stage", "Tap"]

STAGES = ("mirror", "pair", "diff", "record", "store")
#: payload bytes (each leg) up to which a pair is first tried with the differ's cheap stages on the loop (_do_diff)
INLINE_COMPARE_MAX = 8192



class MirrorHandle(Protocol):
    """The secondary leg of one client WebSocket, as the forwarder sees it (text frames reach it through
    :meth:`Tap.c2s_text`). Returns at once; the connection's end reaches it through :meth:`Tap.close_conn`."""

    def offer(self, data: bytes) -> bool: ...


class Tap(Protocol):
    """What a forwarder feeds (``shadow.side.LocalSide`` in process, ``shadow.remote.RemoteSide`` across a
    socket to the mirror process). Every method returns at once.

    The per-request and per-frame methods take plain values, not :class:`Observation` objects: across the socket
    each is one small tuple, and the objects are built on the mirror side (in the child process, off the client
    path). ``t`` is :meth:`now` when the forwarder saw the thing."""

    def now(self) -> float: ...

    def begin_http(self, conn: str, primary: Leg, secondary: Leg | None, method: str, path: str,
                   headers: tuple[tuple[str, str], ...], body: bytes, route: str, decision: str, t: float) -> bool:
        """The request of one HTTP exchange, as the primary got it: observed, and re-sent to ``secondary``
        (``None``: not mirrored) when ``decision`` is ``mirror``. False when it was dropped whole (counted):
        the exchange's answer is then not passed on either."""
        ...

    def end_http(self, conn: str, primary: Leg, status: int, headers: tuple[tuple[str, str], ...], kept: bytes,
                 t: float, force_record: bool) -> None:
        """The primary's answer to a request :meth:`begin_http` accepted (``kept``: its body up to
        ``limits.max_body``)."""
        ...

    def c2s_text(self, conn: str, leg: Leg, text: str, mirrored: bool, t: float) -> None:
        """A client text frame the primary got: observed and, on a ``mirrored`` connection (see
        :meth:`open_mirror`), offered to its secondary leg as the policy says."""
        ...

    def s2c_text(self, conn: str, leg: Leg, text: str, t: float) -> None:
        """A text frame the primary sent the client."""
        ...

    def observe(self, obs: Observation, *, force_record: bool = False) -> None: ...

    def count(self, leg: Leg, protocol: str, route: str, outcome: str) -> None: ...

    def open_mirror(self, conn: str, path: str, headers: list[tuple[str, str]], leg: Leg) -> MirrorHandle: ...

    def close_conn(self, conn: str) -> None: ...


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
        metrics.queue_depth.labels(queue="mirror_bytes").set_function(lambda: self.used)  # read at scrape time
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
        return None

    def give(self, n: int) -> None:
        self.used = max(0, self.used - n)


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
        queue = self.queue
        metrics.queue_depth.labels(queue=name).set_function(queue.qsize)  # read at scrape time, not per item
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.metrics.drop(self.name, "full")
            return False
        return True

    def start(self) -> None:
        for i in range(self.workers):
            self._tasks.append(spawn(self._run(), name=f"stage-{self.name}-{i}"))

    async def _run(self) -> None:
        while True:
            items = [await self.queue.get()]
            while len(items) < self.batch and not self.queue.empty():
                items.append(self.queue.get_nowait())
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


class Pipeline:
    """Owns the stages and their lifecycle; ``shadow.side.LocalSide`` feeds it (the forwarders' :class:`Tap`).

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
        self.inline_compared = 0  # pairs the diff stage compared itself instead of sending them to a worker
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
            workers = self.config.limits.diff_workers
            pool = executor(workers)
            try:
                pool.submit(warm)
            except BrokenProcessPool:  # the shared pool lost a worker since its last use: a fresh one
                discard_executor(workers, pool)
                executor(workers).submit(warm)
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

    # -- what LocalSide calls ------------------------------------------------------------------------------
    def observe(self, obs: Observation, *, force_record: bool = False) -> None:
        """One observation of either leg (already on the wire; the client path does not wait).

        ``force_record`` bypasses sampling (policy ``record-only``: not mirrored live, always kept for replay).
        """
        if obs.kind in (Kind.WS_TEXT, Kind.WS_BINARY):
            self.metrics.child(self.metrics.frames, obs.leg.value, obs.dir.value).inc()
        size = payload_size(obs)
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

    def close_conn(self, conn: str) -> None:
        """The client connection ended: its halves still waiting are resolved by the pair stage."""
        self.stages["pair"].offer(("close", conn))

    def count(self, leg: Leg, protocol: str, route: str, outcome: str) -> None:
        self.metrics.child(self.metrics.requests, leg.value, protocol, route, outcome).inc()

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
                self.count(job.leg.other, "http", job.route, "dropped")  # the primary's request went unmirrored
                self.stages["pair"].offer(("forget", job.conn, "http"))  # its half is not left to expire
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
            if item[0] == "forget":
                self.pairer.forget(item[1], item[2])
                return
            _, conn, key, route, protocol, t = item
            self.pairer.expect(conn, key, route, protocol, t)
            return
        self.pair_bytes -= payload_size(item)
        for result in self.pairer.receive(item):
            self._account(result)

    async def _do_diff(self, batch: list[Joined]) -> None:
        """Compare what the diff queue holds. A pair whose legs are both small is first tried here with the
        differ's cheap stages (raw or canonical equality: tens of microseconds for a few KB, less than the round
        trip to a worker, and most pairs end there: the legs agree once volatile fields are normalized); what those
        stages cannot settle (documents that differ and need DeepDiff to say where, or a large pair) goes to a
        worker process in one call: one wake-up and one pickled message per batch instead of per pair (each costs
        a system call and a thread switch on the loop's time, and on a shared machine, the client path's)."""
        if self._use_workers:
            rest: list[Joined] = []
            settled: list[Joined] = []
            verdicts: list[tuple[bool, Any]] = []
            for joined in batch:
                verdict = self._settle(joined) if _small(joined) else None
                if verdict is None:
                    rest.append(joined)
                else:
                    settled.append(joined)
                    verdicts.append(verdict)
            batch = rest
            self.inline_compared += len(settled)
            self._account_compared(settled, verdicts)
            if not batch:
                return
            loop = asyncio.get_running_loop()
            workers = self.config.limits.diff_workers
            pool = executor(workers)
            try:
                results = await loop.run_in_executor(pool, compare_many, self.profile.name, batch)
            except BrokenProcessPool:
                # a worker died (OOM killer, a signal): a fresh pool for these pairs and the ones after them
                logger.error("diff worker died; starting a new pool of %d", workers)
                discard_executor(workers, pool)
                results = await loop.run_in_executor(executor(workers), compare_many, self.profile.name, batch)
        else:
            results = [guarded(self.comparator, joined) for joined in batch]
        self._account_compared(batch, results)

    def _settle(self, joined: Joined) -> tuple[bool, Any] | None:
        """The comparator's cheap-stage verdict (see :meth:`ProfileComparator.settle`), or None (to a worker)."""
        assert isinstance(self.comparator, ProfileComparator)  # _use_workers: the profile comparator
        return guarded(self.comparator.settle, joined)  # one bad pair is a diff-stage error, as in a worker

    def _account_compared(self, batch: list[Joined], results: list[tuple[bool, Any]]) -> None:
        for joined, (match, detail) in zip(batch, results, strict=True):
            if isinstance(detail, Failed):
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


def _small(joined: Joined) -> bool:
    """Both legs carry at most :data:`INLINE_COMPARE_MAX` payload bytes."""
    return all(payload_size(obs) <= INLINE_COMPARE_MAX for obs in joined.legs.values())
