"""Where mirroring's cost goes: CPU time per exchange of every process, and the WS round trip it adds, split.

``bench/proxy_bench.py`` says how much mirroring costs the client path; this bench says where that cost comes from,
against the real pinned legacy (three contained legacies: ``a`` answers, ``b`` is the mirrored candidate, ``c`` is a
candidate that is stopped, SIGSTOP, once its mirror connection is open). Fronts, all ``parity shadow`` with the
mirror process under SCHED_IDLE (``limits.mirror_process``, ``limits.mirror_idle``), the candidates under SCHED_IDLE
too (they stand for another machine):

- ``passthrough``      mirroring off: the baseline of every figure;
- ``mirror``           every request and RPC mirrored to ``b``;
- ``mirror (stopped)`` every request and RPC mirrored to ``c``, which never runs: the mirror process still relays,
  pairs (each pair expires unanswered or is dropped) and sends, but the candidate costs no CPU.

Figures:

- **CPU per exchange**, from ``/proc/PID/stat`` (user + system time of each process, all its threads), for
  ``GET /healthz`` with ``wrk -t1`` at 1 and 16 connections and for sequential WS ``health`` RPCs: the primary
  legacy, the candidate, the proxy process itself and the mirror process (with its diff workers). Each cell is the
  median over ``--rounds`` runs that alternate between the fronts. HTTP mirroring to the stopped candidate runs
  with ``c`` stopped for the whole HTTP phase (its requests time out and are dropped: the mirror process's own
  bookkeeping, with no candidate work at all).
- **Client-path run-queue wait per exchange**: the time the primary's and the proxy's threads spent runnable but
  not running (``/proc/PID/task/TID/schedstat``, second field). Mirroring's work runs under SCHED_IDLE; this says
  how long the client path waited for a CPU anyway.
- **Compared share** at HTTP (pairs compared over requests, from the front's ``/metrics``): under saturation the
  idle mirror process drops what it cannot take.
- **WS RPC added median**, each front's batch median minus ``direct``'s in the same pass (as in proxy_bench):
  passthrough, mirroring to a live candidate, mirroring to a stopped one. The difference between the last two is
  what the candidate's own CPU costs the client path on a shared machine; in staging it runs elsewhere.

Results go to stdout and to the "mirror cost" section of docs/benchmarks.md. Usage:
``python bench/mirror_cost_bench.py [--rounds 6] [--duration 4] [--rpcs 500] [--no-write]`` (about 8 minutes,
always under ``scripts/contained``: it boots the legacy).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from proxy_bench import (  # noqa: E402
    Procs,
    contain,
    free_port,
    mirrored_pairs,
    proxy_cmd,
    wait_port,
    wrk,
    ws_batch,
    ws_open,
)
from proxy_bench import Upstream as _Upstream  # noqa: E402

logger = logging.getLogger("bench.mirror_cost")
PROCS = ("primary", "candidate", "proxy", "mirror process")
WAIT = "client-path wait"  # run-queue wait of the primary's and the proxy's threads


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant process (not threads: ``/proc/PID/stat`` already sums a process' threads)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            continue
    return out


def run_wait_ms(pids: list[int]) -> float:
    """Time every thread of these processes spent runnable but waiting for a CPU, in ms (``schedstat`` field 2;
    a thread or process that is gone counts 0)."""
    ns = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[1])
            except (FileNotFoundError, IndexError):
                continue
    return ns / 1e6


def cpu_ms(pids: list[int]) -> float:
    """User + system CPU time of these processes, in ms (a process that is gone counts 0)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU of the four processes of one front, and the client path's run-queue wait, around a measurement; per
    exchange in µs."""

    def __init__(self, primary: int, candidate: int, proxy: int) -> None:
        self.primary, self.candidate, self.proxy = primary, candidate, proxy

    def groups(self) -> dict[str, list[int]]:
        children = [p for p in process_tree(self.proxy) if p != self.proxy]
        return {"primary": process_tree(self.primary), "candidate": process_tree(self.candidate),
                "proxy": [self.proxy], "mirror process": children}

    def read(self) -> dict[str, float]:
        groups = self.groups()
        return {**{name: cpu_ms(pids) for name, pids in groups.items()},
                WAIT: run_wait_ms(groups["primary"] + groups["proxy"])}

    @staticmethod
    def per_exchange(before: dict[str, float], after: dict[str, float], n: float) -> dict[str, float]:
        return {k: (after[k] - before[k]) * 1000 / n for k in before}


def start_front(procs: Procs, tmp: Path, primary: Any, candidate: Any, mode: str) -> tuple[str, int, str]:
    port, admin = free_port(), free_port()
    p = procs.start(proxy_cmd(tmp, port, primary.http_url, candidate.http_url, mode, primary.token, candidate.token,
                              mirror_process=True, admin=admin, idle=True),
                    env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_port(port, p, what=mode)
    return f"http://127.0.0.1:{port}", p.pid, f"http://127.0.0.1:{admin}"


def http_cells(fronts: dict[str, tuple[str, Meter, str]], conns: int, rounds: int,
               duration: float) -> dict[str, dict[str, Any]]:
    """``wrk -t1 -c<conns>`` runs alternating over the fronts (name: url, meter, admin url)."""
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in fronts}
    rps: dict[str, list[float]] = {name: [] for name in fronts}
    compared: dict[str, list[float]] = {name: [] for name in fronts}
    for rnd in range(rounds):
        for name in (list(fronts) if rnd % 2 == 0 else list(fronts)[::-1]):
            url, meter, admin = fronts[name]
            pairs = mirrored_pairs(admin, 10)
            before = meter.read()
            r = wrk(url + "/healthz", conns, duration)
            time.sleep(1.0)  # the mirror's backlog of this run is counted with it, not with the next front's
            cpu[name].append(Meter.per_exchange(before, meter.read(), r["requests"]))
            rps[name].append(r["rps"])
            compared[name].append((mirrored_pairs(admin, 10) - pairs) / r["requests"])
    return {name: {"rps": statistics.median(rps[name]), "compared": statistics.median(compared[name]),
                   "cpu": {k: statistics.median(c[k] for c in cpu[name]) for k in (*PROCS, WAIT)}}
            for name in fronts}


async def ws_cells(urls: dict[str, str], meters: dict[str, Meter], token: str, rounds: int, rpcs: int,
                   stop: int) -> dict[str, dict[str, Any]]:
    """WS RPC batches in alternating passes; ``stop``: the pid SIGSTOPped once every connection is open."""
    conns = {name: await ws_open(url, token) for name, url in urls.items()}
    per_pass: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in meters}
    try:
        for ws in conns.values():
            await ws_batch(ws, 50, "warm")
        await asyncio.sleep(2.0)  # the stopped candidate's mirror has said hello and connected
        os.kill(stop, signal.SIGSTOP)
        for rnd in range(rounds):
            for name in (list(urls) if rnd % 2 == 0 else list(urls)[::-1]):
                before = meters[name].read() if name in meters else None
                per_pass[name].append(statistics.median(await ws_batch(conns[name], rpcs, f"r{rnd}")))
                if before is not None:
                    await asyncio.sleep(0.5)
                    cpu[name].append(Meter.per_exchange(before, meters[name].read(), rpcs))
    finally:
        os.kill(stop, signal.SIGCONT)
        for ws in conns.values():
            await ws.close()
    out: dict[str, dict[str, Any]] = {}
    for name in urls:
        added = statistics.median(x - d for x, d in zip(per_pass[name], per_pass["direct"], strict=True))
        out[name] = {"median": statistics.median(per_pass[name]), "added": added,
                     "cpu": {k: statistics.median(c[k] for c in cpu[name]) for k in (*PROCS, WAIT)}
                     if cpu.get(name) else None}
    return out


def table(http: dict[int, dict[str, dict[str, Any]]], ws: dict[str, dict[str, Any]],
          args: argparse.Namespace) -> str:
    def cpu_cells(c: dict[str, float] | None, base: dict[str, float] | None) -> str:
        if c is None:
            return " | ".join("-" for _ in range(len(PROCS) + 2))
        cells = [f"{c[WAIT]:.0f}"] + [f"{c[k]:.0f}" for k in PROCS]
        total = sum(c[k] for k in PROCS)
        ratio = f" ({total / sum(base[k] for k in PROCS):.2f}×)" if base else ""
        return " | ".join(cells) + f" | {total:.0f}{ratio}"

    rows = [
        f"Per exchange in µs, median of {args.rounds} runs per front. CPU time from `/proc/PID/stat` (every thread "
        f"and child process, counted in {1000 / os.sysconf('SC_CLK_TCK'):g} ms ticks: WS cells are good to about "
        "±20 µs); the total's ratio is against passthrough in the same run. \"wait\" is the client path's run-queue "
        "wait: the time the primary's and the proxy's threads were runnable but had no CPU (`schedstat`). HTTP: "
        f"`GET /healthz`, `wrk -t1`, {args.duration:g} s runs; \"compared\" is the share of requests whose pair "
        f"was compared. WS: `health` RPCs, batches of {args.rpcs} in alternating passes; the added median is taken "
        "pass by pass against `direct`. The mirror process and the candidates run under SCHED_IDLE; \"stopped\" is "
        "a candidate that was SIGSTOPped (HTTP: for the whole HTTP phase, so its requests time out and are dropped; "
        "WS: after its mirror connection opened, so its pairs expire unanswered).",
        "",
        "| exchange | front | client-path rate or WS added median | compared | wait | primary | candidate | proxy "
        "| mirror process | total CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for conns, cells in http.items():
        base = cells["passthrough"]
        for name, r in cells.items():
            ratio = r["rps"] / base["rps"]
            rows.append(f"| HTTP {conns} conn | {name} | {r['rps']:.0f} req/s ({ratio:.2f}×) | {r['compared']:.0%} | "
                        f"{cpu_cells(r['cpu'], base['cpu'] if name != 'passthrough' else None)} |")
    wbase = ws["passthrough"]["cpu"]
    for name, r in ws.items():
        if name == "direct":
            rows.append(f"| WS | direct | {r['median']:.3f} ms (round trip) | - | {cpu_cells(None, None)} |")
            continue
        rows.append(f"| WS | {name} | {r['added']:+.3f} ms | - | "
                    f"{cpu_cells(r['cpu'], wbase if name != 'passthrough' else None)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6, help="runs of each cell, alternating over the fronts")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    ap.add_argument("--rpcs", type=int, default=500, help="sequential WS RPCs per front and pass")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.rpcs < 1:
        ap.error("--rounds and --rpcs must be at least 1, --duration positive")
    if not Path("/proc/self/stat").exists():
        ap.error("this bench reads /proc (Linux only)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from parity.legacy import FakeModelServer, LegacyGateway, LegacyOptions, find_installation

    procs, booted = Procs(), []
    fake_model = FakeModelServer().start()
    with tempfile.TemporaryDirectory(prefix="mirror-cost-") as tmpname:
        tmp = Path(tmpname)
        try:
            inst = find_installation()
            for name in ("a", "b", "c"):
                (tmp / name).mkdir()
                logger.info("booting legacy %s (13-60 s)", name)
                booted.append(LegacyGateway.start(LegacyOptions(run_dir=tmp / name, model_url=fake_model.url,
                                                                install_dir=inst.root)))
            a, b, c = booted
            for cand in (b, c):
                if not contain(_Upstream("candidate", "", "", cand.http_url, "", cand.pid), True):
                    logger.warning("could not put candidate %d under SCHED_IDLE", cand.pid)
            off_url, off_pid, off_admin = start_front(procs, tmp, a, b, "passthrough")
            on_url, on_pid, on_admin = start_front(procs, tmp, a, b, "shadow")
            stopped_url, stopped_pid, stopped_admin = start_front(procs, tmp, a, c, "shadow")
            time.sleep(10.0)  # the legacies' start-up work (plugin loading, first health snapshot) is over
            meters = {"passthrough": Meter(a.pid, b.pid, off_pid), "mirror": Meter(a.pid, b.pid, on_pid),
                      "mirror (stopped)": Meter(a.pid, c.pid, stopped_pid)}
            fronts = {"passthrough": (off_url, meters["passthrough"], off_admin),
                      "mirror": (on_url, meters["mirror"], on_admin),
                      "mirror (stopped)": (stopped_url, meters["mirror (stopped)"], stopped_admin)}
            http: dict[int, dict[str, dict[str, Any]]] = {}
            os.kill(c.pid, signal.SIGSTOP)
            try:
                for conns in (1, 16):
                    logger.info("HTTP, %d connection(s): %d rounds of %g s", conns, args.rounds, args.duration)
                    http[conns] = http_cells(fronts, conns, args.rounds, args.duration)
            finally:
                os.kill(c.pid, signal.SIGCONT)
            time.sleep(5.0)  # c answers what queued up while it was stopped before the WS phase starts
            logger.info("WS: %d passes of %d RPCs", args.rounds, args.rpcs)
            urls = {"direct": a.http_url, "passthrough": off_url, "mirror": on_url, "mirror (stopped)": stopped_url}
            ws = asyncio.run(ws_cells(urls, meters, a.token or "", args.rounds, args.rpcs, c.pid))
        finally:  # every process is stopped before its directory goes
            procs.stop_all()
            for g in booted:
                g.stop()
            fake_model.stop()
    out = table(http, ws, args)
    print(out)
    if not args.no_write:
        from _report import write_section

        write_section("mirror cost (bench/mirror_cost_bench.py)", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
