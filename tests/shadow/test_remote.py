"""``limits.mirror_process``: the mirror side in a child process, fed through a socket (fake gateways, loopback)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from pathlib import Path

import aiohttp
import pytest
from _timing import S, async_wait_until
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from shadow_fakes import Exposed, FakeGateway, http_transcript, ws_transcript
from sqlalchemy import create_engine, text

from shadow.config import ShadowConfig
from shadow.metrics import merge_exposition
from shadow.proxy import ShadowProxy
from wire.errors import ConfigError
from wire.profiles.openclaw import get_profile

REMOTE = {"mirror_process": True, "mirror_nice": 7, "diff_workers": 0}


def _nice(pid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, pid)


async def _mirrored_ws(s: aiohttp.ClientSession, proxy: ShadowProxy,
                       candidate: FakeGateway) -> aiohttp.ClientWebSocketResponse:
    """A client WebSocket through ``proxy`` once its candidate leg is open."""
    ws = await s.ws_connect(proxy.url.replace("http", "ws", 1) + "/")
    await ws.receive(10)  # the legacy's challenge
    await async_wait_until(lambda: len(candidate._sockets) == 1, 20 * S, what="candidate leg open")
    return ws


def _refused(proxy: ShadowProxy) -> float:
    """Messages the full socket to the child refused."""
    return Exposed(proxy).total("parity_dropped_total", stage="remote", reason="full")


async def test_transcripts_unchanged_and_pairs_counted_by_the_child(fake_legacy: FakeGateway,
                                                                   fake_candidate: FakeGateway, make_proxy) -> None:
    direct_http = await http_transcript(fake_legacy.url)
    direct_ws = await ws_transcript(fake_legacy.url)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits=REMOTE,
                             policy={"POST /tools/invoke": "mirror"})
    assert await http_transcript(proxy.url) == direct_http
    assert await ws_transcript(proxy.url) == direct_ws

    child = proxy.health()["mirror_process"]
    assert child["alive"] and child["pid"] not in (0, os.getpid())
    assert _nice(child["pid"]) == _nice(os.getpid()) + 7  # the client path wins under CPU contention
    # the child did the mirroring: the candidate got the requests, rewritten to its own credentials
    await async_wait_until(lambda: any(p == "/tools/invoke" for _, p, _, _ in fake_candidate.http_requests),
                           20 * S, what="mirrored /tools/invoke")
    (_, _, headers, _), = [r for r in fake_candidate.http_requests if r[1] == "/tools/invoke"]
    assert headers["Authorization"] == "Bearer tok-cand"
    await async_wait_until(lambda: any('"health"' in f for f in fake_candidate.ws_frames), 20 * S,
                           what="mirrored WS health")
    assert fake_candidate.connects[0]["auth"] == {"token": "tok-cand"}
    assert not any("chat.send" in f for f in fake_candidate.ws_frames), "side-effecting call must be skipped"

    def paired() -> bool:
        m = Exposed(proxy)
        return (m.total("parity_pairs_total", route="POST /tools/invoke") == 1
                and m.total("parity_pairs_total", route="health") >= 1)

    await async_wait_until(paired, 20 * S, what="pairs counted by the child, merged into the proxy's metrics")
    m = Exposed(proxy)
    # the proxy's own client-path counters and the child's pair counters are in one exposition
    assert m.total("parity_requests_total", leg="legacy", outcome="skipped") >= 1  # counted by the proxy
    assert m.total("parity_requests_total", leg="candidate", outcome="match") + \
        m.total("parity_requests_total", leg="candidate", outcome="mismatch") >= 2  # counted by the child
    assert m.total("parity_dropped_total", stage="remote") == 0
    # and that merged exposition is what the admin port serves
    async with aiohttp.ClientSession() as session, session.get(proxy.admin_url + "/metrics") as r:
        assert r.status == 200
        served = [smp for fam in text_string_to_metric_families(await r.text()) for smp in fam.samples]
    assert sum(smp.value for smp in served if smp.name == "parity_pairs_total") >= m.total("parity_pairs_total") >= 2


async def test_store_and_trace_written_by_the_child_without_secrets(tmp_path: Path, fake_legacy: FakeGateway,
                                                                    fake_candidate: FakeGateway) -> None:
    db = tmp_path / "parity.db"
    config = ShadowConfig.from_mapping({
        "mode": "shadow", "listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
        "legacy": {"url": fake_legacy.url, "token": "tok-legacy"},
        "candidate": {"url": fake_candidate.url, "token": "tok-cand"},
        "limits": {**REMOTE, "candidate_timeout": 1.0, "pair_window": 2.0},
        "record": {"db": f"sqlite:///{db}", "trace_dir": str(tmp_path / "traces")},
    })
    proxy = ShadowProxy(config)
    await proxy.start()
    try:
        run_id = proxy.run_id
        assert run_id > 0  # the child opened the store and started the run before the proxy took clients
        await ws_transcript(proxy.url)
        await http_transcript(proxy.url)
    finally:
        await proxy.stop()  # the child drains its pipeline and closes the run before it exits
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        pairs = c.execute(text("select count(*) from pairs where run_id = :r"), {"r": run_id}).scalar()
        finished = c.execute(text("select finished_at from runs where id = :r"), {"r": run_id}).scalar()
    engine.dispose()
    assert pairs and pairs >= 3
    assert finished is not None
    traces = list((tmp_path / "traces").glob("*.jsonl"))
    assert len(traces) == 1
    lines = traces[0].read_text().splitlines()
    legs = {json.loads(line).get("leg") for line in lines[1:]}
    assert {"legacy", "candidate"} <= legs
    for blob in (db.read_bytes(), traces[0].read_bytes()):
        assert b"tok-legacy" not in blob and b"tok-cand" not in blob


async def test_child_killed_under_traffic_client_path_unaffected_and_mirroring_resumes(
        fake_legacy: FakeGateway, fake_candidate: FakeGateway, make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits=REMOTE)
    first = proxy.health()["mirror_process"]["pid"]
    answers: list[tuple[int, bytes]] = []
    stop = asyncio.Event()

    async def traffic() -> None:  # keeps the socket to the child busy while it dies (bounded: 3000 requests)
        async with aiohttp.ClientSession() as s:
            for _ in range(3000):
                if stop.is_set():
                    return
                async with s.get(proxy.url + "/healthz") as r:
                    answers.append((r.status, await r.read()))

    task = asyncio.create_task(traffic())
    await async_wait_until(lambda: len(answers) >= 50, 20 * S, what="traffic flowing")
    compared = Exposed(proxy).total("parity_pairs_total")
    os.kill(first, signal.SIGKILL)
    await async_wait_until(lambda: proxy.health()["mirror_process"]["pid"] not in (0, first), 30 * S,
                           what="child restarted")
    stop.set()
    await task
    # every client request was answered by the legacy, before, during and after the crash
    assert answers and all(a == (200, b'{"ok":true,"status":"live"}') for a in answers)
    health = proxy.health()["mirror_process"]
    assert health["restarts"] == 1 and health["alive"]
    assert Exposed(proxy).total("parity_mirror_process_restarts_total") == 1  # what an alert can watch
    before = len(fake_candidate.http_requests)
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/healthz") as r:
        assert r.status == 200
    await async_wait_until(lambda: len(fake_candidate.http_requests) > before, 20 * S, what="mirroring resumed")
    # the dead child's counters stay in the merged totals: they never go backwards
    assert Exposed(proxy).total("parity_pairs_total") >= compared


async def test_a_stalled_child_costs_drops_never_memory_or_answers(fake_legacy: FakeGateway,
                                                                   fake_candidate: FakeGateway, make_proxy) -> None:
    limit = 64 * 1024
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={**REMOTE, "max_queued_bytes": limit})
    pid = proxy.health()["mirror_process"]["pid"]
    body = b"x" * (16 * 1024)
    huge = b"y" * (4 * limit)  # bigger than the whole budget: never pickled onto the socket
    async with aiohttp.ClientSession() as s:
        async with s.post(fake_legacy.url + "/echo", data=body) as r:
            direct = await r.read()
        async with s.post(fake_legacy.url + "/echo", data=huge) as r:
            direct_huge = await r.read()
        os.kill(pid, signal.SIGSTOP)  # the child takes nothing: the socket fills up
        try:
            for _ in range(60):
                async with s.post(proxy.url + "/echo", data=body) as r:
                    assert r.status == 200 and await r.read() == direct
                assert proxy.health()["mirror_process"]["buffered_bytes"] <= 2 * limit + 1024
            async with s.post(proxy.url + "/echo", data=huge) as r:
                assert r.status == 200 and await r.read() == direct_huge
            assert proxy.health()["mirror_process"]["buffered_bytes"] <= 2 * limit + 1024
            assert Exposed(proxy).total("parity_dropped_total", stage="remote", reason="full") > 0
        finally:
            os.kill(pid, signal.SIGCONT)
    assert proxy.health()["mirror_process"]["pid"] == pid  # stalled, not crashed: the same child carries on


async def test_a_request_refused_at_the_socket_leaves_no_half_and_its_drop_is_counted(
        tmp_path: Path, fake_legacy: FakeGateway, fake_candidate: FakeGateway) -> None:
    """One message per request: when the full socket refuses it, its answer is not sent either (no response
    without its request in the trace; an answer may still be refused after its request went), and a refused WS
    request is counted as dropped under its method."""
    limit = 64 * 1024
    config = ShadowConfig.from_mapping({
        "mode": "shadow", "listen": "127.0.0.1:0", "admin": "127.0.0.1:0",
        "legacy": {"url": fake_legacy.url, "token": "tok-legacy"},
        "candidate": {"url": fake_candidate.url, "token": "tok-cand"},
        "limits": {**REMOTE, "max_queued_bytes": limit, "candidate_timeout": 1.0, "pair_window": 1.0},
        "record": {"trace_dir": str(tmp_path)},
    })
    proxy = ShadowProxy(config)
    await proxy.start()
    sent = 0
    try:
        pid = proxy.health()["mirror_process"]["pid"]

        async with aiohttp.ClientSession() as s:
            ws = await _mirrored_ws(s, proxy, fake_candidate)
            os.kill(pid, signal.SIGSTOP)
            try:
                async def room() -> int:  # what the byte limit still lets in (after the next flush)
                    await asyncio.sleep(0.02)
                    return limit - int(proxy.health()["mirror_process"]["buffered_bytes"])

                async def post(size: int) -> None:
                    nonlocal sent
                    async with s.post(proxy.url + "/healthz", data=b"q" * size) as r:
                        assert r.status == 200
                    sent += 1

                for _ in range(200):  # fill until a few hundred bytes are left
                    if (left := await room()) <= 1200:
                        break
                    await post(min(16 * 1024, left - 1000))
                assert 0 < await room() <= 1200
                before = _refused(proxy)
                await post(1500)  # refused whole; its short answer would still fit, and must not be sent
                assert _refused(proxy) == before + 1
                for _ in range(2000):  # then body-less requests until one is refused too
                    before = _refused(proxy)
                    await post(0)
                    if _refused(proxy) > before:
                        break
                else:
                    raise AssertionError("the socket to the child never filled up")
                skipped = Exposed(proxy).total("parity_requests_total", route="POST /hooks/agent", outcome="skipped")
                async with s.post(proxy.url + "/hooks/agent") as r:  # side-effecting: skipped, and refused
                    assert r.status == 200
                sent += 1
                assert Exposed(proxy).total("parity_requests_total", route="POST /hooks/agent",
                                            outcome="skipped") == skipped + 1  # counted by the proxy
                before = Exposed(proxy).total("parity_requests_total", protocol="ws", route="health",
                                              outcome="dropped")
                await ws.send_str(json.dumps({"type": "req", "id": "r1", "method": "health", "params": {}}))
                await async_wait_until(
                    lambda: Exposed(proxy).total("parity_requests_total", protocol="ws", route="health",
                                                 outcome="dropped") == before + 1, 10 * S,
                    what="the refused WS request counted by the proxy")
                await ws.close()
            finally:
                os.kill(pid, signal.SIGCONT)
    finally:
        await proxy.stop()
    (trace,) = tmp_path.glob("*.jsonl")
    obs = [json.loads(line) for line in trace.read_text().splitlines()[1:]]
    legacy = [o for o in obs if o.get("leg") == "legacy" and o["kind"] in ("http-request", "http-response")]
    requests = {o["conn"] for o in legacy if o["kind"] == "http-request"}
    answers = {o["conn"] for o in legacy if o["kind"] == "http-response"}
    assert 0 < len(requests) < sent  # some were refused whole...
    assert answers and answers <= requests  # ...and no answer reached the child without its request


async def test_a_child_behind_by_more_than_the_deadline_drops_without_waiting_for_a_pair(
        fake_legacy: FakeGateway, fake_candidate: FakeGateway, make_proxy) -> None:
    """A request that reaches the child after ``candidate_timeout`` is dropped on arrival (counted): it is not
    sent to the candidate, and its legacy half does not wait out the pair window to end up ``unpaired``."""
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={**REMOTE, "candidate_timeout": 0.5})
    pid = proxy.health()["mirror_process"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        async with aiohttp.ClientSession() as s, s.get(proxy.url + "/healthz") as r:
            assert r.status == 200
        await asyncio.sleep(1.0)
    finally:
        os.kill(pid, signal.SIGCONT)

    def total(name: str, **labels: str) -> float:
        return Exposed(proxy).total(name, **labels)

    await async_wait_until(lambda: total("parity_dropped_total", stage="mirror", reason="deadline") == 1, 20 * S,
                           what="the stale request dropped by the child")
    await asyncio.sleep(4.0)  # the pair window (2 s), an expiry tick and two metric snapshots of the child (0.5 s)
    assert total("parity_requests_total", route="GET /healthz", outcome="dropped") == 1
    assert total("parity_requests_total", route="GET /healthz", outcome="unpaired") == 0
    assert not [p for _, p, _, _ in fake_candidate.http_requests if p == "/healthz"]


async def test_mirror_idle_runs_the_child_under_sched_idle(fake_legacy: FakeGateway, fake_candidate: FakeGateway,
                                                           make_proxy) -> None:
    direct_http = await http_transcript(fake_legacy.url)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={**REMOTE, "mirror_idle": True},
                             policy={"POST /tools/invoke": "mirror"})
    assert await http_transcript(proxy.url) == direct_http
    child = proxy.health()["mirror_process"]
    assert child["alive"] and child["pid"] not in (0, os.getpid())
    assert os.sched_getscheduler(child["pid"]) == os.SCHED_IDLE
    assert os.sched_getscheduler(os.getpid()) != os.SCHED_IDLE  # the proxy (client path) keeps its own policy
    # an idle machine still mirrors: the child gets the CPU nobody else wants
    await async_wait_until(lambda: Exposed(proxy).total("parity_pairs_total", route="POST /tools/invoke") == 1,
                           20 * S, what="a pair compared by the SCHED_IDLE child")


def _tree_tasks(pid: int) -> dict[int, int]:
    """Every thread of ``pid`` and of the processes it started, recursively: tid -> scheduling policy."""
    out, pids = {}, [pid]
    while pids:
        p = pids.pop()
        for tid in os.listdir(f"/proc/{p}/task"):
            out[int(tid)] = os.sched_getscheduler(int(tid))
            pids += [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
    return out


async def test_mirror_idle_covers_the_childs_threads_and_diff_workers(fake_legacy: FakeGateway,
                                                                     fake_candidate: FakeGateway, make_proxy) -> None:
    """The diff worker processes and the threads the child started before it went idle are idle too: none of
    the mirror side's CPU competes with the client path."""
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url,
                             limits={**REMOTE, "diff_workers": 1, "mirror_idle": True})
    await http_transcript(proxy.url)
    await async_wait_until(lambda: Exposed(proxy).total("parity_pairs_total") >= 1, 20 * S,
                           what="a pair compared by the diff worker")
    pid = proxy.health()["mirror_process"]["pid"]
    tasks = _tree_tasks(pid)
    assert len({t for t in tasks if t != pid}) >= 2  # the child's own threads and a diff worker at least
    assert set(tasks.values()) == {os.SCHED_IDLE}, tasks


async def test_mirror_cpus_pins_the_child_its_threads_and_diff_workers(fake_legacy: FakeGateway,
                                                                      fake_candidate: FakeGateway, make_proxy) -> None:
    """``limits.mirror_cpus``: the mirror side runs only on the CPUs given; the proxy (client path) keeps its own."""
    own = os.sched_getaffinity(0)
    cpu = max(own)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url,
                             limits={**REMOTE, "diff_workers": 1, "mirror_cpus": str(cpu)})
    direct_http = await http_transcript(fake_legacy.url)
    assert await http_transcript(proxy.url) == direct_http
    await async_wait_until(lambda: Exposed(proxy).total("parity_pairs_total") >= 1, 20 * S,
                           what="a pair compared by the pinned diff worker")
    pid = proxy.health()["mirror_process"]["pid"]
    tasks = _tree_tasks(pid)
    assert len({t for t in tasks if t != pid}) >= 2  # the child's own threads and a diff worker at least
    assert {t: os.sched_getaffinity(t) for t in tasks} == {t: {cpu} for t in tasks}
    assert os.sched_getaffinity(0) == own  # the proxy's process is not pinned


async def test_custom_comparator_refused_with_mirror_process(fake_legacy: FakeGateway) -> None:
    config = ShadowConfig.from_mapping({"mode": "passthrough", "legacy": {"url": fake_legacy.url},
                                        "limits": {"mirror_process": True}})
    with pytest.raises(ConfigError, match="mirror_process"):
        ShadowProxy(config, comparator=lambda joined: (True, None))
    other = dataclasses.replace(get_profile(config.profile), name="custom")
    with pytest.raises(ConfigError, match="loads the profile named by `profile` \\('openclaw'\\), not the 'custom'"):
        ShadowProxy(config, profile=other)
    ShadowProxy(config, profile=get_profile(config.profile))  # the profile it would load anyway is fine


@pytest.mark.parametrize(("limits", "message"), [
    ({"mirror_process": "maybe"}, "limits.mirror_process: expected true or false"),
    ({"mirror_nice": 20}, "limits.mirror_nice: expected 0..19"),
    ({"mirror_nice": -1}, "limits.mirror_nice: expected an integer"),
    ({"mirror_idle": "sometimes", "mirror_process": True}, "limits.mirror_idle: expected true or false"),
    ({"mirror_idle": True}, "limits.mirror_idle: applies to the mirror process"),
    ({"mirror_cpus": "1"}, "limits.mirror_cpus: applies to the mirror process"),
    ({"mirror_cpus": "one", "mirror_process": True}, "limits.mirror_cpus: expected a CPU list .* got 'one'"),
    ({"mirror_cpus": "0,3-1", "mirror_process": True}, "limits.mirror_cpus: .* got '0,3-1' \\(at '3-1'\\)"),
    ({"mirror_cpus": 1, "mirror_process": True}, "limits.mirror_cpus: expected a string"),
])
def test_bad_mirror_process_settings_are_named(limits: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ShadowConfig.from_mapping({"mode": "passthrough", "limits": limits})


def test_mirror_cpus_this_machine_lacks_stop_the_proxy_at_start(fake_legacy: FakeGateway) -> None:
    missing = max(os.sched_getaffinity(0)) + 1000
    config = ShadowConfig.from_mapping({"mode": "passthrough", "legacy": {"url": fake_legacy.url},
                                        "limits": {"mirror_process": True, "mirror_cpus": f"{min(os.sched_getaffinity(0))},{missing}"}})
    with pytest.raises(ConfigError, match=f"limits.mirror_cpus: CPU {missing} is not one this process may run on"):
        ShadowProxy(config)


def test_expositions_merge_by_name_and_labels() -> None:
    a = (b"# HELP parity_pairs_total Compared pairs\n# TYPE parity_pairs_total counter\n"
         b'parity_pairs_total{outcome="match",route="health"} 3.0\n'
         b"# HELP parity_queue_depth Items waiting\n# TYPE parity_queue_depth gauge\n"
         b'parity_queue_depth{queue="pair"} 2.0\n')
    b = (b"# HELP parity_pairs_total Compared pairs\n# TYPE parity_pairs_total counter\n"
         b'parity_pairs_total{outcome="match",route="health"} 4.0\n'
         b'parity_pairs_total{outcome="mismatch",route="health"} 1.0\n'
         b"# HELP parity_latency_seconds Latency\n# TYPE parity_latency_seconds histogram\n"
         b'parity_latency_seconds_bucket{le="0.1"} 1.0\nparity_latency_seconds_bucket{le="+Inf"} 2.0\n'
         b"parity_latency_seconds_count 2.0\nparity_latency_seconds_sum 0.5\n")
    merged = merge_exposition(a, b, b)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(merged.decode()) for s in fam.samples}
    assert got[("parity_pairs_total", (("outcome", "match"), ("route", "health")))] == 11.0
    assert got[("parity_pairs_total", (("outcome", "mismatch"), ("route", "health")))] == 2.0
    assert got[("parity_queue_depth", (("queue", "pair"),))] == 2.0
    assert got[("parity_latency_seconds_bucket", (("le", "+Inf"),))] == 4.0
    assert got[("parity_latency_seconds_sum", ())] == 1.0
    assert merged.count(b"# TYPE parity_pairs_total counter") == 1  # one family, not one per process


def test_an_ended_process_leaves_its_counters_not_its_gauges() -> None:
    def process(pairs: int, depth: int) -> tuple[bytes, float]:
        registry = CollectorRegistry()
        counter = Counter("parity_pairs_total", "Compared pairs", ["route"], registry=registry)
        counter.labels(route="health").inc(pairs)
        Gauge("parity_queue_depth", "Items waiting", ["queue"], registry=registry).labels(queue="pair").set(depth)
        return generate_latest(registry), registry.get_sample_value("parity_pairs_created", {"route": "health"})

    dead, dead_created = process(7, 40)
    base = merge_exposition(dead, gauges=False)
    assert b"parity_queue_depth" not in base
    fresh, fresh_created = process(1, 0)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in text_string_to_metric_families(merge_exposition(base, fresh).decode()) for s in fam.samples}
    assert got[("parity_pairs_total", (("route", "health"),))] == 8.0  # never below the dead child's 7
    assert got[("parity_pairs_created", (("route", "health"),))] == min(dead_created, fresh_created)
    assert got[("parity_queue_depth", (("queue", "pair"),))] == 0.0  # the dead child's backlog is gone


async def test_a_connection_close_reaches_a_stalled_child_before_payload_does(
        fake_legacy: FakeGateway, fake_candidate: FakeGateway, make_proxy) -> None:
    """Control messages get headroom over the byte limit: a WS client that leaves while the child is stalled and
    the socket full still has its candidate connection closed, not leaked, once the child runs again."""
    limit = 64 * 1024
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={**REMOTE, "max_queued_bytes": limit})
    pid = proxy.health()["mirror_process"]["pid"]
    async with aiohttp.ClientSession() as s:
        ws = await _mirrored_ws(s, proxy, fake_candidate)
        os.kill(pid, signal.SIGSTOP)
        try:
            for _ in range(200):  # fill the socket to the child until payload is refused
                async with s.post(proxy.url + "/echo", data=b"z" * (16 * 1024)) as r:
                    assert r.status == 200
                if _refused(proxy):
                    break
            for _ in range(2000):  # then top it up until even a body-less request is refused
                before = _refused(proxy)
                async with s.get(proxy.url + "/healthz") as r:
                    assert r.status == 200
                if _refused(proxy) > before:
                    break
            else:
                raise AssertionError("the socket to the child never filled up")
            await ws.close()  # its close message is smaller than those refused: only headroom lets it through
        finally:
            os.kill(pid, signal.SIGCONT)
    await async_wait_until(lambda: not fake_candidate._sockets, 20 * S, what="candidate leg closed by the child")


async def test_the_child_leaves_sigterm_to_the_proxy(fake_legacy: FakeGateway, fake_candidate: FakeGateway,
                                                     make_proxy) -> None:
    """A service manager signals the whole group: the child ignores it and keeps mirroring until the proxy stops
    it (so its store run is finished and its trace closed)."""
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits=REMOTE)
    pid = proxy.health()["mirror_process"]["pid"]
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.5)
    assert proxy.health()["mirror_process"] == {**proxy.health()["mirror_process"], "pid": pid, "alive": True}
    before = len(fake_candidate.http_requests)
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/healthz") as r:
        assert r.status == 200
    await async_wait_until(lambda: len(fake_candidate.http_requests) > before, 20 * S, what="still mirroring")
    assert proxy.health()["mirror_process"]["restarts"] == 0
    assert Exposed(proxy).total("parity_mirror_process_restarts_total") == 0
