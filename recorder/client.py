"""The I/O shell shared by the scenario runner and the replayer: WS connections and HTTP exchanges that
record every frame, close and request/response as an :class:`~wire.model.Observation`.

Owns :class:`ObservationLog` (the clock and the list) and :class:`WsClient` (one ``websockets`` client
connection with a reader task that timestamps frames as they arrive), plus :func:`http_exchange` (one aiohttp
request). Nothing here interprets OpenClaw frames beyond the small :class:`Waiter` predicates; recording raw
observations and interpreting them later is the point (architecture section 2, opensearch-migrations).

May import asyncio, aiohttp, websockets, ``wire``. Reader tasks run inside a caller-owned ``TaskGroup``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from wire.errors import UpstreamError
from wire.model import Direction, Kind, Leg, Observation

logger = logging.getLogger(__name__)

__all__ = ["Frame", "ObservationLog", "WaitTimeout", "WsClient", "http_exchange", "parse_json"]


class WaitTimeout(Exception):
    """An expectation was not met within its timeout (the message says what was awaited)."""


@dataclass(slots=True)
class ObservationLog:
    """Observations of one run, timed from its start with a monotonic clock.

    Args:
        leg: stamped on every observation.
        sink: called with each observation as it is made (a ``TraceWriter.write``), or ``None``.
        clock: monotonic seconds; injectable for tests.
    """

    leg: Leg = Leg.LEGACY
    sink: Callable[[Observation], None] | None = None
    clock: Callable[[], float] = time.monotonic
    observations: list[Observation] = field(default_factory=list)
    _t0: float | None = None

    def now(self) -> float:
        if self._t0 is None:
            self._t0 = self.clock()
        return self.clock() - self._t0

    def emit(self, conn: str, direction: Direction, kind: Kind, **fields: Any) -> Observation:
        obs = Observation(t=self.now(), conn=conn, leg=self.leg, dir=direction, kind=kind, **fields)
        self.observations.append(obs)
        if self.sink is not None:
            self.sink(obs)
        return obs


def parse_json(text: str | None) -> Any:
    """JSON value of a frame, or ``None`` when it is not JSON."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Frame:
    """A received WS message (text or bytes) or the end of the connection (``closed``)."""

    text: str | None = None
    data: bytes | None = None
    closed: bool = False
    code: int | None = None
    reason: str | None = None

    @property
    def json(self) -> Any:
        return parse_json(self.text)


class WsClient:
    """One recorded WebSocket client connection.

    Frames from the server are read by :meth:`reader` (run it in a TaskGroup) and both recorded and queued;
    :meth:`wait` consumes the queue until a predicate holds. The end of the connection is recorded as a
    ``ws-close`` s2c observation unless this side closed first.
    """

    def __init__(self, log: ObservationLog, conn: str) -> None:
        self.log = log
        self.conn = conn
        self.ws: ClientConnection | None = None
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()
        self.closed = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._we_closed = False
        self.received: list[Frame] = []
        #: frames taken off the queue by :meth:`wait`, in order
        self.consumed: list[Frame] = []
        #: scenario step id stamped on this connection's observations (set by the driver before each step).
        self.step: str | None = None

    def _emit(self, direction: Direction, kind: Kind, **fields: Any) -> Observation:
        return self.log.emit(self.conn, direction, kind, step=self.step, **fields)

    async def open(self, url: str, path: str, *, timeout: float = 10.0) -> None:
        """Open the connection and record ``ws-open``. Raises :class:`UpstreamError` if it cannot."""
        self._emit(Direction.C2S, Kind.WS_OPEN, path=path)
        try:
            self.ws = await connect(
                url,
                compression=None,  # the frame size limits under test apply to what is on the wire
                max_size=None,
                ping_interval=None,  # pings would be traffic the recording did not ask for
                proxy=None,  # loopback only; never honour *_PROXY from the environment
                open_timeout=timeout,
                close_timeout=2,
                user_agent_header=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            self._emit(Direction.S2C, Kind.ERROR, data=f"upgrade refused: HTTP {status}")
            self.closed = True
            raise UpstreamError(f"{url}: WebSocket upgrade refused with HTTP {status}") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            self._emit(Direction.S2C, Kind.ERROR, data=f"connect failed: {exc.__class__.__name__}")
            self.closed = True
            raise UpstreamError(f"cannot open {url}: {exc}") from exc

    async def reader(self) -> None:
        """Receive until the connection ends; record and queue every frame, then the close."""
        assert self.ws is not None
        ws = self.ws
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    self._emit(Direction.S2C, Kind.WS_TEXT, data=msg)
                    frame = Frame(text=msg)
                else:
                    self._emit(Direction.S2C, Kind.WS_BINARY, data_b64=bytes(msg))
                    frame = Frame(data=bytes(msg))
                self.received.append(frame)
                self.queue.put_nowait(frame)
        except ConnectionClosed:
            pass
        rcvd = ws.protocol.close_rcvd
        code = rcvd.code if rcvd is not None else 1006
        reason = rcvd.reason if rcvd is not None else ""
        self.closed, self.close_code, self.close_reason = True, code, reason
        if not self._we_closed:
            self._emit(Direction.S2C, Kind.WS_CLOSE, code=code, reason=reason)
        self.queue.put_nowait(Frame(closed=True, code=code, reason=reason))

    async def send(self, payload: str | bytes) -> None:
        assert self.ws is not None
        if isinstance(payload, str):
            self._emit(Direction.C2S, Kind.WS_TEXT, data=payload)
        else:
            self._emit(Direction.C2S, Kind.WS_BINARY, data_b64=payload)
        try:
            await self.ws.send(payload)
        except ConnectionClosed:
            # The server closed first; the reader records the close. Sending into a closed socket is an
            # outcome worth keeping, not a crash.
            logger.debug("%s: send after close", self.conn)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Client-initiated close, recorded as ``ws-close`` c2s (no-op if already closed)."""
        if self.ws is None or self.closed:
            return
        self._we_closed = True
        self._emit(Direction.C2S, Kind.WS_CLOSE, code=code, reason=reason)
        await self.ws.close(code, reason)

    async def abort(self) -> None:
        """Close without recording (end of a run); the reader then finishes."""
        if self.ws is not None and not self.closed:
            self._we_closed = True
            await self.ws.close(1000, "")

    async def wait(self, done: Callable[[Frame], bool], *, timeout: float, what: str,
                   quiet: float | None = None) -> list[Frame]:
        """Consume frames until ``done(frame)`` is true; return the consumed frames (the last one included).

        Args:
            done: predicate on each frame, including the ``closed`` sentinel.
            timeout: seconds; raises :class:`WaitTimeout` naming ``what`` when reached.
            quiet: if set, also succeed once no frame arrived for this many seconds.
        """
        got: list[Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise WaitTimeout(f"{self.conn}: timed out after {timeout:g}s waiting for {what}")
            window = min(remaining, quiet) if quiet is not None else remaining
            try:
                frame = await asyncio.wait_for(self.queue.get(), window)
            except TimeoutError:
                if quiet is not None and window == quiet:
                    return got
                continue
            got.append(frame)
            if not frame.closed:
                self.consumed.append(frame)
            if frame.closed:
                # Keep the sentinel available for later waits on this connection.
                self.queue.put_nowait(frame)
            if done(frame):
                return got
            if frame.closed:
                raise WaitTimeout(f"{self.conn}: connection closed ({frame.code}) while waiting for {what}")


async def http_exchange(
    session: aiohttp.ClientSession,
    log: ObservationLog,
    conn: str,
    *,
    url: str,
    method: str,
    path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    timeout: float,
    step: str | None = None,
) -> tuple[int, bytes]:
    """One recorded HTTP request/response. ``path`` is what is recorded (path plus query)."""
    req_text, req_b64 = _text_or_bytes(body)
    log.emit(conn, step=step, direction=Direction.C2S, kind=Kind.HTTP_REQUEST, method=method, path=path, headers=tuple(headers),
             data=req_text, data_b64=req_b64)
    try:
        async with session.request(
            method, url, headers=list(headers), data=body if body is not None else None,
            timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
        ) as resp:
            raw = await resp.read()
            resp_headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers)
    except TimeoutError as exc:  # before ClientConnectionError: aiohttp's timeout errors are both
        log.emit(conn, step=step, direction=Direction.S2C, kind=Kind.ERROR, data=f"timeout after {timeout:g}s")
        raise WaitTimeout(f"{conn}: {method} {path} timed out after {timeout:g}s") from exc
    except (aiohttp.ClientConnectionError, OSError) as exc:
        log.emit(conn, step=step, direction=Direction.S2C, kind=Kind.ERROR, data=f"request failed: {exc.__class__.__name__}")
        raise UpstreamError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
    text, b64 = _text_or_bytes(raw)
    log.emit(conn, step=step, direction=Direction.S2C, kind=Kind.HTTP_RESPONSE, status=resp.status, headers=resp_headers,
             data=text, data_b64=b64)
    return resp.status, raw


def _text_or_bytes(body: bytes | None) -> tuple[str | None, bytes | None]:
    if body is None:
        return None, None
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, body
