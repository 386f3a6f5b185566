"""pyclaw vs the legacy in one run: boot to ready, RSS after boot, ``health`` RPC p50/p99 on one connection, connects/s.

Both gateways run on loopback with token auth and the fake model server. Boot to ready is the time from spawning
the process to the first successful hello-ok (pyclaw) or to ``/readyz`` 200 plus hello-ok (legacy, through
``parity.legacy.LegacyGateway.start``). RSS is the sum over the gateway's process tree after boot (the legacy runs
two node children), with the main process alone beside it. ``health``: 200 warm-up calls, then 500 sequential
calls on one device-less ``cli`` connection. Connects/s (the capacity figure): connect + hello-ok + close, no
device, for 5 s from :data:`CONCURRENCY` concurrent loops of the lean client in ``bench/_wsload.py`` (precomputed
frames, each answer checked), so the client's own CPU does not cap what is measured. Beside it, the gateway's own
CPU per connect during that loop (user + system time of its process tree from ``/proc``, divided by the
connects), and, for continuity with earlier runs, the same cycle from one sequential ``websockets`` client
(which also carries that client's cost).
Targets (issue 5): boot <= 1 s, RSS <= 100 MB, p50 and p99 <= legacy, connects/s >= 4x legacy.
Writes its section of docs/benchmarks.md through ``bench/_report.write_section``. Usage: ``python bench/gateway_bench.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import websockets  # noqa: E402
from _report import machine_info, write_section  # noqa: E402
from _wsload import LeanClient  # noqa: E402
from _wsload import connects_per_s as lean_connects_per_s  # noqa: E402

from parity.legacy import FakeModelServer, LegacyGateway, LegacyOptions  # noqa: E402

CLIENT = {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"}
SCOPES = ["operator.admin", "operator.read", "operator.write"]
CONCURRENCY = 8  # lean connect loops in flight at once


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        if p not in out:
            out.append(p)
            stack.extend(children.get(p, []))
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants."""
    ticks = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(largest single RSS in the tree -- the main process --, RSS summed over the process and its descendants),
    in KiB."""
    rss = []
    for p in _tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        rss.append(int(line.split()[1]))
    return max(rss, default=0), sum(rss)


async def hello(url: str, token: str) -> Any:
    ws = await websockets.connect(url, max_size=64 * 1024 * 1024, open_timeout=10, proxy=None)
    await ws.recv()
    await ws.send(json.dumps({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4, "client": CLIENT, "role": "operator", "scopes": SCOPES,
        "auth": {"token": token}}}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("type") == "res":
            if not frame["ok"]:
                raise RuntimeError(frame["error"])
            return ws


async def health_latency(url: str, token: str, n: int = 500, warmup: int = 200) -> list[float]:
    ws = await hello(url, token)
    out: list[float] = []
    try:
        for i in range(warmup + n):
            rid = f"h{i}"
            t0 = time.perf_counter()
            await ws.send(json.dumps({"type": "req", "id": rid, "method": "health", "params": {}}))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("id") == rid:
                    break
            if i >= warmup:
                out.append((time.perf_counter() - t0) * 1000)
    finally:
        await ws.close()
    return out


async def connects_per_s(url: str, token: str, seconds: float = 5.0) -> float:
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        ws = await hello(url, token)
        await ws.close()
        count += 1
    return count / seconds


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def wait_hello(url: str, token: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            ws = await hello(url, token)
            await ws.close()
            return
        except (OSError, websockets.WebSocketException):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)


def start_pyclaw(tmp: Path, model_url: str) -> tuple[subprocess.Popen[bytes], int, str, float]:
    port, token = free_port(), secrets.token_hex(24)
    state = tmp / "pyclaw"
    state.mkdir()
    (state / "openclaw.json").write_text(json.dumps({
        "gateway": {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "token", "token": token}},
        "models": {"providers": {"fakellm": {"baseUrl": model_url, "apiKey": "fake-key", "api": "openai-completions",
                                             "models": [{"id": "fake-model", "name": "Fake"}]}}},
        "agents": {"defaults": {"model": {"primary": "fakellm/fake-model"}}},
        "logging": {"level": "warn"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCLAW_")}
    env.update({"OPENCLAW_STATE_DIR": str(state), "HOME": str(state)})
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "gateway", "run"], env=env, cwd=HERE.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    asyncio.run(wait_hello(f"ws://127.0.0.1:{port}/", token, 30))
    return proc, port, token, time.monotonic() - t0


def measure(url: str, token: str, pid: int, seconds: float = 5.0) -> dict[str, float]:
    lat = asyncio.run(health_latency(url, token))
    cpu0, client0 = tree_cpu_s(pid), time.process_time()
    seq = asyncio.run(connects_per_s(url, token, seconds))
    n = max(1.0, seq * seconds)
    seq_client_ms = (time.process_time() - client0) * 1000 / n
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    lean = LeanClient(host, int(port), token, {"minProtocol": 4, "maxProtocol": 4, "client": CLIENT,
                                               "role": "operator", "scopes": SCOPES})
    asyncio.run(lean_connects_per_s(lean, 1.0, CONCURRENCY))  # warm-up
    cpu0, client0 = tree_cpu_s(pid), time.process_time()
    cps = asyncio.run(lean_connects_per_s(lean, seconds, CONCURRENCY))
    n = max(1.0, cps * seconds)
    cpu_ms = (tree_cpu_s(pid) - cpu0) * 1000 / n
    client_ms = (time.process_time() - client0) * 1000 / n
    return {"p50": statistics.median(lat), "p99": pct(lat, 0.99), "cps": cps, "cpu_ms": cpu_ms,
            "client_ms": client_ms, "seq": seq, "seq_client_ms": seq_client_ms}


def main() -> int:
    fake = FakeModelServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    results: dict[str, dict[str, float]] = {}
    try:
        proc, port, token, boot = start_pyclaw(tmp, fake.url)
        try:
            time.sleep(1.0)
            main_kb, total_kb = tree_rss_kb(proc.pid)
            results["pyclaw"] = {"boot": boot, "rss_main": main_kb / 1024, "rss_tree": total_kb / 1024,
                                 **measure(f"ws://127.0.0.1:{port}/", token, proc.pid)}
        finally:
            proc.terminate()
            proc.wait(15)
        t0 = time.monotonic()
        legacy = LegacyGateway.start(LegacyOptions(run_dir=tmp / "legacy", model_url=fake.url))
        try:
            boot = time.monotonic() - t0
            assert legacy.token is not None
            asyncio.run(wait_hello(legacy.ws_url, legacy.token, 60))
            boot = time.monotonic() - t0
            time.sleep(1.0)
            main_kb, total_kb = tree_rss_kb(legacy.pid)
            results["legacy"] = {"boot": boot, "rss_main": main_kb / 1024, "rss_tree": total_kb / 1024,
                                 **measure(legacy.ws_url, legacy.token, legacy.pid)}
        finally:
            legacy.stop()
    finally:
        fake.stop()
    py, lg = results["pyclaw"], results["legacy"]
    checks = {
        "boot": ("<= 1 s", py["boot"] <= 1.0), "rss": ("<= 100 MB", py["rss_tree"] <= 100),
        "p50": ("<= legacy", py["p50"] <= lg["p50"]), "p99": ("<= legacy", py["p99"] <= lg["p99"]),
        "cps": (">= 4x legacy", py["cps"] >= 4 * lg["cps"]),
    }
    rows = [
        "| measure | pyclaw | legacy 2026.9.6 | target | met |", "|---|---:|---:|---|---|",
        f"| boot to hello-ok | {py['boot']:.2f} s | {lg['boot']:.1f} s | {checks['boot'][0]} | {'yes' if checks['boot'][1] else 'NO'} |",
        f"| RSS after boot, process tree (main) | {py['rss_tree']:.0f} MB ({py['rss_main']:.0f}) | {lg['rss_tree']:.0f} MB ({lg['rss_main']:.0f}) | {checks['rss'][0]} | {'yes' if checks['rss'][1] else 'NO'} |",
        f"| `health` RPC p50 (500 sequential, one connection) | {py['p50']:.2f} ms | {lg['p50']:.2f} ms | {checks['p50'][0]} | {'yes' if checks['p50'][1] else 'NO'} |",
        f"| `health` RPC p99 | {py['p99']:.2f} ms | {lg['p99']:.2f} ms | {checks['p99'][0]} | {'yes' if checks['p99'][1] else 'NO'} |",
        f"| connects/s: connect + hello-ok + close, no device, {CONCURRENCY} lean loops in flight, 5 s | {py['cps']:.0f} | {lg['cps']:.0f} | {checks['cps'][0]} | {'yes' if checks['cps'][1] else 'NO'} ({py['cps'] / lg['cps']:.1f}x) |",
        f"| gateway CPU per connect in that loop (process tree, user + system) | {py['cpu_ms']:.2f} ms | {lg['cpu_ms']:.2f} ms | (no target; server share alone) | - |",
        f"| the lean client's own CPU per connect (this process) | {py['client_ms']:.2f} ms | {lg['client_ms']:.2f} ms | (no target) | - |",
        f"| for continuity: connects/s from one sequential `websockets` client | {py['seq']:.0f} | {lg['seq']:.0f} | (no target; carries the client's {py['seq_client_ms']:.2f} ms per connect) | - |",
    ]
    table = "\n".join(rows)
    print(table)
    write_section("gateway", table + "\n\nBoth legs on loopback, token auth, the fake model server; the legacy contained by the "
                  "harness. Machine shared with other work: compare the two columns, not absolute values across runs. "
                  f"Connects/s is the gateway's capacity: {CONCURRENCY} concurrent loops of a lean client "
                  "(`bench/_wsload.py`: precomputed frames, every hello-ok checked for `ok:true`, a refused connect "
                  "aborts the run), the same client and concurrency for both legs. The sequential `websockets` row is "
                  "what earlier runs reported; it carries that client's own CPU per connect.\n",
                  machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
