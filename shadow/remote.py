"""The mirror side in a child process: the proxy's end of the socket (``limits.mirror_process``).

Owns :class:`RemoteSide` (the :class:`shadow.pipeline.Tap` the forwarder feeds) and :class:`RemoteMirror` (a client
WebSocket's binary frames to its secondary leg, as seen from the proxy), plus the length-prefixed pickle framing both
ends use. Every Tap call appends one message to a list that is pickled and written at most every
:data:`FLUSH_INTERVAL` (so at high request rates one ``send`` carries many exchanges). The per-exchange messages are
tuples of plain values (one per HTTP request, one per answer, one per WS text frame): the client path pays a tuple,
a list append, and a share of one pickle and one ``send``, no thread and no lock; the observations, mirror jobs and
WS policy decisions are made in the child. The rarer ones (WS open, close and binary frames, transport errors) go as
:class:`wire.model.Observation` objects. Mirroring, pairing, diffing, recording and storing all run in
``shadow.mirror_worker``, a child process started at a lower CPU priority (``limits.mirror_nice``, or SCHED_IDLE
with ``limits.mirror_idle``), so under CPU contention the kernel serves the client path first and the mirror falls
behind; what it cannot take is dropped and counted, never waited for:

- the socket's send buffer plus the unsent list over ``limits.max_queued_bytes``: ``parity_dropped_total
  {stage="remote", reason="full"}``;
- the child not running (crashed, restarting): ``reason="worker"``. A dead child is restarted with backoff;
  WebSocket connections opened before the restart are not mirrored any more (``reason="closed"``), and the new
  child opens a new store run and trace file (the crashed child's run is left unfinished).

The child's metrics reach ``/metrics`` as snapshots (every 0.5 s and at exit) merged with the proxy's own
(:func:`shadow.metrics.merge_exposition`). May import: stdlib, prometheus_client, ``wire``,
``shadow.{config,metrics,pairer,pipeline,policy,_tasks}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from shadow._tasks import cancel_all, spawn
from shadow.config import ShadowConfig
from shadow.metrics import Metrics, merge_exposition
from shadow.pairer import payload_size
from shadow.policy import MIRROR, Policy
from wire.errors import ParityError
from wire.model import Leg, Observation

logger = logging.getLogger(__name__)

__all__ = ["RemoteMirror", "RemoteSide", "read_frame", "write_frame"]

_HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0  # the child drains its queues, closes its mirrors and finishes the store run first
#: control messages (tiny, and losing one would leak child state) may use this many times the byte limit
CONTROL_HEADROOM = 2
#: seconds Tap messages wait to be sent together (the mirror is not latency-critical; each message keeps the time
#: it was observed at, so the figures do not move)
FLUSH_INTERVAL = 0.002
#: what a message costs beyond its payload, for the byte limit
_SMALL = 64
#: a refused WS text frame up to this size is parsed in the proxy, to count its outcome under its method
DROP_PARSE_LIMIT = 64 * 1024


def write_frame(writer: asyncio.StreamWriter, obj: Any) -> int:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_HEADER.pack(len(data)) + data)
    return len(data)


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """One frame, or ``None`` at end of stream (the peer closed, died with unread data, or sent garbage)."""
    try:
        (n,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
        if n > MAX_FRAME:
            logger.error("mirror process socket: frame of %d bytes exceeds %d; closing", n, MAX_FRAME)
            return None
        return pickle.loads(await reader.readexactly(n))
    except (asyncio.IncompleteReadError, OSError):
        return None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as exc:
        logger.error("mirror process socket: undecodable frame (%s); closing", exc)
        return None


class RemoteMirror:
    """The secondary leg of one client WebSocket, mirrored by the child process."""

    __slots__ = ("_gen", "_side", "conn")

    def __init__(self, side: RemoteSide, conn: str) -> None:
        self._side = side
        self._gen = side.generation
        self.conn = conn

    def _alive(self) -> bool:
        if self._gen != self._side.generation:  # opened in a child that has since died
            self._side.metrics.drop("mirror_ws", "closed")
            return False
        return True

    def offer(self, data: bytes) -> bool:
        return self._alive() and self._side.send(("ws-bin", self.conn, data), _SMALL + len(data))


class RemoteSide:
    """The Tap of a proxy whose mirror side runs in ``shadow.mirror_worker``."""

    def __init__(self, config: ShadowConfig, metrics: Metrics, policy: Policy) -> None:
        self.config = config
        self.metrics = metrics
        self.policy = policy
        self.t0 = time.monotonic()
        self.run_id = 0
        self.generation = 0
        self.restarts = 0
        self.pid = 0
        self.snapshot = b""  # the current child's last /metrics text
        self._base = b""  # counters and histograms of children that have ended (so totals never go backwards)
        self._child_health: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[Any] = []
        self._pending_bytes = 0
        self._flush_scheduled = False
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._ready = asyncio.get_running_loop().create_future()
        self._supervisor = spawn(self._supervise(), name="mirror-process")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), READY_TIMEOUT)
        except TimeoutError as exc:
            await self.stop()
            raise ParityError(f"mirror process did not start within {READY_TIMEOUT:.0f} s") from exc

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and not self._writer.is_closing():
            self._flush()
            write_frame(self._writer, [("stop",)])
        proc = self._proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                logger.error("mirror process %d did not stop in %.0f s; killing it", proc.pid, STOP_TIMEOUT)
                proc.kill()
                await proc.wait()
        if self._supervisor is not None:
            try:  # the supervisor reads the child's last snapshot, then sees the end of stream
                await asyncio.wait_for(asyncio.shield(self._supervisor), 5.0)
            except TimeoutError:
                await cancel_all([self._supervisor])

    async def _supervise(self) -> None:
        delay = 0.5
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_child()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever ended this child, mirroring goes on with a new one
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(exc)
                    return
                logger.error("mirror process failed: %s: %s", type(exc).__name__, exc)
            if self._stopping:
                return
            self.restarts += 1
            self.metrics.mirror_restarts.inc()
            delay = 0.5 if time.monotonic() - started > 30 else min(delay * 2, 5.0)
            logger.error("mirror process ended unexpectedly; restarting in %.1f s (mirror work dropped meanwhile)",
                         delay)
            await asyncio.sleep(delay)

    async def _run_child(self) -> None:
        parent, child = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shadow.mirror_worker", str(child.fileno()), pass_fds=(child.fileno(),),
                env=env, stdin=asyncio.subprocess.DEVNULL)
        finally:
            child.close()
        proc = self._proc
        reader, writer = await asyncio.open_connection(sock=parent)
        write_frame(writer, {"config": self.config, "t0": self.t0, "log_level": logging.getLogger().level,
                             "shadow_level": logging.getLogger("shadow").getEffectiveLevel()})
        try:
            msg = await asyncio.wait_for(read_frame(reader), READY_TIMEOUT)
            if not (isinstance(msg, tuple) and msg and msg[0] == "ready"):
                raise ParityError(f"mirror process {proc.pid} failed to start (exit code {await proc.wait()}); "
                                  "see its log above")
            _, self.run_id, self.pid = msg
            if self.snapshot:  # a dead child's counters stay counted; its gauges go with it
                self._base = merge_exposition(self._base, self.snapshot, gauges=False)
                self.snapshot = b""
            self._child_health = {}
            self.generation += 1
            self._writer = writer
            self._pending.clear()
            self._pending_bytes = 0
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            limits = self.config.limits
            logger.info("mirror process %d ready (%s)", proc.pid,
                        "SCHED_IDLE" if limits.mirror_idle else f"nice {limits.mirror_nice}")
            while (msg := await read_frame(reader)) is not None:
                if msg[0] == "snapshot":
                    self.snapshot, self._child_health = msg[1], msg[2]
        finally:
            self._writer = None
            if self._pending:  # accepted but never sent: counted, not silently lost
                self.metrics.dropped.labels(stage="remote", reason="worker").inc(len(self._pending))
                self._pending.clear()
                self._pending_bytes = 0
            writer.close()
            if proc.returncode is None and not self._stopping:
                proc.kill()
            await proc.wait()

    # -- sending ------------------------------------------------------------------------------------------
    def send(self, msg: tuple[Any, ...], size: int, *, control: bool = False) -> bool:
        """Queue one message (``size``: roughly its payload bytes) for the child; drop and count when it is not
        running or cannot keep up.

        ``control`` messages (a connection's open or close) are tiny and losing one would leave state behind in
        the child, so they may use :data:`CONTROL_HEADROOM` times the byte limit.
        """
        writer = self._writer
        if writer is None or writer.is_closing():
            self.metrics.drop("remote", "worker")
            return False
        limit = self.config.limits.max_queued_bytes * (CONTROL_HEADROOM if control else 1)
        if writer.transport.get_write_buffer_size() + self._pending_bytes + size > limit:
            self.metrics.drop("remote", "full")
            return False
        self._pending.append(msg)
        self._pending_bytes += size
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self._flush)
        return True

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._pending or self._writer is None:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        write_frame(self._writer, batch)

    # -- Tap ----------------------------------------------------------------------------------------------
    def now(self) -> float:
        return time.monotonic() - self.t0

    def begin_http(self, conn: str, primary: Leg, secondary: Leg | None, method: str, path: str,
                   headers: tuple[tuple[str, str], ...], body: bytes, route: str, decision: str, t: float) -> bool:
        if self.send(("hreq", conn, primary, secondary, method, path, headers, body, route, decision, t),
                     _SMALL + len(path) + len(body)):
            return True
        if secondary is not None:  # the child never sees it: its outcome is counted here
            self.count(primary, "http", route, "dropped" if decision == MIRROR else "skipped")
        return False

    def end_http(self, conn: str, primary: Leg, status: int, headers: tuple[tuple[str, str], ...], kept: bytes,
                 t: float, force_record: bool) -> None:
        self.send(("hres", conn, primary, status, headers, kept, t, force_record), _SMALL + len(kept))

    def c2s_text(self, conn: str, leg: Leg, text: str, mirrored: bool, t: float) -> None:
        if not self.send(("c2s", conn, leg, text, mirrored, t), _SMALL + len(text)) and mirrored:
            # the child never sees this frame: its policy decision and outcome are counted here (a frame too large
            # to parse cheaply on the client path counts only its decision, under route "other")
            if len(text) <= DROP_PARSE_LIMIT:
                decision, route, req = self.policy.ws_text(text)
            else:
                (decision, route), req = self.policy.ws(None), None
            if req is not None:
                self.count(leg, "ws", route, "dropped" if decision == MIRROR else "skipped")

    def s2c_text(self, conn: str, leg: Leg, text: str, t: float) -> None:
        self.send(("s2c", conn, leg, text, t), _SMALL + len(text))

    def observe(self, obs: Observation, *, force_record: bool = False) -> None:
        self.send(("obs", obs, force_record), _SMALL + payload_size(obs))

    def count(self, leg: Leg, protocol: str, route: str, outcome: str) -> None:
        self.metrics.child(self.metrics.requests, leg.value, protocol, route, outcome).inc()

    def open_mirror(self, conn: str, path: str, headers: list[tuple[str, str]], leg: Leg) -> RemoteMirror:
        self.send(("ws-open", conn, path, headers, leg), _SMALL + len(path), control=True)
        return RemoteMirror(self, conn)

    def close_conn(self, conn: str) -> None:
        self.send(("close", conn), _SMALL, control=True)

    # -- reporting ----------------------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """The proxy's metrics merged with the child's last snapshot."""
        own = generate_latest(self.metrics.registry)
        return merge_exposition(own, self._base, self.snapshot) if self._base or self.snapshot else own

    def health(self) -> dict[str, Any]:
        alive = self._writer is not None
        return {"queues": {}, "mirror_bytes": 0, **(self._child_health if alive else {}),
                "mirror_process": {"pid": self.pid if alive else 0, "alive": alive, "restarts": self.restarts,
                                   "buffered_bytes": (self._writer.transport.get_write_buffer_size()
                                                      if self._writer is not None else 0) + self._pending_bytes}}
