"""The client path: through the proxy the client sees exactly what the legacy sends (fake legacy, loopback)."""

from __future__ import annotations

import aiohttp
import pytest
from _timing import S, async_wait_until
from shadow_fakes import FakeGateway, http_transcript, ws_transcript


async def test_http_transcript_through_proxy_equals_direct(fake_legacy: FakeGateway, fake_candidate: FakeGateway,
                                                           make_proxy) -> None:
    direct = await http_transcript(fake_legacy.url)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url)
    through = await http_transcript(proxy.url)
    assert through == direct
    # the SSE, chunked and binary bodies really went through whole
    bodies = {row[1]: row[5] for row in through}
    assert bodies["/chunked"] == b"part-0;part-1;part-2;part-3;part-4;"
    assert bodies["/sse"].count(b"event: tick") == 3 and bodies["/sse"].endswith(b"data: [DONE]\n\n")
    assert bodies["/binary"] == bytes(range(256)) * 64


async def test_proxy_adds_no_server_header(fake_legacy: FakeGateway, make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url)
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/status/418") as r:
        assert r.status == 418 and r.reason == "I'm a Teapot"
        assert r.headers.get("X-Custom") == "kept"
        # the fake legacy (aiohttp) sends its own Server header; the proxy passes it, never adds a second one
        assert len(r.headers.getall("Server", [])) == 1


@pytest.mark.parametrize("fast", [True, False], ids=["byte-relay", "aiohttp"])
async def test_ws_transcript_through_proxy_equals_direct(fast: bool, fake_legacy: FakeGateway,
                                                         fake_candidate: FakeGateway, make_proxy) -> None:
    direct = await ws_transcript(fake_legacy.url)
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, limits={"fast_http": fast})
    through = await ws_transcript(proxy.url)
    assert through == direct
    if fast:
        assert proxy.health()["fast_http"]["ws_relayed"] == 1
    assert through[-2] == ("close", (4001, "bye from server"))  # the legacy's close code and reason, unchanged
    # the candidate got its own connect, with its own token, and the mirrored read-only calls
    await async_wait_until(lambda: len(fake_candidate.connects) == 1, 20 * S, what="candidate connect")
    assert fake_candidate.connects[0]["auth"] == {"token": "tok-cand"}
    await async_wait_until(lambda: any('"health"' in f for f in fake_candidate.ws_frames), 20 * S,
                           what="mirrored health")
    assert not any("chat.send" in f for f in fake_candidate.ws_frames), "side-effecting call must be skipped"
    assert not any("tok-legacy" in f for f in fake_candidate.ws_frames), "legacy secret reached the candidate"


async def test_http_mirror_rewrites_credentials_and_skips_side_effects(fake_legacy: FakeGateway,
                                                                       fake_candidate: FakeGateway,
                                                                       make_proxy) -> None:
    proxy = await make_proxy(fake_legacy.url, fake_candidate.url, candidate={"hook_token": "hook-c"},
                             legacy={"hook_token": "hook-l"}, policy={"POST /tools/invoke": "mirror"})
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url + "/tools/invoke", data=b'{"tool":"sessions_list"}',
                          headers={"Authorization": "Bearer tok-legacy"}) as r:
            assert r.status == 200
        async with s.post(proxy.url + "/hooks/wake", data=b'{"text":"x"}',
                          headers={"Authorization": "Bearer hook-l"}) as r:
            assert r.status == 200
    await async_wait_until(lambda: any(p == "/tools/invoke" for _, p, _, _ in fake_candidate.http_requests),
                           20 * S, what="mirrored /tools/invoke")
    (_, _, headers, body), = [r for r in fake_candidate.http_requests if r[1] == "/tools/invoke"]
    assert headers["Authorization"] == "Bearer tok-cand"
    assert body == b'{"tool":"sessions_list"}'
    assert not any(p == "/hooks/wake" for _, p, _, _ in fake_candidate.http_requests)
    m = proxy.metrics
    assert m.value("parity_policy_decisions_total", {"route": "POST /hooks/wake", "decision": "skip"}) == 1
    assert m.value("parity_policy_decisions_total", {"route": "POST /tools/invoke", "decision": "mirror"}) == 1
    await async_wait_until(lambda: m.total("parity_pairs_total", route="POST /tools/invoke") == 1, 20 * S,
                           what="the /tools/invoke pair")
