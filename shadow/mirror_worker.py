"""The mirror process: ``python -m shadow.mirror_worker FD``, started by ``shadow.remote.RemoteSide``.

Owns the child's main loop. It reads its config from the socket ``FD``, lowers its own CPU priority
(``limits.mirror_nice``; once ready, SCHED_IDLE with ``limits.mirror_idle``), pins itself to ``limits.mirror_cpus``
if set, runs a :class:`shadow.side.LocalSide`
(the same pipeline, mirrors, trace and store an in-process proxy runs) and feeds it the messages the proxy sends, in
order. Every 0.5 s, and once at exit, it sends its metrics back. It ignores SIGINT and SIGTERM (a terminal or a
service manager signals the whole process group; the proxy decides when mirroring stops, so the store run is
finished and the trace closed) and exits when told to stop or when the proxy's end of the socket closes.
May import: stdlib, prometheus_client, ``wire``, ``shadow.{config,metrics,remote,side}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any

from prometheus_client import generate_latest

from shadow.config import mirror_cpu_set
from shadow.metrics import Metrics
from shadow.remote import read_frame, write_frame
from shadow.side import LocalSide
from wire.profiles.openclaw import get_profile

logger = logging.getLogger("shadow.mirror_worker")

SNAPSHOT_EVERY = 0.5


def _dispatch(side: LocalSide, msg: tuple[Any, ...]) -> None:
    """One message of ``shadow.remote.RemoteSide``, handed to the same-named :class:`LocalSide` method."""
    kind = msg[0]
    if kind == "hreq":
        side.begin_http(*msg[1:])
    elif kind == "hres":
        side.end_http(*msg[1:])
    elif kind == "c2s":
        side.c2s_text(*msg[1:])
    elif kind == "s2c":
        side.s2c_text(*msg[1:])
    elif kind == "obs":
        side.observe(msg[1], force_record=msg[2])
    elif kind == "ws-bin":
        session = side.mirror(msg[1])
        if session is None:
            side.metrics.drop("mirror_ws", "closed")
        else:
            session.offer(msg[2])
    elif kind == "ws-open":
        side.open_mirror(*msg[1:])
    elif kind == "close":
        side.close_conn(msg[1])
    else:
        raise ValueError(f"unknown message {kind!r}")


def _lower_priority(nice: int) -> None:
    if nice:
        try:
            os.nice(nice)
        except OSError as exc:
            logger.warning("cannot lower this process's priority: %s", exc)


def tree_tids(root: int) -> list[int]:
    """The threads of process ``root``, then those of every process it started, recursively (Linux ``/proc``)."""
    tids: list[int] = []
    pids = [root]
    while pids:
        pid = pids.pop(0)
        try:
            tasks = sorted(os.listdir(f"/proc/{pid}/task"), key=lambda t: t != str(pid))  # the main thread first
        except OSError:  # a worker that just exited
            continue
        for tid in tasks:
            tids.append(int(tid))
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    pids += [int(c) for c in f.read().split()]
            except OSError:
                pass
    return tids


def pin_tree(root: int, cpus: set[int] | frozenset[int]) -> None:
    """Every thread of ``root`` and of the processes it started onto ``cpus`` (threads and processes started later
    inherit it); raises ``OSError`` when the kernel refuses."""
    for tid in tree_tids(root):
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:  # a thread that has just ended
            continue


def _pin(cpus: frozenset[int]) -> None:
    """The mirror side onto ``limits.mirror_cpus``, before its diff workers start; nothing to do when empty."""
    if cpus:
        try:
            pin_tree(os.getpid(), cpus)
        except OSError as exc:
            logger.warning("cannot pin the mirror process to CPUs %s (%s); it runs on any CPU", sorted(cpus), exc)


def _set_idle(idle: bool) -> bool:
    """SCHED_IDLE on (or back off) for the whole mirror side: every thread of this process and of the diff
    workers it started (those it starts later inherit it); whether this process's main thread changed.
    Set only once the child is ready (start-up, with its store migrations, must not wait for an idle CPU) and
    lifted again for the final drain where the kernel allows it (root, or RLIMIT_NICE), so a saturated machine
    cannot keep the child from finishing its store run before the proxy's stop timeout."""
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    changed = False
    for tid in tree_tids(os.getpid()):  # this process and the diff workers it started
        try:
            os.sched_setscheduler(tid, policy, os.sched_param(0))
        except ProcessLookupError:  # a thread or worker that has just ended
            continue
        except (AttributeError, OSError) as exc:
            if idle:
                logger.warning("cannot run the mirror process under SCHED_IDLE (%s); it keeps its nice value", exc)
            else:
                logger.info("cannot leave SCHED_IDLE for the final drain (%s)", exc)
            return changed
        changed = changed or tid == os.getpid()
    return changed


async def _snapshots(side: LocalSide, writer: asyncio.StreamWriter) -> None:
    while True:
        await asyncio.sleep(SNAPSHOT_EVERY)
        _send_snapshot(side, writer)


def _send_snapshot(side: LocalSide, writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        write_frame(writer, ("snapshot", generate_latest(side.metrics.registry), side.health()))


async def serve(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    init = await read_frame(reader)
    if not isinstance(init, dict):
        logger.error("no configuration received; exiting")
        return 2
    logging.basicConfig(level=init["log_level"] or logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s mirror-process %(name)s: %(message)s")
    logging.getLogger("shadow").setLevel(init["shadow_level"])
    config = init["config"]
    _lower_priority(config.limits.mirror_nice)
    _pin(mirror_cpu_set(config.limits))
    metrics = Metrics()
    side = LocalSide(config, metrics, get_profile(config.profile), t0=init["t0"], trace_suffix=f"-{os.getpid()}")
    await side.start()
    write_frame(writer, ("ready", side.run_id, os.getpid()))
    idle = config.limits.mirror_idle and _set_idle(True)
    snapshots = asyncio.create_task(_snapshots(side, writer))
    try:
        while (batch := await read_frame(reader)) is not None:
            for msg in batch:
                if msg[0] == "stop":
                    return 0
                try:
                    _dispatch(side, msg)
                except Exception:
                    metrics.stage_errors.labels(stage="remote").inc()
                    logger.exception("message %r failed", msg[0])
        logger.warning("the proxy closed the socket; stopping")
        return 0
    finally:
        snapshots.cancel()
        if idle:
            _set_idle(False)
        await side.stop()
        _send_snapshot(side, writer)
        try:
            await asyncio.wait_for(writer.drain(), 5.0)
        except (ConnectionError, TimeoutError):
            pass
        writer.close()


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a signal to the process group is the proxy's to handle
        signal.signal(sig, signal.SIG_IGN)
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m shadow.mirror_worker FD  (started by the shadow proxy)", file=sys.stderr)
        return 2
    return asyncio.run(serve(int(argv[1])))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
