"""The mitmproxy adapter -- THE ONLY module that imports mitmproxy.

Owns :class:`ShadowAddon` (the same mirror side as ``shadow.forward``, ``shadow.side.LocalSide`` with its
trace and store, fed from mitmproxy's hooks, for deployments
that terminate TLS in mitmproxy) and :func:`read_flows` (mitmproxy flow file -> observations, for ``parity
import``). Run it as::

    mitmdump --mode reverse:http://127.0.0.1:18789 -p 18790 -s shadow/mitm.py \
        --set shadow_config=shadow.toml [--set shadow_admin=127.0.0.1:18791]

The client path is mitmproxy's own; the addon only observes and mirrors: every hook returns at once (the Tap
only enqueues), so a slow or broken candidate can never delay a flow. ``ctx.options`` is read here and only
here: ``shadow_*`` options are declared in ``load()``, the config is built once in ``configure()``, and bad
values raise ``OptionsError``. Gotchas (architecture §11): the ``response`` hook also fires for the 101 WS
upgrade, so flows with ``flow.websocket`` are skipped there; pass ``confdir`` so no CA lands in ``~/.mitmproxy``.
May import: mitmproxy, stdlib, ``wire``, ``shadow.*``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitmproxy import ctx, http
from mitmproxy import io as mio
from mitmproxy.exceptions import OptionsError

from shadow.config import ShadowConfig, parse_hostport, set_path
from wire.errors import ConfigError, TraceFormatError
from wire.model import Direction, Kind, Leg, Observation, body_fields

logger = logging.getLogger(__name__)

__all__ = ["ShadowAddon", "read_flows"]


def _headers(fields: Any) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in fields)


def _body(raw: bytes | None) -> dict[str, Any]:
    return body_fields(raw or b"")  # an empty body is recorded as "" like the live paths do


def read_flows(path: str | Path) -> Iterator[Observation]:
    """Observations of a mitmproxy flow file (HTTP exchanges and WebSocket messages), times from the first flow."""
    p = Path(path)
    t0: float | None = None
    n = 0
    with p.open("rb") as fh:
        try:
            for flow in mio.FlowReader(fh).stream():
                if not isinstance(flow, http.HTTPFlow):
                    continue
                n += 1
                req = flow.request
                t0 = req.timestamp_start if t0 is None else t0
                if flow.websocket is not None:
                    conn = f"c{n}"
                    yield Observation(t=req.timestamp_start - t0, conn=conn, dir=Direction.C2S, kind=Kind.WS_OPEN,
                                      path=req.path, headers=_headers(req.headers.fields))
                    for m in flow.websocket.messages:
                        d = Direction.C2S if m.from_client else Direction.S2C
                        if m.is_text:
                            yield Observation(t=m.timestamp - t0, conn=conn, dir=d, kind=Kind.WS_TEXT, data=m.text)
                        else:
                            yield Observation(t=m.timestamp - t0, conn=conn, dir=d, kind=Kind.WS_BINARY,
                                              data_b64=m.content)
                    if flow.websocket.close_code is not None:
                        yield Observation(t=(flow.websocket.timestamp_end or req.timestamp_start) - t0, conn=conn,
                                          dir=Direction.S2C if not flow.websocket.closed_by_client else Direction.C2S,
                                          kind=Kind.WS_CLOSE, code=flow.websocket.close_code,
                                          reason=flow.websocket.close_reason or "")
                    continue
                conn = f"h{n}"
                yield Observation(t=req.timestamp_start - t0, conn=conn, dir=Direction.C2S, kind=Kind.HTTP_REQUEST,
                                  method=req.method, path=req.path, headers=_headers(req.headers.fields),
                                  **_body(req.raw_content))
                resp = flow.response
                if resp is None:
                    msg = flow.error.msg if flow.error else "no response"
                    yield Observation(t=req.timestamp_start - t0, conn=conn, dir=Direction.S2C, kind=Kind.ERROR,
                                      data=msg)
                    continue
                yield Observation(t=(resp.timestamp_end or resp.timestamp_start or req.timestamp_start) - t0,
                                  conn=conn, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE, status=resp.status_code,
                                  headers=_headers(resp.headers.fields), **_body(resp.raw_content))
        except Exception as exc:  # mitmproxy raises its own FlowReadException on a corrupt file
            raise TraceFormatError(f"not a readable mitmproxy flow file after {n} flows: {exc}", path=str(p)) from exc


class ShadowAddon:
    """mitmproxy addon: legacy answers through mitmproxy; the candidate is mirrored by the shadow pipeline."""

    def __init__(self) -> None:
        self.config: ShadowConfig | None = None
        self._ids = itertools.count(1)
        self._admin_runner: Any = None

    # -- options ------------------------------------------------------------------------------------------
    def load(self, loader: Any) -> None:
        loader.add_option("shadow_config", str, "", "TOML config of the shadow proxy (shadow/config.py)")
        loader.add_option("shadow_candidate", str, "", "candidate base URL (overrides the config)")
        loader.add_option("shadow_admin", str, "", "host:port for /metrics, /healthz and /mode (empty: off)")

    def configure(self, updated: set[str]) -> None:
        if not updated & {"shadow_config", "shadow_candidate", "shadow_admin"} and self.config is not None:
            return
        data: dict[str, Any] = {}
        if ctx.options.shadow_config:
            import tomllib

            try:
                data = tomllib.loads(Path(ctx.options.shadow_config).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise OptionsError(f"shadow_config: {exc}") from exc
        if ctx.options.shadow_candidate:
            set_path(data, "candidate.url", ctx.options.shadow_candidate)
        data["admin"] = ctx.options.shadow_admin or "off"
        data.setdefault("listen", "127.0.0.1:0")  # unused: mitmproxy owns the client port
        try:
            self.config = ShadowConfig.from_mapping(data)
            if ctx.options.shadow_admin:
                parse_hostport(ctx.options.shadow_admin, "shadow_admin")
        except ConfigError as exc:
            raise OptionsError(str(exc)) from exc

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def running(self) -> None:
        from shadow.metrics import Metrics
        from shadow.modes import ModeController
        from shadow.policy import Policy
        from shadow.side import LocalSide
        from wire.profiles.openclaw import get_profile

        assert self.config is not None, "configure() did not run"
        cfg = self.config
        self.metrics = Metrics()
        self.modes = ModeController(cfg.mode, canary_percent=cfg.canary_percent, metrics=self.metrics)
        profile = get_profile(cfg.profile)
        self.policy = Policy(cfg.policy, dry_run=cfg.dry_run, metrics=self.metrics, profile=profile)
        side = LocalSide(cfg, self.metrics, profile, policy=self.policy)
        await side.start()
        self.side = side
        if cfg.admin is not None:
            from aiohttp import web

            from shadow.admin import admin_app

            self._admin_runner = web.AppRunner(admin_app(self), access_log=None)  # type: ignore[arg-type]
            await self._admin_runner.setup()
            await web.TCPSite(self._admin_runner, cfg.admin[0], cfg.admin[1]).start()
        logger.warning("shadow addon: mirroring to %s (mode %s)", cfg.candidate.url, cfg.mode)

    async def done(self) -> None:
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
        if hasattr(self, "side"):
            await self.side.stop()

    def exposition(self) -> bytes:
        return self.side.exposition()

    def health(self) -> dict[str, Any]:
        return {"ok": True, "mode": self.modes.mode, "canary_percent": self.modes.canary_percent,
                **self.side.health(), "frontend": "mitmproxy"}

    def _mirroring(self, flow: http.HTTPFlow) -> bool:
        route = self.modes.route(flow.request.headers.get(self.config.canary_header if self.config else "", "")
                                 or (flow.client_conn.peername[0] if flow.client_conn.peername else ""))
        # mitmproxy forwards to one upstream (the legacy); the candidate can only be the mirrored leg here
        return route.mirror

    # -- HTTP ---------------------------------------------------------------------------------------------
    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None or not hasattr(self, "side"):
            return  # the 101 upgrade also fires `response`; WS is handled by the websocket_* hooks
        pl, req, resp = self.side, flow.request, flow.response
        conn = f"h{next(self._ids)}"
        mirroring = self._mirroring(flow)
        decision, route = self.policy.http(req.method, req.path) if mirroring else \
            ("skip", self.policy.route(req.method, req.path))
        pl.begin_http(conn, Leg.LEGACY, Leg.CANDIDATE if mirroring else None, req.method, req.path,
                      _headers(req.headers.fields), req.raw_content or b"", route, decision, pl.now())
        if resp is not None:
            if resp.timestamp_end and req.timestamp_start:
                self.metrics.latency.labels(leg="legacy", protocol="http", route=route).observe(
                    max(0.0, resp.timestamp_end - req.timestamp_start))
            pl.end_http(conn, Leg.LEGACY, resp.status_code, _headers(resp.headers.fields), resp.raw_content or b"",
                        pl.now(), decision == "record-only")

    # -- WebSocket ----------------------------------------------------------------------------------------
    def websocket_start(self, flow: http.HTTPFlow) -> None:
        if not hasattr(self, "side") or not self._mirroring(flow):
            return
        conn = f"c{next(self._ids)}"
        flow.metadata["parity_conn"] = conn
        pl = self.side
        pl.observe(Observation(t=pl.now(), conn=conn, dir=Direction.C2S, kind=Kind.WS_OPEN, path=flow.request.path))
        fwd = [(k, v) for k, v in _headers(flow.request.headers.fields) if k.lower() in ("origin", "user-agent")]
        pl.open_mirror(conn, flow.request.path, fwd, Leg.CANDIDATE)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        conn = flow.metadata.get("parity_conn")
        if conn is None or flow.websocket is None:
            return
        pl = self.side
        m = flow.websocket.messages[-1]
        if m.is_text and m.from_client:
            pl.c2s_text(conn, Leg.LEGACY, m.text, True, pl.now())
        elif m.is_text:
            pl.s2c_text(conn, Leg.LEGACY, m.text, pl.now())
        else:
            pl.observe(Observation(t=pl.now(), conn=conn, dir=Direction.C2S if m.from_client else Direction.S2C,
                                   kind=Kind.WS_BINARY, data_b64=m.content))
            session = pl.mirror(conn)
            if m.from_client and session is not None:
                session.offer(m.content)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        conn = flow.metadata.get("parity_conn")
        if conn is not None and hasattr(self, "side"):
            self.side.close_conn(conn)


addons = [ShadowAddon()]
