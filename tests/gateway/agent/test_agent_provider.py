"""Provider client against the real fake model server: SSE and plain answers, preflight and its 5-minute cache."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from gateway.agent.provider import ModelRef, PreflightCache, ProviderClient, ProviderError, resolve_primary
from parity.legacy import FakeModelServer


def ref_for(url: str) -> ModelRef:
    return ModelRef(provider="fakellm", model="fake-model", base_url=url, api_key="k", api="openai-completions")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_stream_chat_yields_deltas_then_usage(fake_model: FakeModelServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = ProviderClient(session)
        events = [e async for e in client.stream_chat(ref_for(fake_model.url), [{"role": "user", "content": "hi"}])]
    assert [e.delta for e in events if not e.done] == ["PONG", " from fake model"]
    done = events[-1]
    assert done.done and done.finish_reason == "stop"
    assert done.usage is not None and (done.usage.input, done.usage.output, done.usage.total) == (10, 2, 12)
    assert done.response_id == "chatcmpl-fake"


async def test_preflight_failure_is_cached_until_ttl(fake_model: FakeModelServer) -> None:
    now = [1000.0]
    port = free_port()
    async with aiohttp.ClientSession() as session:
        client = ProviderClient(session, PreflightCache(clock=lambda: now[0]))
        ref = ref_for(f"http://127.0.0.1:{port}/v1")
        with pytest.raises(ProviderError):
            await client.preflight(ref)
        with FakeModelServer(port=port) as fm:
            with pytest.raises(ProviderError):
                await client.preflight(ref)  # cached failure, no request made
            assert fm.request_count("GET /v1/models") == 0
            now[0] += 301
            await client.preflight(ref)
            assert fm.request_count("GET /v1/models") == 1
            await client.preflight(ref)  # cached success
            assert fm.request_count("GET /v1/models") == 1


async def test_stream_to_dead_provider_raises(fake_model: FakeModelServer) -> None:
    async with aiohttp.ClientSession() as session:
        client = ProviderClient(session)
        with pytest.raises(ProviderError, match="failed"):
            async for _ in client.stream_chat(ref_for(f"http://127.0.0.1:{free_port()}/v1"), []):
                pass


def test_resolve_primary() -> None:
    cfg = {"models": {"providers": {"p": {"baseUrl": "http://127.0.0.1:1/v1/", "models": [
        {"id": "m", "contextWindow": 9, "maxTokens": 3}]}}}, "agents": {"defaults": {"model": "p/m"}}}
    ref = resolve_primary(cfg)
    assert (ref.provider, ref.model, ref.base_url, ref.context_window, ref.max_tokens) == (
        "p", "m", "http://127.0.0.1:1/v1", 9, 3)
    with pytest.raises(ProviderError, match="openai"):
        resolve_primary({})  # default primary openai/gpt-6-astra is not configured offline
