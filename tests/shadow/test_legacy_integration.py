"""The real thing: the pinned OpenClaw legacy behind the proxy, a second legacy as the candidate (A/A).

For every golden scenario (``tests/golden/*.jsonl``), the client-observed transcript through the proxy must equal
the direct transcript. "Equal" is decided by the one differ (``diffing.api.diff_observations`` with the
openclaw profile) and, honestly, only modulo what differs between two *direct* runs: the scenario is replayed
direct, through the proxy, and direct again. A finding (pair, path) through the proxy is a failure when it shows
against both direct runs while the two direct runs agree on it; it is noise when the direct runs differ there
too (state the scenarios change, agent-run timing), or when the proxied run equals one of the direct runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from _timing import S, async_wait_until

from diffing.api import diff_observations
from recorder.format import read_trace
from recorder.identity import DeviceIdentity
from recorder.replay import replay_trace
from recorder.target import Target
from shadow.config import ShadowConfig
from shadow.proxy import ShadowProxy
from wire.model import Leg
from wire.profiles.openclaw import get_profile

GOLDEN = sorted((Path(__file__).parents[1] / "golden").glob("*.jsonl"))
PROFILE = get_profile("openclaw")

pytestmark = [pytest.mark.slow]


def _findings(a: Any, b: Any, scenario: str) -> set[tuple[str, str, str]]:
    out: set[tuple[str, str, str]] = set()
    for pair, result in diff_observations(a, b, PROFILE, scenario=scenario):
        if result.equal:
            continue
        if not result.diffs:
            out.add((pair.conn, pair.key, result.stage))
        for d in result.diffs:
            out.add((pair.conn, pair.key, d.path))
    return out


def _shadow_config(legacy: Any, candidate: Any, trace_dir: Path) -> ShadowConfig:
    return ShadowConfig.from_mapping({
        "mode": "shadow", "listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
        "legacy": {"url": legacy.http_url, "token": legacy.token or "", "password": legacy.password or "",
                   "hook_token": legacy.hook_token or ""},
        "candidate": {"url": candidate.http_url, "token": candidate.token, "hook_token": candidate.hook_token or "",
                      "device_auth": "resign"},
        "limits": {"candidate_timeout": 10.0},
        "record": {"trace_dir": str(trace_dir)},
    })


@pytest.fixture(scope="module")
async def shadow_on_legacy(legacy, legacy_b, tmp_path_factory):
    proxy = ShadowProxy(_shadow_config(legacy, legacy_b, tmp_path_factory.mktemp("shadow-traces")))
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture(scope="module")
async def shadow_on_legacy_pw(legacy_pw, legacy_b, tmp_path_factory):
    """The same proxy in front of a password-mode legacy, for the pw-* traces (recorded in password mode)."""
    proxy = ShadowProxy(_shadow_config(legacy_pw, legacy_b, tmp_path_factory.mktemp("shadow-traces-pw")))
    await proxy.start()
    yield proxy
    await proxy.stop()


def _target(url: str, gw: Any, name: str) -> Target:
    auth = "password" if gw.password else "token"
    return Target(url=url, token=gw.token, password=gw.password, hook_token=gw.hook_token, name=name, auth_mode=auth)


@pytest.mark.skipif(not GOLDEN, reason="no golden traces in tests/golden (run `make golden`)")
@pytest.mark.timeout(1800)
async def test_every_golden_scenario_is_transparent_through_the_proxy(
    legacy, legacy_pw, shadow_on_legacy, shadow_on_legacy_pw
) -> None:
    """Each trace goes to a legacy in the auth mode it was recorded in: the pw-* traces to a password-mode one,
    direct and through a proxy in front of it (replayed to a token-mode legacy their connect fails, and whether
    the next frame still leaves before the server's close is a race, not a property of the proxy)."""
    failures: list[str] = []
    # one scenario at a time: chat turns broadcast agent/chat events to every operator connection, so
    # concurrent scenarios would see each other's events (cross-talk the differ rightly reports)
    sem = asyncio.Semaphore(1)

    async def one(path: Path) -> None:
        with path.open(encoding="utf-8") as fh:
            trace = read_trace(fh, path=str(path))
        scenario = trace.header.scenario or path.stem
        pw = trace.header.meta.get("auth_mode") == "password"
        gw, proxy = (legacy_pw, shadow_on_legacy_pw) if pw else (legacy, shadow_on_legacy)
        async with sem:
            direct1 = await replay_trace(trace, _target(gw.http_url, gw, "direct"), leg=Leg.LEGACY, timeout=20.0)
            through = await replay_trace(trace, _target(proxy.url, gw, "proxy"), leg=Leg.LEGACY, timeout=20.0)
            direct2 = await replay_trace(trace, _target(gw.http_url, gw, "direct"), leg=Leg.LEGACY, timeout=20.0)
        if not through.complete and direct1.complete:
            failures.append(f"{scenario}: replay through the proxy incomplete: {through.error}")
        # a difference the proxy introduced shows against BOTH direct runs, and not between them
        noise = _findings(direct1.observations, direct2.observations, scenario)
        real = (_findings(direct1.observations, through.observations, scenario)
                & _findings(direct2.observations, through.observations, scenario)) - noise
        if real:
            failures.append(f"{scenario}: {sorted(real)[:5]}")

    await asyncio.gather(*(one(p) for p in GOLDEN))
    assert not failures, f"{len(failures)} of {len(GOLDEN)} scenarios differ through the proxy:\n" + \
        "\n".join(failures)
    for p in (shadow_on_legacy, shadow_on_legacy_pw):
        assert p.metrics.total("parity_stage_errors_total") == 0
        assert p.metrics.total("parity_legacy_errors_total") == 0
    m = shadow_on_legacy.metrics
    assert m.total("parity_pairs_total") > 0
    assert m.total("parity_policy_decisions_total", decision="skip") > 0  # side effects were not mirrored


async def test_signed_connect_is_resigned_for_the_second_legacy(legacy, legacy_b, tmp_path) -> None:
    """A device-signed client connect reaches legacy_b re-signed with the proxy's key over legacy_b's own nonce
    (legacy_b answers hello-ok), and the legacy token never reaches legacy_b. A fresh proxy (fresh device key)."""
    proxy = ShadowProxy(ShadowConfig.from_mapping({
        "mode": "shadow", "listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
        "legacy": {"url": legacy.http_url, "token": legacy.token},
        "candidate": {"url": legacy_b.http_url, "token": legacy_b.token, "device_auth": "resign"},
        "limits": {"candidate_timeout": 10.0}, "record": {"trace_dir": str(tmp_path)}}))
    await proxy.start()
    try:
        await _resigned(proxy, legacy)
    finally:
        await proxy.stop()


async def _resigned(proxy: ShadowProxy, legacy: Any) -> None:
    errors_before = proxy.metrics.total("parity_candidate_errors_total")
    identity = DeviceIdentity.generate()
    async with websockets.connect(proxy.url.replace("http", "ws") + "/", max_size=None, compression=None) as ws:
        challenge = json.loads(await asyncio.wait_for(ws.recv(), 10 * S))["payload"]
        params = {"minProtocol": 4, "maxProtocol": 4,
                  "client": {"id": "cli", "version": "0.0.1", "platform": "linux", "mode": "cli"},
                  "role": "operator", "scopes": ["operator.read"], "auth": {"token": legacy.token}}
        params["device"] = identity.device_block(params, nonce=challenge["nonce"], signed_at_ms=challenge["ts"])
        await ws.send(json.dumps({"type": "req", "id": "sig-1", "method": "connect", "params": params}))
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10 * S))
        assert hello["ok"] is True, hello
        await ws.send(json.dumps({"type": "req", "id": "sig-h", "method": "health", "params": {}}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10 * S))
            if frame.get("id") == "sig-h":
                assert frame["ok"] is True
                break
    trace_path = next(Path(proxy.config.record.trace_dir).glob("shadow-*.jsonl"))

    def candidate_answer(req_id: str) -> dict[str, Any] | None:
        for line in trace_path.read_text(encoding="utf-8").splitlines()[1:]:
            o = json.loads(line)
            if o.get("leg") == "candidate" and o.get("dir") == "s2c" and f'"{req_id}"' in (o.get("data") or ""):
                return dict(json.loads(o["data"]))
        return None

    try:
        await async_wait_until(lambda: candidate_answer("sig-h") is not None, 30 * S,
                               what="legacy_b's health answer")
    except AssertionError:
        seen = [ln[:300] for ln in trace_path.read_text(encoding="utf-8").splitlines() if '"candidate"' in ln]
        errors = {s.labels.get("kind"): s.value for m in proxy.metrics.registry.collect() for s in m.samples
                  if s.name == "parity_candidate_errors_total"}
        raise AssertionError(f"no health answer from legacy_b; candidate errors {errors}; lines {seen}") from None
    connect_answer = candidate_answer("sig-1")
    assert connect_answer is not None and connect_answer["ok"] is True, connect_answer
    assert connect_answer["payload"]["auth"].get("deviceToken"), "legacy_b accepted the proxy's device signature"
    assert legacy.token not in trace_path.read_text(encoding="utf-8")
    assert proxy.metrics.total("parity_candidate_errors_total") == errors_before


async def test_legacy_healthz_byte_identical(legacy, shadow_on_legacy) -> None:
    proxy: ShadowProxy = shadow_on_legacy
    async with aiohttp.ClientSession() as s:
        async with s.get(legacy.http_url + "/healthz") as r:
            direct = (r.status, await r.read(), [k for k in r.headers if k not in ("Date", "Connection", "Keep-Alive")])
        async with s.get(proxy.url + "/healthz") as r:
            through = (r.status, await r.read(), [k for k in r.headers if k not in ("Date", "Connection", "Keep-Alive")])
    assert through == direct
