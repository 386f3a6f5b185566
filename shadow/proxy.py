"""Assembly of one shadow proxy: config in, listening client and admin ports out.

Owns :class:`ShadowProxy`, which builds the parts once, in order (metrics, modes, policy, the mirror side --
``shadow.side.LocalSide`` in process or ``shadow.remote.RemoteSide`` in a child process --, forwarder, admin), binds the ports and tears everything down in reverse. ``shadow.__main__`` (``parity
shadow``), the tests and ``bench/proxy_bench.py`` all start the proxy through here.
May import: stdlib, aiohttp, prometheus_client, ``wire``, ``recorder``, ``diffing``, ``shadow.*`` (not mitm).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from recorder.capture import WriteAheadLog
from shadow import _tasks
from shadow.admin import admin_app
from shadow.compare import Comparator
from shadow.config import ShadowConfig, mirror_cpu_set
from shadow.fastpath import FastServer
from shadow.forward import Forwarder
from shadow.metrics import Metrics
from shadow.modes import ModeController
from shadow.pipeline import Pipeline
from shadow.policy import Policy
from shadow.remote import RemoteSide
from shadow.side import LocalSide
from wire.errors import ConfigError
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
        self.side: LocalSide | RemoteSide
        if config.limits.mirror_process:
            if comparator is not None or store is not None:
                raise ConfigError("limits.mirror_process: a custom comparator or store runs in-process only")
            if profile is not None and profile.name != config.profile:
                raise ConfigError(f"limits.mirror_process: the mirror process loads the profile named by "
                                  f"`profile` ({config.profile!r}), not the {profile.name!r} passed in")
            mirror_cpu_set(config.limits)  # a CPU this machine lacks is a start-up error, not the child's
            self.side = RemoteSide(config, self.metrics, self.policy)
        else:
            self.side = LocalSide(config, self.metrics, self.profile, comparator=comparator, store=store,
                                   policy=self.policy)
        self.write_ahead: WriteAheadLog | None = None
        if config.record.write_ahead:
            path = config.record.write_ahead_path or str(Path(config.record.trace_dir or ".") / "write-ahead.jsonl")
            self.write_ahead = WriteAheadLog(path, redactor=self.redactor, target=config.legacy.url)
        self.forwarder = Forwarder(config, self.metrics, self.side, self.modes, self.policy,
                                   write_ahead=self.write_ahead)
        self._runners: list[web.AppRunner] = []
        self._fast: FastServer | None = None
        self.port = 0
        self.admin_port = 0

    @property
    def url(self) -> str:
        return f"http://{self.config.listen[0]}:{self.port}"

    @property
    def admin_url(self) -> str:
        assert self.config.admin is not None
        return f"http://{self.config.admin[0]}:{self.admin_port}"

    @property
    def pipeline(self) -> Pipeline:
        """The in-process pipeline (not available when it runs in the mirror process)."""
        if not isinstance(self.side, LocalSide):
            raise AttributeError("the pipeline runs in the mirror process (limits.mirror_process)")
        return self.side.pipeline

    @property
    def run_id(self) -> int:
        return self.side.run_id

    async def start(self) -> None:
        await self.side.start()
        try:
            self.port = await self._serve_client(*self.config.listen)
            if self.config.admin is not None:
                self.admin_port = await self._serve(admin_app(self), *self.config.admin)
        except BaseException:  # a port in use: nothing started here is left running
            await self.stop()
            raise
        limits = self.config.limits
        placement = ("in a child process under SCHED_IDLE" if limits.mirror_idle else
                     f"in a child process at nice {limits.mirror_nice}") if limits.mirror_process else \
            "in the proxy's process (for tests and A/A runs; real traffic: --mirror-process --mirror-idle)"
        if limits.mirror_cpus:
            placement += f" on CPUs {limits.mirror_cpus}"
        logger.warning("shadow proxy on %s (mode %s), admin on %s; legacy %s, candidate %s; mirroring %s", self.url,
                       self.modes.mode, self.admin_port or "off", self.config.legacy.url,
                       self.config.candidate.url or "-", placement)

    async def _serve_client(self, host: str, port: int) -> int:
        """The client port: the HTTP fast path in front of the aiohttp app (``limits.fast_http``), or the app."""
        if not self.config.limits.fast_http:
            return await self._serve(self.forwarder.app(), host, port)
        runner = web.AppRunner(self.forwarder.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runners.append(runner)
        assert runner.server is not None
        self._fast = FastServer(self.forwarder, runner.server)
        return await self._fast.start(host, port)

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
        if self._fast is not None:
            await self._fast.stop(2.0)
            self._fast = None
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.side.stop()
        if self.write_ahead is not None:
            self.write_ahead.close()

    async def __aenter__(self) -> ShadowProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def exposition(self) -> bytes:
        """``/metrics``: this proxy's registry, merged with the mirror process's when there is one."""
        return self.side.exposition()

    def health(self) -> dict[str, Any]:
        return {
            "ok": True,
            "mode": self.modes.mode,
            "canary_percent": self.modes.canary_percent,
            "tasks": _tasks.pending(),
            "fast_http": {"requests": self._fast.served, "handed_off": self._fast.handed_off,
                          "ws_relayed": self._fast.relayed} if self._fast else None,
            **self.side.health(),
        }


