"""The mirror side of a proxy, in one process: pipeline, HTTP mirror, WS mirror sessions, trace and store.

Owns :class:`LocalSide`, the :class:`shadow.pipeline.Tap` the forwarder feeds when mirroring runs in the
proxy's own process. The mirror process (``shadow.mirror_worker``) runs the very same class, fed through a
socket by ``shadow.remote.RemoteSide`` instead of by the forwarder, so both placements share one code path
from the first observation to the stored pair.
May import: stdlib, prometheus_client, ``wire``, ``recorder``, ``diffing``, ``shadow.{compare,config,handshake,metrics,mirror,
pairer,pipeline,policy}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from recorder.capture import TraceSink
from shadow.compare import Comparator, ProfileComparator
from shadow.config import ShadowConfig
from shadow.handshake import Handshaker
from shadow.metrics import Metrics
from shadow.mirror import HttpMirror, MirrorSession, leg_creds
from shadow.pairer import Joined
from shadow.pipeline import HttpJob, Pipeline
from shadow.policy import MIRROR, RECORD_ONLY, Policy
from wire.model import Direction, Kind, Leg, Observation, Pair, body_fields
from wire.profiles.base import Profile
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["LocalSide"]


class LocalSide:
    """Everything behind the Tap, in this process.

    Args:
        config, metrics, profile: the proxy's.
        comparator: overrides the profile comparator (tests of the pipeline itself).
        store: coroutine receiving each resolved pair instead of the configured parity store, or ``None``.
        t0: monotonic origin of observation times (the proxy's, when this runs in the mirror process).
        trace_suffix: added to the trace file name (the mirror process adds its pid: a restarted child never
            reopens, and so truncates, the trace of the one before it).
        policy: the proxy's side-effect policy (built from ``config`` and ``profile`` when not given).
    """

    def __init__(self, config: ShadowConfig, metrics: Metrics, profile: Profile, *,
                 comparator: Comparator | None = None, store: Any = None, t0: float | None = None,
                 trace_suffix: str = "", policy: Policy | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self.profile = profile
        self.policy = policy or Policy(config.policy, dry_run=config.dry_run, metrics=metrics, profile=profile)
        self.trace: TraceSink | None = None
        if config.record.trace_dir:
            name = time.strftime("shadow-%Y%m%dT%H%M%S", time.gmtime()) + trace_suffix + ".jsonl"
            self.trace = TraceSink(Path(config.record.trace_dir) / name, redactor=Redactor(config.secrets()),
                                   target=config.legacy.url, meta={"candidate": config.candidate.url,
                                                                   "mode": config.mode})
        self.pipeline = Pipeline(config, metrics, profile=profile, comparator=comparator,
                                 recorder=self.trace.write if self.trace else None, store=store)
        if t0 is not None:
            self.pipeline.t0 = t0
        self.http_mirror = HttpMirror(config, metrics, self.pipeline)
        self.pipeline.set_http_mirror(self.http_mirror.send)
        self._handshakers: dict[Leg, Handshaker] = {}
        for leg in Leg:
            own, other = leg_creds(config, leg)
            if own.url:
                self._handshakers[leg] = Handshaker(own, other)
        self._mirrors: dict[str, MirrorSession] = {}
        self.store: Any = None
        self.run_id = 0

    async def start(self) -> None:
        if self.config.record.db:
            from diffing.store import Store

            self.store = await Store.open(self.config.record.db)
            self.run_id = await self.store.start_run(
                name=f"shadow {self.config.mode}", source="shadow", profile=self.profile.name,
                legacy_url=self.config.legacy.url, candidate_url=self.config.candidate.url)
            self.pipeline.set_store(self._store_pair)
        await self.pipeline.start()
        await self.http_mirror.start()

    async def stop(self) -> None:
        mirrors = list(self._mirrors.values())
        for m in mirrors:
            m.close()
        await asyncio.gather(*(m.wait_closed(2.0) for m in mirrors), return_exceptions=True)
        self._mirrors.clear()
        await self.http_mirror.close()
        await self.pipeline.close()
        if self.store is not None:
            await self.store.finish_run(self.run_id)
            await self.store.close()
            self.store = None
        if self.trace is not None:
            self.trace.close()

    # -- Tap ----------------------------------------------------------------------------------------------
    def now(self) -> float:
        return self.pipeline.now()

    def observe(self, obs: Observation, *, force_record: bool = False) -> None:
        self.pipeline.observe(obs, force_record=force_record)

    def begin_http(self, conn: str, primary: Leg, secondary: Leg | None, method: str, path: str,
                   headers: tuple[tuple[str, str], ...], body: bytes, route: str, decision: str, t: float) -> bool:
        pl = self.pipeline
        if secondary is not None:
            if decision == MIRROR:
                queued_at = pl.t0 + t
                if pl.clock() - queued_at > self.config.limits.candidate_timeout:
                    # a mirror process that fell this far behind catches up: no expectation, no job
                    self.metrics.drop("mirror", "deadline")
                    pl.count(primary, "http", route, "dropped")
                else:
                    pl.expect(conn, "http", route, "http")
                    if not pl.mirror_http(HttpJob(conn, secondary, method, path, headers, body, route, queued_at)):
                        pl.count(primary, "http", route, "dropped")
            else:
                pl.count(primary, "http", route, "skipped")
        pl.observe(Observation(t=t, conn=conn, leg=primary, dir=Direction.C2S, kind=Kind.HTTP_REQUEST,
                               method=method, path=path, headers=headers, **body_fields(body)),
                   force_record=decision == RECORD_ONLY)
        return True

    def end_http(self, conn: str, primary: Leg, status: int, headers: tuple[tuple[str, str], ...], kept: bytes,
                 t: float, force_record: bool) -> None:
        self.pipeline.observe(Observation(t=t, conn=conn, leg=primary, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE,
                                          status=status, headers=headers, **body_fields(kept)),
                              force_record=force_record)

    def c2s_text(self, conn: str, leg: Leg, text: str, mirrored: bool, t: float) -> None:
        decision = None
        if mirrored:
            decision, route, req = self.policy.ws_text(text)
            if decision == MIRROR:
                session = self._mirrors.get(conn)
                if session is None:  # its mirror has ended (or was opened by a mirror process that has died)
                    self.metrics.drop("mirror_ws", "closed")
                    ok = False
                else:
                    ok = session.offer_frame(text, req.id if req is not None else None, route)
                if not ok and req is not None:
                    self.pipeline.count(leg, "ws", route, "dropped")
            elif req is not None:
                self.pipeline.count(leg, "ws", route, "skipped")
        self.pipeline.observe(Observation(t=t, conn=conn, leg=leg, dir=Direction.C2S, kind=Kind.WS_TEXT, data=text),
                              force_record=decision == RECORD_ONLY)

    def s2c_text(self, conn: str, leg: Leg, text: str, t: float) -> None:
        self.pipeline.observe(Observation(t=t, conn=conn, leg=leg, dir=Direction.S2C, kind=Kind.WS_TEXT, data=text))

    def count(self, leg: Leg, protocol: str, route: str, outcome: str) -> None:
        self.pipeline.count(leg, protocol, route, outcome)

    def open_mirror(self, conn: str, path: str, headers: list[tuple[str, str]], leg: Leg) -> MirrorSession:
        """Start the secondary-leg WebSocket for client connection ``conn``."""
        self.pipeline.expect(conn, "conn", "", "ws-conn")
        session = MirrorSession(conn, path, headers, leg, self.config, self.metrics, self.pipeline,
                                self._handshakers[leg])
        self._mirrors[conn] = session
        session.start()
        return session

    def close_conn(self, conn: str) -> None:
        session = self._mirrors.pop(conn, None)
        if session is not None:
            session.close()
        self.pipeline.close_conn(conn)

    def mirror(self, conn: str) -> MirrorSession | None:
        return self._mirrors.get(conn)

    def exposition(self) -> bytes:
        """``/metrics`` text: every metric lives in this process's registry."""
        return generate_latest(self.metrics.registry)

    def health(self) -> dict[str, Any]:
        return {"queues": {name: stage.queue.qsize() for name, stage in self.pipeline.stages.items()},
                "mirror_bytes": self.pipeline.budget.used}

    # -- the store stage ----------------------------------------------------------------------------------
    async def _store_pair(self, joined: Joined) -> None:
        """Compared pairs (and half pairs) into the parity store, through the one differ."""
        from diffing.diff import compare_pair

        assert self.store is not None
        cmp = self.pipeline.comparator
        if not isinstance(cmp, ProfileComparator):
            return
        legs = {leg: cmp.exchange(joined, leg) for leg, o in joined.legs.items() if o.kind is not Kind.ERROR}
        lx, cx = legs.get(Leg.LEGACY), legs.get(Leg.CANDIDATE)
        if lx is None and cx is None:
            return
        result = joined.detail
        if result is None:
            kind = (lx or cx).kind  # type: ignore[union-attr]
            result = compare_pair(Pair(conn=joined.conn, key=joined.key, kind=kind, group=joined.route, legacy=lx,
                                       candidate=cx), self.profile)
        self.store.add_pair(self.run_id, result, legacy=lx, candidate=cx)

