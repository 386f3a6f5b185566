"""Assembly of one shadow proxy: config in, listening client and admin ports out.

Owns :class:`ShadowProxy`, which builds the parts once, in order (metrics, modes, policy, pipeline, mirror,
forwarder, admin), binds the ports and tears everything down in reverse. ``shadow.__main__`` (``parity
shadow``), the tests and ``bench/proxy_bench.py`` all start the proxy through here.
May import: stdlib, aiohttp, prometheus_client, ``wire``, ``recorder``, ``diffing``, ``shadow.*`` (not mitm).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from recorder.capture import TraceSink, WriteAheadLog
from shadow import _tasks
from shadow.admin import admin_app
from shadow.compare import Comparator, ProfileComparator
from shadow.config import ShadowConfig
from shadow.forward import Forwarder
from shadow.metrics import Metrics
from shadow.mirror import HttpMirror
from shadow.modes import ModeController
from shadow.pairer import Joined
from shadow.pipeline import Pipeline
from shadow.policy import Policy
from wire.model import Kind, Leg, Pair
from wire.profiles.base import Profile
from wire.profiles.openclaw import get_profile
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["ShadowProxy"]


class ShadowProxy:
    """One running proxy.

    Args:
        config: the proxy configuration.
        registry: where metrics are registered (fresh by default, so many proxies can run in one process).
        comparator: overrides the profile comparator (tests of the pipeline itself).
        store: coroutine receiving each resolved pair (the parity-store adapter), or ``None``.
    """

    def __init__(self, config: ShadowConfig, *, registry: CollectorRegistry | None = None,
                 profile: Profile | None = None, comparator: Comparator | None = None,
                 store: Any = None) -> None:
        self.config = config
        self.profile = profile or get_profile(config.profile)
        self.metrics = Metrics(registry)
        self.modes = ModeController(config.mode, canary_percent=config.canary_percent, metrics=self.metrics)
        self.policy = Policy(config.policy, dry_run=config.dry_run, metrics=self.metrics, profile=self.profile)
        self.redactor = Redactor(config.secrets())
        self.trace: TraceSink | None = None
        if config.record.trace_dir:
            name = time.strftime("shadow-%Y%m%dT%H%M%S.jsonl", time.gmtime())
            self.trace = TraceSink(Path(config.record.trace_dir) / name, redactor=self.redactor,
                                   target=config.legacy.url, meta={"candidate": config.candidate.url,
                                                                   "mode": config.mode})
        self.pipeline = Pipeline(config, self.metrics, profile=self.profile, comparator=comparator,
                                 recorder=self.trace.write if self.trace else None, store=store)
        self.http_mirror = HttpMirror(config, self.metrics, self.pipeline)
        self.pipeline.set_http_mirror(self.http_mirror.send)
        self.write_ahead: WriteAheadLog | None = None
        if config.record.write_ahead:
            path = config.record.write_ahead_path or str(Path(config.record.trace_dir or ".") / "write-ahead.jsonl")
            self.write_ahead = WriteAheadLog(path, redactor=self.redactor, target=config.legacy.url)
        self.forwarder = Forwarder(config, self.metrics, self.pipeline, self.modes, self.policy,
                                   write_ahead=self.write_ahead)
        self._runners: list[web.AppRunner] = []
        self.store: Any = None
        self.run_id = 0
        self.port = 0
        self.admin_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.listen[0]}:{self.port}"

    @property
    def admin_url(self) -> str:
        assert self.config.admin is not None
        return f"http://{self.config.admin[0]}:{self.admin_port}"

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
        self.port = await self._serve(self.forwarder.app(), *self.config.listen)
        if self.config.admin is not None:
            self.admin_port = await self._serve(admin_app(self), *self.config.admin)
        logger.warning("shadow proxy on %s (mode %s), admin on %s; legacy %s, candidate %s", self.url,
                       self.modes.mode, self.admin_port or "off", self.config.legacy.url,
                       self.config.candidate.url or "-")

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        self._runners.append(runner)
        server: Any = site._server
        assert server is not None and server.sockets
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.http_mirror.close()
        await self.pipeline.close()
        if self.store is not None:
            await self.store.finish_run(self.run_id)
            await self.store.close()
            self.store = None
        if self.trace is not None:
            self.trace.close()
        if self.write_ahead is not None:
            self.write_ahead.close()

    async def __aenter__(self) -> ShadowProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _store_pair(self, joined: Joined) -> None:
        """The ``store`` stage: compared pairs (and half pairs) into the parity store, through the one differ."""
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

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "mode": self.modes.mode,
            "canary_percent": self.modes.canary_percent,
            "queues": {name: stage.queue.qsize() for name, stage in self.pipeline.stages.items()},
            "mirror_bytes": self.pipeline.budget.used,
            "tasks": _tasks.pending(),
        }


