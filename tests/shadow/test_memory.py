"""Memory: with the candidate stalled for 60 s under load, the proxy's RSS stays under the configured cap and the
work it could not queue is dropped and counted. The proxy runs as a real ``parity shadow`` subprocess so its RSS
is its own."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from _timing import S, async_wait_until
from shadow_fakes import FakeGateway, StallServer, free_port

pytestmark = [pytest.mark.slow]

STALL_SECONDS = 60.0
RSS_CAP_MB = 128
CLIENTS = 16
FRAME = "x" * 16384


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _metric(admin: str, name: str) -> float:
    async with aiohttp.ClientSession() as s, s.get(admin + "/metrics") as r:
        text = await r.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


async def test_stalled_candidate_keeps_rss_under_cap(tmp_path) -> None:
    legacy = await FakeGateway(token="tok-legacy").start()
    stall = await StallServer().start()
    port, admin_port = free_port(), free_port()
    cfg = tmp_path / "shadow.toml"
    cfg.write_text(f'''mode = "shadow"
listen = "127.0.0.1:{port}"
admin = "127.0.0.1:{admin_port}"
[legacy]
url = "{legacy.url}"
token = "tok-legacy"
[candidate]
url = "{stall.url}"
token = "tok-cand"
[limits]
candidate_timeout = {STALL_SECONDS + 30}
conn_queue = 128
max_queued_bytes = {8 * 1024 * 1024}
rss_cap_mb = {RSS_CAP_MB - 32}
''')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "parity", "shadow", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[2])
    url, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    peak = 0
    answered = 0
    try:
        async def up() -> bool:
            try:
                async with aiohttp.ClientSession() as s, s.get(admin + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return proc.poll() is not None
        await async_wait_until(up, 30 * S, what="proxy subprocess up")
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        baseline = _rss(proc.pid)
        stop_at = time.monotonic() + STALL_SECONDS

        async def client(i: int) -> int:
            n = 0
            async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http", "ws") + "/") as ws:
                await ws.receive_str(timeout=10 * S)
                await ws.send_str(json.dumps({"type": "req", "id": "c", "method": "connect", "params": {
                    "auth": {"token": "tok-legacy"}}}))
                assert json.loads(await ws.receive_str(timeout=10 * S))["ok"] is True
                while time.monotonic() < stop_at:
                    rid = f"{i}-{n}"
                    await ws.send_str(json.dumps({"type": "req", "id": rid, "method": "health",
                                                  "params": {"pad": FRAME}}))
                    res = json.loads(await ws.receive_str(timeout=10 * S))
                    assert res["id"] == rid and res["ok"] is True
                    n += 1
            return n

        async def sampler() -> int:
            top = 0
            while time.monotonic() < stop_at:
                top = max(top, _rss(proc.pid))
                await asyncio.sleep(0.2)
            return top

        results = await asyncio.gather(sampler(), *(client(i) for i in range(CLIENTS)))
        peak, answered = results[0], sum(results[1:])
        # every client request was answered by the legacy while the candidate was stalled
        assert answered > CLIENTS * 10
        assert peak < RSS_CAP_MB * 1024 * 1024, f"peak RSS {peak >> 20} MiB (baseline {baseline >> 20} MiB)"
        assert await _metric(admin, "parity_dropped_total") > 0
        async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
            assert r.status == 200  # still serving
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        await stall.stop()
        await legacy.stop()
    print(f"stall {STALL_SECONDS:.0f}s: {answered} client RPCs answered, peak proxy RSS {peak / 2**20:.1f} MiB "
          f"(cap {RSS_CAP_MB} MiB)")
