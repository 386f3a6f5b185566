"""Shadow proxy benchmark: the client path through ``parity shadow`` against direct, mitmproxy and nginx ``mirror``.

One run measures, against a fast loopback upstream AND against the real pinned legacy (two contained legacies:
``a`` answers, ``b`` is the mirrored candidate):

- ``direct``          client -> upstream
- ``proxy (off)``     client -> ``parity shadow`` in passthrough mode (mirroring off) -> upstream
- ``proxy (on)``      client -> ``parity shadow`` in shadow mode -> upstream, every request/RPC mirrored to a second upstream
- ``mitmproxy``       client -> ``mitmdump --mode reverse`` (mitmproxy 11.0.2 from ``.cache/mitm-venv``, no addon)
- ``nginx mirror``    client -> nginx-light 1.22 (1 worker) with ``mirror`` to the second upstream (the reference C shadow)
- ``nginx (no mirror)`` the same nginx without ``mirror``: what mirroring costs the reference shadow on this machine

The candidate (the second upstream) runs under SCHED_IDLE while the fronts are measured: in staging it is another
machine, and on this 2-core box its CPU would otherwise count against the client path of whichever front mirrors to
it (nginx's as much as ours). One extra row, ``co-located candidate`` (root only: leaving SCHED_IDLE needs it),
gives it normal scheduling for its runs, to show what sharing the machine with the candidate costs. Another,
``pinned``, pins its mirror process to the last CPU (``limits.mirror_cpus``) and, for its runs, the candidate there
too; the client path (primary, proxy, load generator) may still use every CPU.

Figures: HTTP ``GET /healthz`` req/s, p50 and p99 with ``wrk`` at 1 and 16 keep-alive connections, and the WS RPC
round trip (``health`` after a token connect; median and p99 over sequential calls, one connection per front,
split into ``--ws-rounds`` interleaved passes over the fronts, each front's added median taken pass by pass
against ``direct``). Every server runs in its
own process (the proxy as ``python -m parity shadow``); ``wrk`` and the WS client run in this process' children.
Results go to stdout and to the "shadow proxy" section of docs/benchmarks.md via ``bench/_report.py``.

Usage: ``python bench/proxy_bench.py [--duration 3] [--reps 3] [--rpcs 1000] [--ws-rounds 10] [--skip-legacy]
[--legacy-json FILE]``.
``--legacy-json`` reuses two running legacies (``[{"http_url","token","pid"}, {...}]``) instead of booting them.
``python bench/proxy_bench.py --serve-upstream PORT`` is the fast upstream itself (used internally).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

logger = logging.getLogger("bench.proxy")
MITMDUMP = ROOT / ".cache" / "mitm-venv" / "bin" / "mitmdump"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHED_MS = 5.0  # limits.shed_lag_ms of the "proxy (on, shed)" row
COLOCATED = "proxy (on, mirror process, idle, co-located candidate)"
PINNED = "proxy (on, mirror process, idle, pinned)"
ALL_CPUS = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else {0}
MIRROR_CPU = str(max(ALL_CPUS))  # the pinned front's mirror process (and the candidate during its runs) run here


# -- the fast upstream -------------------------------------------------------------------------------------------

def serve_upstream(port: int) -> None:
    from aiohttp import WSMsgType, web

    health = b'{"ok":true,"status":"live"}'

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(max_msg_size=0)
            await ws.prepare(request)
            await ws.send_str('{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":1}}')
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame.get("method") == "connect":
                    await ws.send_str(json.dumps({"type": "res", "id": frame["id"], "ok": True,
                                                  "payload": {"type": "hello-ok", "protocol": 4}}))
                else:
                    await ws.send_str(json.dumps({"type": "res", "id": frame.get("id"), "ok": True,
                                                  "payload": {"ok": True}}))
            return ws
        return web.Response(body=health, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- processes ---------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s")


@dataclass
class Procs:
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(self.procs):
            self.stop(p)


def proxy_cmd(tmp: Path, port: int, legacy: str, candidate: str, mode: str, ltoken: str, ctoken: str,
              shed_ms: float = 0.0, mirror_process: bool = False, admin: int = 0, idle: bool = False,
              cpus: str = "") -> list[str]:
    cfg = tmp / f"shadow-{port}.toml"
    cfg.write_text(f'mode = "{mode}"\nlisten = "127.0.0.1:{port}"\nadmin = "127.0.0.1:{admin or free_port()}"\n'
                   f'[legacy]\nurl = "{legacy}"\ntoken = "{ltoken}"\n'
                   + (f'[candidate]\nurl = "{candidate}"\ntoken = "{ctoken}"\n' if candidate else "")
                   + f'[limits]\nshed_lag_ms = {shed_ms}\nmirror_process = {str(mirror_process).lower()}\n'
                   + f'mirror_idle = {str(idle).lower()}\n' + (f'mirror_cpus = "{cpus}"\n' if cpus else ''))
    return [sys.executable, "-m", "parity", "shadow", "--config", str(cfg)]


def nginx_cmd(tmp: Path, port: int, legacy_port: int, candidate_port: int, mirror: bool = True) -> list[str]:
    prefix = tmp / f"nginx-{port}"
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    mirror_line = "      mirror /__parity_mirror;" if mirror else "      # no mirror: the same proxy, forwarding only"
    conf.write_text(f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
  uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  upstream legacy {{ server 127.0.0.1:{legacy_port}; keepalive 32; }}
  upstream candidate {{ server 127.0.0.1:{candidate_port}; keepalive 32; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
{mirror_line}
      mirror_request_body on;
      proxy_pass http://legacy;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
    }}
    location = /__parity_mirror {{
      internal;
      proxy_pass http://candidate$request_uri;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Upgrade "";
    }}
  }}
}}
""")
    return [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]


def mitm_cmd(tmp: Path, port: int, upstream: str) -> list[str]:
    return [str(MITMDUMP), "--mode", f"reverse:{upstream}", "--listen-host", "127.0.0.1", "-p", str(port), "-q",
            "--set", f"confdir={tmp / 'mitmconf'}", "--set", "connection_strategy=lazy"]


# -- load -------------------------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, conns: int, duration: float) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration:g}s", "--latency", "--timeout", "10s", url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "p50": _ms(lat["50"]), "p99": _ms(lat["99"]), "errors": 1.0 if errors else 0.0,
            "requests": total}


def mirrored_pairs(admin_url: str, timeout: float = 60.0) -> float:
    """``GET /healthz`` pairs the proxy compared (``parity_pairs_total``), once the count stops moving."""
    import urllib.request

    last, stable, deadline = -1.0, 0, time.monotonic() + timeout
    while time.monotonic() < deadline and stable < 3:
        with urllib.request.urlopen(admin_url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        pattern = r'^parity_pairs_total\{[^}]*route="[^"]* /healthz"[^}]*\} (\S+)$'
        now = sum(float(v) for v in re.findall(pattern, text, re.M))
        stable = stable + 1 if now == last else 0
        last = now
        time.sleep(0.5)
    return last


async def ws_open(url: str, token: str) -> Any:
    """A WS connection through ``url`` after a token ``connect`` (hello-ok read)."""
    import websockets

    ws = await websockets.connect(url.replace("http", "ws", 1) + "/", max_size=None, compression=None,
                                  ping_interval=None, open_timeout=30)
    await asyncio.wait_for(ws.recv(), 30)
    await ws.send(json.dumps({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": ["operator.read"], "auth": {"token": token}}}))
    while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("id") != "c":
        pass
    return ws


async def ws_batch(ws: Any, n: int, tag: str) -> list[float]:
    """``n`` sequential ``health`` RPCs on ``ws``: each round trip in ms (events in between are skipped)."""
    out = []
    for i in range(n):
        rid = f"{tag}-{i}"
        t0 = time.perf_counter()
        await ws.send(json.dumps({"type": "req", "id": rid, "method": "health", "params": {}}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("id") != rid:
            pass  # events (tick, health broadcasts) are skipped
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def ws_rounds(up: Upstream, fronts: list[Front], rpcs: int, rounds: int) -> dict[str, dict[str, Any] | None]:
    """The WS RPC round trip of every front, interleaved as the HTTP cells are: one connection per front, then
    ``rounds`` passes over the fronts (forward, backward, ...), each a batch of ``rpcs // rounds`` sequential RPCs
    per front. The legacy's own round trip drifts by more than the target between minutes, so each front's added
    median is taken round by round against ``direct``'s batch of the same pass. A front whose WS leg fails is
    reported (None), not fatal."""
    conns: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    per_round: dict[str, list[float]] = {}
    for f in fronts:
        try:
            arrange(up, f)
            conns[f.name] = await ws_open(f.url, up.legacy_token)
            await ws_batch(conns[f.name], 50, "warm")
            samples[f.name], per_round[f.name] = [], []
        except Exception as exc:
            logger.warning("[%s] %s: WS RPC failed: %r", up.name, f.name, exc)
    batch = rpcs // rounds  # main() checks rpcs >= rounds
    try:
        for rnd in range(rounds):
            for f in (fronts if rnd % 2 == 0 else fronts[::-1]):
                if f.name not in conns:
                    continue
                arrange(up, f)
                try:
                    got = await ws_batch(conns[f.name], batch, f"r{rnd}")
                except Exception as exc:
                    logger.warning("[%s] %s: WS RPC failed in round %d: %r", up.name, f.name, rnd + 1, exc)
                    await conns.pop(f.name).close()
                    continue
                samples[f.name] += got
                per_round[f.name].append(statistics.median(got))
    finally:
        for ws in conns.values():
            await ws.close()
    out: dict[str, dict[str, Any] | None] = {}
    for f in fronts:
        s = sorted(samples.get(f.name, ()))
        if f.name not in conns or not s:
            out[f.name] = None
            continue
        out[f.name] = {"median": statistics.median(s), "p99": s[max(0, int(len(s) * 0.99) - 1)],
                       "rounds": per_round[f.name]}
    return out


# -- the matrix -------------------------------------------------------------------------------------------------

@dataclass
class Upstream:
    name: str
    legacy_url: str
    legacy_token: str
    candidate_url: str
    candidate_token: str
    candidate_pid: int = 0  # 0: unknown (a reused legacy without its pid): the candidate is left as it runs


def contain(up: Upstream, idle: bool) -> bool:
    """The candidate's process tree under SCHED_IDLE (it stands for another machine's CPU) or back to normal
    scheduling (co-located); False when the kernel refused (leaving SCHED_IDLE needs root)."""
    from shadow.mirror_worker import tree_tids

    ok = True
    for tid in tree_tids(up.candidate_pid) if up.candidate_pid else ():
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
        except ProcessLookupError:
            continue
        except OSError:
            ok = False
    return ok


def arrange(up: Upstream, f: Front | None) -> None:
    """The candidate's scheduling for front ``f``'s runs: SCHED_IDLE unless the front is the co-located one, and
    on the pinned front's mirror CPUs (it stands for another machine: it does not spread over the client path's
    CPUs either) or on every CPU. ``None``: back to normal, at the end."""
    from shadow.config import parse_cpus
    from shadow.mirror_worker import pin_tree

    contain(up, f is not None and not f.colocated)
    if up.candidate_pid:
        pin_tree(up.candidate_pid, parse_cpus(f.pinned, "pinned") if f and f.pinned else ALL_CPUS)


@dataclass
class Front:
    """One front-end under test: ``direct`` (no process) or a proxy, mitmproxy or nginx in front of the upstream."""

    name: str
    url: str
    proc: subprocess.Popen[bytes] | None = None
    admin_url: str = ""  # a mirroring proxy's admin port (its pair counts tell how much of a cell was mirrored)
    colocated: bool = False  # the candidate keeps normal scheduling during this front's runs
    pinned: str = ""  # limits.mirror_cpus of this front's mirror process; the candidate is pinned there too


def start_fronts(up: Upstream, tmp: Path, procs: Procs) -> list[Front]:
    lport = int(up.legacy_url.rsplit(":", 1)[1])
    cport = int(up.candidate_url.rsplit(":", 1)[1])
    names = ["direct", "proxy (off)", "proxy (on)", f"proxy (on, shed {SHED_MS:g} ms)", "proxy (on, mirror process)",
             "proxy (on, mirror process, idle)"]
    if len(ALL_CPUS) > 1:
        names.append(PINNED)
    if up.candidate_pid and os.geteuid() == 0:  # only root may take the candidate back out of SCHED_IDLE
        names.append(COLOCATED)
    else:
        logger.warning("[%s] no co-located row: the candidate's pid is unknown or this is not root", up.name)
    if MITMDUMP.exists():
        names.append("mitmproxy")
    else:
        logger.warning("mitmproxy venv missing (%s): run scripts/setup-extras.sh; skipping mitmproxy", MITMDUMP)
    if Path(NGINX).exists():
        names += ["nginx mirror", "nginx (no mirror)"]
    else:
        logger.warning("nginx not installed (apt-get install nginx-light); skipping nginx mirror")
    fronts = []
    for name in names:
        if name == "direct":
            fronts.append(Front(name, up.legacy_url))
            continue
        port, admin = free_port(), 0
        if name.startswith("proxy"):
            admin = free_port()
            cmd = proxy_cmd(tmp, port, up.legacy_url, up.candidate_url,
                            "shadow" if "on" in name else "passthrough", up.legacy_token, up.candidate_token,
                            shed_ms=SHED_MS if "shed" in name else 0.0,
                            mirror_process="mirror process" in name, admin=admin, idle="idle" in name,
                            cpus=MIRROR_CPU if name == PINNED else "")
        elif name == "mitmproxy":
            cmd = mitm_cmd(tmp, port, up.legacy_url)
        else:
            cmd = nginx_cmd(tmp, port, lport, cport, mirror=name == "nginx mirror")
        proc = procs.start(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wait_port(port, proc, what=name)
        mirroring = "on" in name and name.startswith("proxy")
        fronts.append(Front(name, f"http://127.0.0.1:{port}", proc, f"http://127.0.0.1:{admin}" if mirroring else "",
                            colocated=name == COLOCATED, pinned=MIRROR_CPU if name == PINNED else ""))
    return fronts


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    """A cell's runs: the median req/s, p50 and p99 over them (each run's p99 is its own), the highest error flag,
    the requests of all runs, the mirrored share of all of them together, and the runs themselves (the targets pair
    them round by round)."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    out["errors"] = max(r["errors"] for r in runs)
    out["requests"] = sum(r["requests"] for r in runs)
    rates = [r["rps"] for r in runs]
    out["spread"] = (max(rates) - min(rates)) / out["rps"] if out["rps"] else 0.0
    if all("pairs" in r for r in runs):
        out["coverage"] = sum(r["pairs"] for r in runs) / out["requests"] if out["requests"] else 0.0
    out["runs"] = runs
    return out


def paired(a: dict[str, Any], b: dict[str, Any], fn: Callable[[dict[str, Any], dict[str, Any]], float]) -> float:
    """The median over rounds of ``fn(a's run, b's run)``: both runs of a round were measured in the same pass
    over the fronts, so a slow spell of the machine weighs on both sides of each ratio or difference."""
    return statistics.median(fn(x, y) for x, y in zip(a["runs"], b["runs"], strict=True))


def measure(up: Upstream, tmp: Path, procs: Procs, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every front runs at once; the HTTP cells are measured ``--reps`` times in rounds (forward, then backward,
    ...), so a slow minute of the shared machine falls on every front alike; each figure is the median of its
    runs. A mirroring proxy's backlog is waited out after each of its runs (counting the pairs it compared), so
    it never runs into the next front's measurement."""
    fronts = start_fronts(up, tmp, procs)
    try:
        runs: dict[str, dict[str, list[dict[str, float]]]] = {f.name: {"c1": [], "c16": []} for f in fronts}
        settled: dict[str, float] = {}
        for f in fronts:
            logger.info("[%s] %s: %s", up.name, f.name, f.url)
            arrange(up, f)
            wrk(f.url + "/healthz", 1, 1.0)  # warm-up
            if f.admin_url:
                settled[f.name] = mirrored_pairs(f.admin_url)
        for rep in range(args.reps):
            for f in (fronts if rep % 2 == 0 else fronts[::-1]):
                arrange(up, f)
                for cell, conns in (("c1", 1), ("c16", 16)):
                    r = wrk(f.url + "/healthz", conns, args.duration)
                    if f.admin_url:  # how much of this run's traffic the mirror really compared
                        now = mirrored_pairs(f.admin_url)
                        r["pairs"], settled[f.name] = now - settled[f.name], now
                    runs[f.name][cell].append(r)
                logger.info("[%s] %s, round %d: %.0f / %.0f req/s", up.name, f.name, rep + 1,
                            runs[f.name]["c1"][-1]["rps"], runs[f.name]["c16"][-1]["rps"])
        ws = asyncio.run(ws_rounds(up, fronts, args.rpcs, args.ws_rounds))
        results: dict[str, dict[str, Any]] = {}
        for f in fronts:
            row: dict[str, Any] = {cell: summarize(runs[f.name][cell]) for cell in ("c1", "c16")}
            row["ws"] = ws[f.name]
            logger.info("[%s] %s: %s", up.name, f.name, json.dumps(row))
            results[f.name] = row
        return results
    finally:
        arrange(up, None)
        for f in fronts:
            if f.proc is not None:
                procs.stop(f.proc)


def fmt_row(up: str, name: str, r: dict[str, Any]) -> str:
    ws = r.get("ws")
    wss = f"{ws['median']:.2f} / {ws['p99']:.2f}" if ws else "n/a"
    cov = f"{r['c1']['coverage']:.0%} / {r['c16']['coverage']:.0%}" if "coverage" in r["c1"] else "-"
    return (f"| {up} | {name} | {r['c1']['rps']:.0f} | {r['c1']['p50']:.3f} / {r['c1']['p99']:.3f} | "
            f"{r['c16']['rps']:.0f} | {r['c16']['p50']:.2f} / {r['c16']['p99']:.2f} | {wss} | {cov} | "
            f"{r['c1']['spread']:.0%} / {r['c16']['spread']:.0%} |")


def _rate_ratio(x: dict[str, float], y: dict[str, float]) -> float:
    return x["rps"] / y["rps"] if y["rps"] else float("inf")


def targets(up: str, res: dict[str, dict[str, Any]]) -> list[str]:
    """Every issue-6 target, for each mirroring configuration measured (in-process, shedding, mirror process);
    each compares two fronts round by round (:func:`paired`)."""
    d, off = res["direct"], res["proxy (off)"]
    rows = []

    def add(what: str, value: str, ok: bool | None) -> None:
        rows.append(f"| {up} | {what} | {value} | {'met' if ok else ('not met' if ok is not None else 'n/a')} |")

    for name, on in res.items():
        if not name.startswith("proxy (on"):
            continue
        variant = name[len("proxy ("):-1]  # "on", "on, shed 5 ms", "on, mirror process"
        added50 = paired(on["c1"], d["c1"], lambda x, y: x["p50"] - y["p50"])
        added99 = paired(on["c1"], d["c1"], lambda x, y: x["p99"] - y["p99"])
        add(f"added p50, HTTP, 1 conn, mirroring {variant} (≤ 0.5 ms)", f"{added50:+.3f} ms", added50 <= 0.5)
        add(f"added p99, HTTP, 1 conn, mirroring {variant} (≤ 2 ms)", f"{added99:+.3f} ms", added99 <= 2.0)
        for c in ("c1", "c16"):
            ratio = paired(on[c], off[c], _rate_ratio)
            cov = f" ({on[c]['coverage']:.0%} mirrored)" if "coverage" in on[c] else ""
            add(f"throughput mirroring {variant} / off, {c[1:]} conn (≥ 0.9×)", f"{ratio:.2f}×{cov}", ratio >= 0.9)
        if d.get("ws") and on.get("ws"):
            wadd = statistics.median(x - y for x, y in zip(on["ws"]["rounds"], d["ws"]["rounds"], strict=True))
            add(f"WS RPC added median, mirroring {variant} (≤ 0.3 ms)", f"{wadd:+.3f} ms", wadd <= 0.3)
        if "mitmproxy" in res:
            ratio = paired(on["c16"], res["mitmproxy"]["c16"], _rate_ratio)
            add(f"throughput vs mitmproxy, 16 conn, mirroring {variant} (≥ 8×)", f"{ratio:.1f}×", ratio >= 8.0)
        if "nginx mirror" in res:
            ratio = paired(on["c16"], res["nginx mirror"]["c16"], _rate_ratio)
            add(f"stretch: mirroring throughput vs nginx mirror, 16 conn, {variant} (≥ 1×)", f"{ratio:.2f}×",
                ratio >= 1.0)
    if "mitmproxy" in res:  # like for like: mitmproxy's reverse mode forwards only, as passthrough does
        ratio = paired(off["c16"], res["mitmproxy"]["c16"], _rate_ratio)
        add("throughput vs mitmproxy, 16 conn, both forwarding only (mirroring off) (≥ 8×)", f"{ratio:.1f}×",
            ratio >= 8.0)
    if "nginx mirror" in res and "nginx (no mirror)" in res:  # what mirroring costs the reference C shadow here
        for c in ("c1", "c16"):
            ratio = paired(res["nginx mirror"][c], res["nginx (no mirror)"][c], _rate_ratio)
            add(f"context: nginx's own throughput mirroring on / off, {c[1:]} conn (no target)", f"{ratio:.2f}×",
                None)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    ap.add_argument("--reps", type=int, default=3, help="runs of each HTTP cell (interleaved rounds; medians)")
    ap.add_argument("--rpcs", type=int, default=1000, help="sequential WS RPCs per configuration")
    ap.add_argument("--ws-rounds", type=int, default=10,
                    help="interleaved passes over the fronts the WS RPCs are split into (paired against direct)")
    ap.add_argument("--skip-legacy", action="store_true", help="fast upstream only")
    ap.add_argument("--legacy-json", metavar="FILE", help="reuse two running legacies instead of booting them")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args(argv)
    if args.reps < 1 or args.duration <= 0 or args.ws_rounds < 1 or args.rpcs < args.ws_rounds:
        ap.error("--reps and --ws-rounds must be at least 1, --rpcs at least --ws-rounds, --duration positive")
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not shutil.which("wrk"):
        logger.error("wrk is not installed (apt-get install wrk): it is the HTTP load generator of this bench")
        return 2
    procs = Procs()
    booted: list[Any] = []
    fake_model = None
    all_rows: list[str] = []
    target_rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as tmpname:
        tmp = Path(tmpname)
        try:
            ports = [free_port(), free_port()]
            fast = [procs.start([sys.executable, str(Path(__file__)), "--serve-upstream", str(p)]) for p in ports]
            for p, proc in zip(ports, fast, strict=True):
                wait_port(p, proc, what="fast upstream")
            ups = [Upstream("fast loopback", f"http://127.0.0.1:{ports[0]}", "t", f"http://127.0.0.1:{ports[1]}", "t",
                            fast[1].pid)]
            if not args.skip_legacy:
                if args.legacy_json:
                    a, b = json.loads(Path(args.legacy_json).read_text())[:2]
                else:
                    from parity.legacy import FakeModelServer, LegacyGateway, LegacyOptions, find_installation

                    inst = find_installation()
                    fake_model = FakeModelServer().start()
                    for name in ("a", "b"):
                        run_dir = tmp / f"legacy-{name}"
                        run_dir.mkdir()
                        logger.info("booting legacy %s (13-60 s)", name)
                        booted.append(LegacyGateway.start(LegacyOptions(run_dir=run_dir, model_url=fake_model.url,
                                                                        install_dir=inst.root)))
                    a, b = ({"http_url": g.http_url, "token": g.token, "pid": g.pid} for g in booted)
                ups.append(Upstream("legacy 2026.9.6", a["http_url"], a["token"], b["http_url"], b["token"],
                                    int(b.get("pid") or 0)))
            for up in ups:
                res = measure(up, tmp, procs, args)
                all_rows += [fmt_row(up.name, n, r) for n, r in res.items()]
                target_rows += targets(up.name, res)
        finally:
            procs.stop_all()
            for g in booted:
                g.stop()
            if fake_model is not None:
                fake_model.stop()
    table = "\n".join([
        f"`GET /healthz` with `wrk -t1` (keep-alive), {args.reps} runs of {args.duration:g} s per cell: every "
        "front-end runs at once and the runs go in rounds over all of them (forward, backward, ...), so a slow "
        "spell of the shared machine falls on all alike; figures are medians of the runs, and each target below is "
        "the median over rounds of that round's ratio or difference. WS: "
        f"{args.rpcs} sequential `health` RPCs per front after a token connect, one connection per front, in "
        f"{args.ws_rounds} interleaved passes over the fronts (forward, backward, ...); the WS target is the median "
        "over passes of the front's batch median minus `direct`'s of the same pass. Latencies in ms. \"proxy (off)\" is passthrough mode, \"proxy (on)\" "
        "mirrors every request and RPC to a second upstream of the same kind; \"shed\" adds `limits.shed_lag_ms` "
        "(mirror work is dropped, counted, while the event loop lags); \"mirror process\" runs the mirror side in a "
        "child process at nice 10 (`limits.mirror_process`), \"idle\" runs that child under SCHED_IDLE "
        "(`limits.mirror_idle`: it only gets CPU time nothing else wants). \"HTTP mirrored\" is the share of each cell's "
        "`GET /healthz` requests that became compared pairs; the rest were dropped and counted "
        "(`parity_dropped_total`), never waited for. \"Spread\" is (max - min) / median of a cell's runs. "
        "The candidate (the second upstream) runs under SCHED_IDLE: in staging it is another machine, and on these 2 "
        "cores its CPU would otherwise count against the client path of whichever front mirrors to it (nginx's as "
        "much as ours); the \"co-located candidate\" row gives it normal scheduling, to show what sharing the "
        "machine with it costs; \"pinned\" pins the mirror process to the last CPU (`limits.mirror_cpus`) and, "
        "for its runs, the candidate there too (the client path may still use every CPU). "
        "nginx mirrors HTTP only (it cannot "
        "mirror WebSocket frames) and runs 1 worker; \"nginx (no mirror)\" is the same nginx forwarding only, so the "
        "table shows what mirroring costs the reference C shadow itself on this machine. mitmproxy is plain reverse "
        "mode (no addon): the like-for-like comparison is with \"proxy (off)\", and the mirroring rows are compared "
        "with it too.",
        "",
        "| upstream | front | req/s, 1 conn | p50 / p99, 1 conn | req/s, 16 conn | p50 / p99, 16 conn | WS RPC median / p99 "
        "| HTTP mirrored, 1 / 16 conn | req/s spread of the runs, 1 / 16 conn |",
        "|---|---|---|---|---|---|---|---|---|",
        *all_rows,
        "",
        "Targets (issue 6), from the same run:",
        "",
        "| upstream | target | measured | verdict |",
        "|---|---|---|---|",
        *target_rows,
    ])
    print(table)
    if not args.no_write:
        from _report import write_section

        write_section("shadow proxy (bench/proxy_bench.py)", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
