"""Mirroring to the secondary leg: one WebSocket per client WebSocket, and a pooled HTTP client.

Owns :class:`HttpMirror` (``shadow.upstream.UpstreamPool`` per leg, one deadline per exchange; its concurrency is
the mirror stage's ``limits.candidate_concurrency``) and :class:`MirrorSession` (one ``websockets`` client connection per client WS, fed through a bounded
queue). This is an I/O shell: it reads frames, asks ``shadow.handshake`` how to rewrite the connect, and emits
observations to the Tap. Nothing here is ever awaited by the client path: the forwarder calls
:meth:`MirrorSession.offer`, which returns at once and drops (counted) when the connection queue or the global
byte budget is full. Secondary-leg failures are findings counted in ``parity_candidate_errors_total{kind}``
(``parity_legacy_errors_total`` when the legacy is the mirrored leg); connects are retried with backoff.
May import: stdlib, aiohttp, websockets, ``wire``, ``shadow.{config,handshake,metrics,pipeline,upstream,_tasks}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from shadow._tasks import cancel_all, spawn
from shadow.config import Credentials, ShadowConfig
from shadow.handshake import Handshaker, challenge_of, rewrite_secrets, secret_pairs
from shadow.metrics import Metrics
from shadow.pipeline import HttpJob, Pipeline
from shadow.upstream import KeepSink, UpstreamPool
from wire import http1
from wire.errors import LegProtocolError
from wire.frames import parse_frame
from wire.model import Direction, Kind, Leg, Observation, Other, Req, body_fields

logger = logging.getLogger(__name__)

__all__ = ["HOP_BY_HOP", "HttpMirror", "MirrorSession", "error_kind", "leg_creds"]

#: Request headers not forwarded: the per-hop ones, plus what the client library recomputes (Host, the length).
HOP_BY_HOP = http1.HOP_BY_HOP | {"host", "content-length"}


def error_kind(exc: BaseException) -> str:
    """Classify a leg failure into the bounded ``kind`` label."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError | InvalidURI):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionClosed | ConnectionResetError):
        return "closed"
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError | InvalidHandshake | LegProtocolError):
        return "protocol"
    if isinstance(exc, OSError):
        return "connect"
    return "http"


def leg_creds(config: ShadowConfig, leg: Leg) -> tuple[Credentials, Credentials]:
    """(``leg``'s credentials, the other leg's credentials)."""
    if leg is Leg.CANDIDATE:
        return config.candidate, config.legacy
    return config.legacy, config.candidate


class HttpMirror:
    """Re-sends HTTP requests to a secondary leg and emits both observations to the pipeline."""

    def __init__(self, config: ShadowConfig, metrics: Metrics, pipeline: Pipeline) -> None:
        self.config = config
        self.metrics = metrics
        self.pipeline = pipeline
        self._pools: dict[Leg, UpstreamPool] = {}
        self._pairs = {leg: secret_pairs(*leg_creds(config, leg)) for leg in Leg}

    async def start(self) -> None:
        self._pools = {leg: UpstreamPool(url, keepalive=30.0, connect_timeout=self.config.limits.candidate_timeout)
                       for leg in Leg if (url := leg_creds(self.config, leg)[0].url)}

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools = {}

    async def send(self, job: HttpJob) -> None:
        pairs = self._pairs[job.leg]
        headers = tuple((k, rewrite_secrets(v, pairs)) for k, v in job.headers if k.lower() not in HOP_BY_HOP)
        body = job.body
        for old, new in pairs:
            body = body.replace(old.encode(), new.encode())
        pl = self.pipeline
        t0 = time.monotonic()
        pl.observe(Observation(t=pl.now(), conn=job.conn, leg=job.leg, dir=Direction.C2S, kind=Kind.HTTP_REQUEST,
                               method=job.method, path=job.path, headers=headers, **body_fields(body)))
        sink = KeepSink(self.config.limits.max_body)
        try:
            pool = self._pools[job.leg]
            async with asyncio.timeout(self.config.limits.candidate_timeout):
                await pool.exchange(job.method, job.path, headers, body, sink)
        except Exception as exc:  # a secondary-leg failure is a finding, never an error of the proxy
            kind = error_kind(exc)
            self.metrics.leg_error(job.leg.value, kind)
            pl.observe(Observation(t=pl.now(), conn=job.conn, leg=job.leg, dir=Direction.S2C, kind=Kind.ERROR,
                                   data=f"{kind}: {type(exc).__name__}: {exc}"[:500]))
            return
        self.metrics.latency.labels(leg=job.leg.value, protocol="http", route=job.route).observe(
            time.monotonic() - t0)
        pl.observe(Observation(t=pl.now(), conn=job.conn, leg=job.leg, dir=Direction.S2C, kind=Kind.HTTP_RESPONSE,
                               status=sink.status, headers=sink.headers, **body_fields(bytes(sink.kept))))


_CLOSE = object()
#: After the client closes, the secondary leg stays open this long (at most) for answers still in flight.
LINGER_MAX = 5.0


class MirrorSession:
    """One secondary-leg WebSocket for one client WebSocket.

    Args:
        conn: the client connection id (shared by both legs' observations).
        path: the upgrade path the client used.
        headers: client headers worth forwarding (``Origin``, ``User-Agent``).
        leg: the mirrored leg.
        config, metrics, pipeline: the proxy's.
        handshaker: rewrites the client's connect for this leg.
    """

    def __init__(self, conn: str, path: str, headers: list[tuple[str, str]], leg: Leg, config: ShadowConfig,
                 metrics: Metrics, pipeline: Pipeline, handshaker: Handshaker) -> None:
        self.conn = conn
        self.path = path
        self.headers = headers
        self.leg = leg
        self.config = config
        self.metrics = metrics
        self.pipeline = pipeline
        self.handshaker = handshaker
        self.url = leg_creds(config, leg)[0].ws_url + path
        self._q: deque[Any] = deque()
        self._wake = asyncio.Event()
        self._dead = False  # gave up: every further frame is dropped (reason "closed")
        self._client_closed = False
        self._connect_text: str | None = None  # the client's connect, replayed on reconnect
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._reconnects = 0

    # -- called by the forwarder (never blocks) -----------------------------------------------------------
    def start(self) -> None:
        self._task = spawn(self._run(), name=f"mirror-{self.conn}")

    def offer(self, data: str | bytes) -> bool:
        """Queue one client frame for the secondary leg; drop and count when full. Returns at once."""
        if self._dead or self._client_closed:
            self.metrics.drop("mirror_ws", "closed")
            return False
        if len(self._q) >= self.config.limits.conn_queue:
            self.metrics.drop("mirror_ws", "full")
            return False
        reason = self.pipeline.budget.take(len(data))
        if reason is not None:
            self.metrics.drop("mirror_ws", reason)
            return False
        self._q.append(data)
        self._wake.set()
        return True

    def offer_frame(self, text: str, req_id: str | None, route: str) -> bool:
        """Queue one client text frame; a request (``req_id``) is announced to the pair stage once queued,
        before the session task can run, so its answer never races the announcement. Returns at once."""
        if not self.offer(text):
            return False
        if req_id is not None:
            self.pipeline.expect(self.conn, "req:" + req_id, route, "ws")
        return True

    def close(self) -> None:
        """The client went away: close the secondary connection once the queue is flushed (bounded)."""
        self._client_closed = True
        self._q.append(_CLOSE)
        self._wake.set()

    async def wait_closed(self, timeout: float) -> None:
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                await cancel_all([self._task])

    # -- the session task ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            await self._loop()
        finally:
            self._dead = True
            while self._q:
                item = self._q.popleft()
                if item is not _CLOSE:
                    self.pipeline.budget.give(len(item))
            if self._ws is not None:
                await self._close_ws()

    async def _loop(self) -> None:
        lim = self.config.limits
        while not self._client_closed or self._q:
            ws, challenge = await self._connect_with_retries()
            if ws is None:
                return
            reader = spawn(self._read(ws), name=f"mirror-read-{self.conn}")
            try:
                if self._connect_text is not None:  # reconnect: replay the client's connect
                    await self._send_connect(ws, self._connect_text, challenge)
                while True:
                    while not self._q:
                        self._wake.clear()  # no await between here and wait(): no lost wake-up
                        if reader.done():  # the leg closed (the reader sets _wake when it ends)
                            raise ConnectionClosed(None, None)
                        await self._wake.wait()
                    item = self._q.popleft()
                    if item is _CLOSE:  # the client left: answers still in flight on this leg are findings too
                        await asyncio.wait({reader}, timeout=min(lim.candidate_timeout, LINGER_MAX))
                        return
                    self.pipeline.budget.give(len(item))
                    if isinstance(item, bytes):
                        await asyncio.wait_for(ws.send(item), lim.candidate_timeout)
                    elif self._connect_text is None and challenge_of(item) is None and _is_connect(item):
                        self._connect_text = item
                        await self._send_connect(ws, item, challenge)
                    else:
                        await asyncio.wait_for(ws.send(rewrite_secrets(item, self.handshaker.secret_pairs)),
                                               lim.candidate_timeout)
            except (ConnectionClosed, OSError, TimeoutError) as exc:
                if self._client_closed and not self._q:
                    return
                kind = error_kind(exc)
                self.metrics.leg_error(self.leg.value, kind)
                self._reconnects += 1
                if self._reconnects > lim.connect_retries:
                    logger.warning("%s: %s leg lost %d times; giving up", self.conn, self.leg.value,
                                   self._reconnects)
                    return
                logger.info("%s: %s leg connection lost (%s); reconnecting", self.conn, self.leg.value, kind)
                await self._sleep_or_closed(min(lim.backoff_initial * 2 ** self._reconnects, lim.backoff_max))
            finally:
                await cancel_all([reader])
                await self._close_ws()

    async def _send_connect(self, ws: ClientConnection, text: str, challenge: dict[str, Any]) -> None:
        rewritten = self.handshaker.rewrite_connect(text, challenge)
        out = rewritten if rewritten is not None else rewrite_secrets(text, self.handshaker.secret_pairs)
        await asyncio.wait_for(ws.send(out), self.config.limits.candidate_timeout)

    async def _connect_with_retries(self) -> tuple[ClientConnection | None, dict[str, Any]]:
        lim = self.config.limits
        delay = lim.backoff_initial
        for attempt in range(lim.connect_retries + 1):
            if self._client_closed:
                return None, {}
            try:
                ws = await connect(
                    self.url, open_timeout=lim.candidate_timeout, close_timeout=1.0, max_size=lim.max_frame,
                    ping_interval=None, compression=None, additional_headers=self.headers,
                    user_agent_header=None, max_queue=64,
                )
                self._ws = ws
                text = await asyncio.wait_for(ws.recv(), lim.candidate_timeout)
                self._observe(text)
                challenge = challenge_of(text) if isinstance(text, str) else None
                if challenge is None:
                    self.metrics.leg_error(self.leg.value, "protocol")
                    challenge = {}
                return ws, challenge
            except Exception as exc:
                await self._close_ws()
                kind = error_kind(exc)
                self.metrics.leg_error(self.leg.value, kind)
                logger.info("%s: %s leg connect attempt %d failed (%s: %s)", self.conn, self.leg.value,
                            attempt + 1, kind, exc)
            if attempt < lim.connect_retries:
                await self._sleep_or_closed(delay)
                delay = min(delay * 2, lim.backoff_max)
        logger.warning("%s: giving up on the %s leg after %d attempts", self.conn, self.leg.value,
                       lim.connect_retries + 1)
        return None, {}

    async def _sleep_or_closed(self, delay: float) -> None:
        deadline = time.monotonic() + delay
        while not self._client_closed and time.monotonic() < deadline:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return
            # frames arrived meanwhile: keep sleeping (they wait in the bounded queue)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for msg in ws:
                self._observe(msg)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:  # the leg sent a frame over limits.max_frame
                self.metrics.leg_error(self.leg.value, "protocol")
        finally:
            self._wake.set()
        rc = ws.close_code
        self.pipeline.observe(Observation(t=self.pipeline.now(), conn=self.conn, leg=self.leg, dir=Direction.S2C,
                                          kind=Kind.WS_CLOSE, code=rc, reason=ws.close_reason or ""))

    def _observe(self, msg: str | bytes) -> None:
        pl = self.pipeline
        if isinstance(msg, bytes):
            self.metrics.leg_error(self.leg.value, "protocol")  # OpenClaw never sends binary frames
            pl.observe(Observation(t=pl.now(), conn=self.conn, leg=self.leg, dir=Direction.S2C,
                                   kind=Kind.WS_BINARY, data_b64=msg[:65536]))
            return
        if msg[:1] != "{" or (len(msg) <= 65536 and isinstance(parse_frame(msg), Other)):
            self.metrics.leg_error(self.leg.value, "protocol")  # not an OpenClaw frame: a finding
        pl.observe(Observation(t=pl.now(), conn=self.conn, leg=self.leg, dir=Direction.S2C, kind=Kind.WS_TEXT,
                               data=msg))

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await asyncio.wait_for(ws.close(), 1.0)
            except Exception:
                ws.transport.abort()


def _is_connect(text: str) -> bool:
    if '"connect"' not in text[:4096]:
        return False
    frame = parse_frame(text)
    return isinstance(frame, Req) and frame.method == "connect"
