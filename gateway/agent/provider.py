"""OpenAI-compatible model provider client (aiohttp) for the configured ``models.providers``.

Owns ``ProviderRegistry`` (resolves ``agents.defaults.model.primary`` = ``<provider>/<model>`` against
``models.providers``), ``ProviderClient`` (``POST {baseUrl}/chat/completions`` with ``stream: true`` parsed as SSE
deltas, or plain JSON) and the provider preflight (``GET {baseUrl}/models``) with the legacy's 5-minute cache of the
outcome, failures included (reference §1.9: once a preflight failed, ``/hooks/agent`` keeps answering 502 until the
entry expires). The clock is injected. May import aiohttp, ``wire.errors``, ``gateway.diagnostics`` and the standard library.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.diagnostics import DiagnosticRecorder
from wire.errors import ParityError

logger = logging.getLogger(__name__)

PREFLIGHT_CACHE_TTL_S = 300.0
DEFAULT_PRIMARY = "openai/gpt-6-astra"
_CONNECT_TIMEOUT_S = 10.0
_TOTAL_TIMEOUT_S = 120.0


class ProviderError(ParityError, ConnectionError):
    """The model provider could not be reached or answered with an error."""


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One resolved model: provider id, model id and the provider's connection settings."""

    provider: str
    model: str
    base_url: str
    api_key: str | None
    api: str
    context_window: int | None = None
    max_tokens: int | None = None
    cost: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input: int = 0
    output: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """A content delta (``delta``) or the end of the stream (``done`` with finish reason and usage)."""

    delta: str = ""
    done: bool = False
    finish_reason: str | None = None
    usage: Usage | None = None
    response_id: str | None = None
    response_model: str | None = None


def resolve_primary(config: Mapping[str, Any]) -> ModelRef:
    """``agents.defaults.model.primary`` (string or ``{primary}``) -> ``ModelRef``; raises ``ProviderError``."""
    model_cfg = ((config.get("agents") or {}).get("defaults") or {}).get("model")
    primary = model_cfg.get("primary") if isinstance(model_cfg, Mapping) else model_cfg
    primary = primary if isinstance(primary, str) and primary else DEFAULT_PRIMARY
    provider_id, _, model_id = primary.partition("/")
    providers = (config.get("models") or {}).get("providers") or {}
    prov = providers.get(provider_id)
    if not isinstance(prov, Mapping) or not isinstance(prov.get("baseUrl"), str):
        raise ProviderError(f"model provider {provider_id!r} (from {primary!r}) is not configured under models.providers")
    entry: Mapping[str, Any] = {}
    for m in prov.get("models") or ():
        if isinstance(m, Mapping) and m.get("id") == model_id:
            entry = m
    return ModelRef(
        provider=provider_id, model=model_id, base_url=str(prov["baseUrl"]).rstrip("/"),
        api_key=prov.get("apiKey") if isinstance(prov.get("apiKey"), str) else None,
        api=str(prov.get("api") or "openai-completions"),
        context_window=entry.get("contextWindow") if isinstance(entry.get("contextWindow"), int) else None,
        max_tokens=entry.get("maxTokens") if isinstance(entry.get("maxTokens"), int) else None,
        cost=entry.get("cost") if isinstance(entry.get("cost"), Mapping) else None,
    )


@dataclass
class PreflightCache:
    """Outcome of ``GET <baseUrl>/models`` per base URL, kept ``ttl`` seconds (success and failure alike)."""

    clock: Callable[[], float] = time.monotonic
    ttl: float = PREFLIGHT_CACHE_TTL_S
    _entries: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    def get(self, key: str) -> tuple[bool, str | None] | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        at, error = hit
        if self.clock() - at >= self.ttl:
            del self._entries[key]
            return None
        return (error is None, error)

    def put(self, key: str, error: str | None) -> None:
        self._entries[key] = (self.clock(), error)


class ProviderClient:
    """Talks to one OpenAI-compatible provider over a shared ``aiohttp.ClientSession``."""

    def __init__(self, session: aiohttp.ClientSession, preflight_cache: PreflightCache | None = None,
                 recorder: DiagnosticRecorder | None = None) -> None:
        self.session = session
        self.preflight_cache = preflight_cache or PreflightCache()
        self.recorder = recorder

    def _headers(self, ref: ModelRef) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
        if ref.api_key:
            headers["Authorization"] = f"Bearer {ref.api_key}"
        return headers

    async def preflight(self, ref: ModelRef) -> None:
        """Raise ``ProviderError`` unless ``GET <baseUrl>/models`` answered 2xx (outcome cached 5 min)."""
        cached = self.preflight_cache.get(ref.base_url)
        if cached is not None:
            ok, cached_error = cached
            if ok:
                return
            raise ProviderError(cached_error or "provider preflight failed (cached)")
        error: str | None = None
        try:
            timeout = aiohttp.ClientTimeout(total=_CONNECT_TIMEOUT_S)
            async with self.session.get(f"{ref.base_url}/models", headers=self._headers(ref), timeout=timeout) as r:
                await r.read()
                if r.status >= 300:
                    error = f"provider preflight GET {ref.base_url}/models answered {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"provider preflight GET {ref.base_url}/models failed: {exc}"
        self.preflight_cache.put(ref.base_url, error)
        if error is not None:
            logger.warning("%s", error)
            raise ProviderError(error)

    async def stream_chat(self, ref: ModelRef, messages: list[dict[str, Any]]) -> AsyncIterator[StreamEvent]:
        """Yield content deltas, then one ``done`` event. Raises ``ProviderError`` on transport/HTTP errors.
        With a recorder, the call is recorded as ``model.call.started`` then ``model.call.completed`` (or
        ``model.call.error``) with its duration, request and response byte counts and time to first byte."""
        meter = _Meter(started=time.monotonic())
        rec = self.recorder
        if rec is not None:
            rec.record("model.call.started", provider=ref.provider, model=ref.model)
        try:
            async for event in self._stream_chat(ref, messages, meter):
                if event.done and rec is not None:  # consumers may stop at ``done``: record before handing it out
                    rec.record("model.call.completed", **meter.fields(ref))
                yield event
        except ProviderError:
            if rec is not None:
                rec.record("model.call.error", **meter.fields(ref), failureKind="provider_error")
            raise

    async def _stream_chat(self, ref: ModelRef, messages: list[dict[str, Any]], meter: _Meter,
                           ) -> AsyncIterator[StreamEvent]:
        body: dict[str, Any] = {
            "model": ref.model, "messages": messages, "stream": True, "stream_options": {"include_usage": True},
        }
        if ref.max_tokens:
            body["max_completion_tokens"] = ref.max_tokens
        timeout = aiohttp.ClientTimeout(total=_TOTAL_TIMEOUT_S, sock_connect=_CONNECT_TIMEOUT_S)
        url = f"{ref.base_url}/chat/completions"
        finish: str | None = None
        usage: Usage | None = None
        resp_id: str | None = None
        resp_model: str | None = None
        try:
            payload = json.dumps(body).encode("utf-8")
            meter.request_bytes = len(payload)
            async with self.session.post(url, data=payload, headers=self._headers(ref), timeout=timeout) as r:
                if r.status >= 300:
                    text = (await r.text())[:300]
                    raise ProviderError(f"provider POST {url} answered {r.status}: {text}")
                ctype = r.headers.get("Content-Type", "")
                if "text/event-stream" not in ctype:
                    raw = await r.read()
                    meter.got(len(raw))
                    try:
                        data = json.loads(raw)
                    except ValueError as exc:
                        raise ProviderError(f"provider POST {url} answered non-JSON: {exc}") from exc
                    choice = (data.get("choices") or [{}])[0]
                    content = ((choice.get("message") or {}).get("content")) or ""
                    if content:
                        yield StreamEvent(delta=str(content))
                    yield StreamEvent(done=True, finish_reason=choice.get("finish_reason") or "stop",
                                      usage=_usage(data.get("usage")), response_id=data.get("id"),
                                      response_model=data.get("model"))
                    return
                async for line in _sse_lines(r.content, meter):
                    if line == "[DONE]":
                        break
                    try:
                        chunk = json.loads(line)
                    except json.JSONDecodeError:
                        logger.warning("provider sent a non-JSON SSE data line; ignored")
                        continue
                    resp_id = resp_id or chunk.get("id")
                    resp_model = resp_model or chunk.get("model")
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            yield StreamEvent(delta=str(delta))
                        if choice.get("finish_reason"):
                            finish = str(choice["finish_reason"])
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProviderError(f"provider POST {url} failed: {exc}") from exc
        yield StreamEvent(done=True, finish_reason=finish or "stop", usage=usage, response_id=resp_id,
                          response_model=resp_model)


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    i = int(raw.get("prompt_tokens") or 0)
    o = int(raw.get("completion_tokens") or 0)
    return Usage(input=i, output=o, total=int(raw.get("total_tokens") or i + o))


@dataclass
class _Meter:
    """Byte counts and first-byte time of one model call (for the diagnostic ``model.call.*`` records)."""

    started: float
    request_bytes: int = 0
    response_bytes: int = 0
    first_byte: float | None = None

    def got(self, n: int) -> None:
        if self.first_byte is None:
            self.first_byte = time.monotonic()
        self.response_bytes += n

    def fields(self, ref: ModelRef) -> dict[str, Any]:
        ttfb = None if self.first_byte is None else round((self.first_byte - self.started) * 1000)
        return {"provider": ref.provider, "model": ref.model, "durationMs": round((time.monotonic() - self.started) * 1000),
                "requestBytes": self.request_bytes, "responseBytes": self.response_bytes, "timeToFirstByteMs": ttfb}


async def _sse_lines(content: aiohttp.StreamReader, meter: _Meter | None = None) -> AsyncIterator[str]:
    """The payloads of ``data:`` lines, in order (multi-line data joined with newlines)."""
    buf: list[str] = []
    async for raw in content:
        if meter is not None:
            meter.got(len(raw))
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if buf:
                yield "\n".join(buf)
                buf = []
            continue
        if line.startswith("data:"):
            buf.append(line[5:].lstrip(" "))
    if buf:
        yield "\n".join(buf)
