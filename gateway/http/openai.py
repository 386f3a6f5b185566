"""OpenAI-compatible endpoints: ``/v1/models``, ``/v1/chat/completions``, ``/v1/responses`` (plain and SSE).

Owns the handlers and their request validation (zod-style first-issue texts ``<path>: <message>`` as the legacy's
``parseGatewayJsonRequest`` words them). Answers are built from a real agent turn (``gateway.agent.runner``) against
the configured provider; stream chunks follow the turn's ``assistant`` events, so chunk boundaries are the
provider's (the differ compares concatenated ``data:`` payloads, reference §8). Shapes follow a recording of the
pinned legacy (``tests/gateway/http/data/legacy_2026.9.6_capture.json``). Known gaps: multi-message prompts are
reduced to the last user message plus system text, client tools/tool_choice/images/files and
``previous_response_id`` are accepted but not used. May import aiohttp, ``gateway.*`` and the standard library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.http import headers as hh
from gateway.http.auth import authorized_json_post, require_bearer
from gateway.http.bodies import BodyResult
from wire.normalize import json_type

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 20 * 1024 * 1024
_AGENT_MODEL = re.compile(r"^(?:openclaw[:/]|agent:)([a-z0-9][a-z0-9_-]{0,63})$", re.I)
INVALID_MODEL = "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`."

# -- zod-like validation -------------------------------------------------------------------------------------------




def _check(value: Any, kind: str) -> str | None:
    if kind in ("any", "string|array"):  # string|array is checked by the caller (zod union text)
        return None
    if kind == "string|string[]":
        ok = isinstance(value, str) or (isinstance(value, list) and all(isinstance(x, str) for x in value))
        return None if ok else "Invalid input"
    if kind in ("int+", "number") or kind.startswith("range"):
        if json_type(value) != "number":
            return f"Invalid input: expected number, received {json_type(value)}"
        if kind == "int+":
            if float(value) != int(value):
                return "Invalid input: expected int, received number"
            if value <= 0:
                return "Too small: expected number to be >0"
        if kind.startswith("range"):
            lo, hi = (float(x) for x in kind[6:-1].split(","))
            if value < lo:
                return f"Too small: expected number to be >={lo:g}"
            if value > hi:
                return f"Too big: expected number to be <={hi:g}"
        return None
    if json_type(value) != kind:
        return f"Invalid input: expected {kind}, received {json_type(value)}"
    return None


def validate(body: Any, fields: list[tuple[str, str, str]], strict: bool = False) -> str | None:
    """First issue as ``<path>: <message>``; fields are (name, kind, "required"|"optional"|"nullish")."""
    if not isinstance(body, dict):
        return f": Invalid input: expected object, received {json_type(body)}"
    for name, kind, presence in fields:
        if name not in body:
            if presence == "required":
                return f"{name}: Invalid input" if kind.startswith("string|") else (
                    f"{name}: Invalid input: expected {kind}, received undefined")
            continue
        value = body[name]
        if value is None and presence == "nullish":
            continue
        error = _check(value, kind)
        if error:
            return f"{name}: {error}"
    if strict:
        extra = [k for k in body if k not in {f[0] for f in fields}]
        if extra:
            keys = ", ".join(f'"{k}"' for k in extra)
            return f": Unrecognized key{'s' if len(extra) > 1 else ''}: {keys}"
    return None


CHAT_FIELDS = [
    ("model", "string", "optional"), ("stream", "boolean", "nullish"), ("stream_options", "object", "nullish"),
    ("tools", "array", "optional"), ("tool_choice", "any", "optional"), ("messages", "array", "optional"),
    ("user", "string", "optional"), ("max_tokens", "int+", "nullish"), ("max_completion_tokens", "int+", "nullish"),
    ("temperature", "number", "nullish"), ("top_p", "number", "nullish"), ("response_format", "any", "optional"),
    ("frequency_penalty", "number", "nullish"), ("presence_penalty", "number", "nullish"),
    ("seed", "number", "nullish"), ("stop", "string|string[]", "nullish"),
]
RESPONSES_FIELDS = [
    ("model", "string", "required"), ("input", "string|array", "required"), ("instructions", "string", "optional"),
    ("tools", "array", "optional"), ("tool_choice", "any", "optional"), ("text", "object", "optional"),
    ("stream", "boolean", "optional"), ("max_output_tokens", "int+", "optional"),
    ("max_tool_calls", "int+", "optional"), ("user", "string", "optional"),
    ("temperature", "range(0,2)", "optional"), ("top_p", "range(0,1)", "optional"),
    ("metadata", "object", "optional"), ("store", "boolean", "optional"),
    ("previous_response_id", "string", "optional"), ("reasoning", "object", "optional"),
    ("truncation", "any", "optional"),
]


def _check_responses_input(body: dict[str, Any]) -> str | None:
    value = body.get("input")
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(i, dict) for i in value)):
        return None
    return "input: Invalid input"


# -- shared --------------------------------------------------------------------------------------------------------


def _agent_for_model(request: web.Request, model: str | None) -> tuple[str | None, str | None]:
    """(agentId, error message) as the legacy's ``resolveAgentIdForRequest``."""
    from gateway.app import TOOLS_KEY

    registry = request.app.get(TOOLS_KEY)
    known = registry.agent_ids() if registry is not None and hasattr(registry, "agent_ids") else ["main"]
    raw = (model or "").strip()
    header = (request.headers.get("x-openclaw-agent-id") or request.headers.get("x-openclaw-agent") or "").strip()
    agent = None
    if raw and raw.lower() not in ("openclaw", "openclaw/default"):
        m = _AGENT_MODEL.match(raw)
        if not m:
            return None, INVALID_MODEL
        agent = m.group(1).lower()
    if header:
        agent = header.lower()
    agent = agent or "main"
    if agent not in known:
        return None, f"Unknown agent '{agent}'."
    return agent, None


def _session_key(request: web.Request, agent: str, user: Any, prefix: str) -> tuple[str | None, str | None]:
    explicit = (request.headers.get("x-openclaw-session-key") or "").strip()
    if explicit:
        low = explicit.lower()
        rest = low.split(":", 2)[2] if low.startswith("agent:") and low.count(":") >= 2 else low
        if rest.startswith(("subagent:", "cron:", "acp:")):
            return None, "`x-openclaw-session-key` cannot use reserved internal session namespaces."
        return explicit, None
    u = user.strip() if isinstance(user, str) else ""
    return f"agent:{agent}:{prefix}-user:{u}" if u else f"agent:{agent}:{prefix}:{uuid.uuid4()}", None


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text"))
    return ""


def _emitter(request: web.Request, on_agent: Any = None) -> Any:
    from gateway.app import BROADCAST_KEY

    broadcast = request.app.get(BROADCAST_KEY)

    async def emit(event: str, payload: dict[str, Any]) -> None:
        if broadcast is not None:
            broadcast(event, payload, drop_if_slow=event == "agent")
        if on_agent is not None and event == "agent" and payload.get("stream") == "assistant":
            await on_agent(payload["data"].get("delta") or "")
    return emit


def _sse_response() -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.headers["Content-Type"] = hh.SSE_TYPE
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Connection"] = "keep-alive"
    return resp


class _Sink:
    """Writes SSE text; once the client has gone, later writes are dropped (the turn still completes and is
    persisted; the legacy aborts it instead - known gap)."""

    def __init__(self, resp: web.StreamResponse) -> None:
        self.resp = resp
        self.gone = False

    async def send(self, text: str) -> None:
        if self.gone:
            return
        try:
            await self.resp.write(text.encode())
        except (ConnectionError, RuntimeError) as exc:
            logger.info("SSE client went away: %s", exc)
            self.gone = True

    async def close(self) -> None:
        if not self.gone:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.resp.write_eof()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# -- /v1/models ----------------------------------------------------------------------------------------------------


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []}


async def handle_models(request: web.Request) -> web.StreamResponse:
    from gateway.app import TOOLS_KEY

    if request.method != "GET":
        return hh.method_not_allowed("GET")
    denied = await require_bearer(request)
    if denied is not None:
        return denied
    registry = request.app.get(TOOLS_KEY)
    agents = registry.agent_ids() if registry is not None and hasattr(registry, "agent_ids") else ["main"]
    ids = list(dict.fromkeys(["openclaw", "openclaw/default"] + [f"openclaw/{a}" for a in agents]))
    if request.path == "/v1/models":
        return hh.json_response(200, {"object": "list", "data": [_model(i) for i in ids]})
    encoded = request.raw_path.split("?", 1)[0][len("/v1/models/"):]
    if not encoded:
        return hh.invalid_request("Missing model id.")
    from urllib.parse import unquote

    decoded = unquote(encoded, errors="strict") if "%" in encoded else encoded
    low = decoded.strip().lower()
    if not (low in ("openclaw", "openclaw/default") or _AGENT_MODEL.match(decoded.strip())):
        return hh.invalid_request("Invalid model id.")
    if decoded not in ids:
        return hh.json_response(404, {"error": {"message": f"Model '{decoded}' not found.",
                                                "type": "invalid_request_error"}})
    return hh.json_response(200, _model(decoded))


# -- /v1/chat/completions ------------------------------------------------------------------------------------------


def _chat_prompt(messages: Any) -> tuple[str, str]:
    """(last user message text, joined system/developer text)."""
    user, system = "", []
    for m in messages if isinstance(messages, list) else ():
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        if role in ("system", "developer"):
            t = _text(m.get("content")).strip()
            if t:
                system.append(t)
        elif role == "user":
            user = _text(m.get("content")).strip()
    return user, "\n\n".join(system)


async def handle_chat_completions(request: web.Request) -> web.StreamResponse:
    from gateway.agent.runner import run_turn

    got = await authorized_json_post(request, MAX_BODY_BYTES)
    if not isinstance(got, BodyResult):
        return got
    payload = got.value
    error = validate(payload, CHAT_FIELDS)
    if error:
        return hh.invalid_request(error)
    so = payload.get("stream_options")
    if isinstance(so, dict) and "include_usage" in so and not isinstance(so["include_usage"], bool):
        return hh.invalid_request(f"stream_options.include_usage: Invalid input: expected boolean, received "
                                  f"{json_type(so['include_usage'])}")
    stream = payload.get("stream") is True
    include_usage = stream and isinstance(so, dict) and so.get("include_usage") is True
    model = payload["model"] if isinstance(payload.get("model"), str) else "openclaw"
    rf = payload.get("response_format")
    if rf is not None and (not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema")):
        msg = "response_format must be an object" if not isinstance(rf, dict) else (
            "response_format.type must be text, json_object, or json_schema")
        return hh.invalid_request(f"Invalid response_format: {msg}")
    agent, error = _agent_for_model(request, model)
    if error or agent is None:
        return hh.invalid_request(error or INVALID_MODEL)
    session_key, error = _session_key(request, agent, payload.get("user"), "openai")
    if error or session_key is None:
        return hh.invalid_request(error or "invalid session key")
    message, system = _chat_prompt(payload.get("messages"))
    if not message:
        return hh.invalid_request("Missing user message in `messages`.")
    run_id = f"chatcmpl_{uuid.uuid4()}"
    created = int(time.time())
    base = {"id": run_id, "object": "chat.completion.chunk", "created": created, "model": model}
    if not stream:
        result = await run_turn(request.app, session_key, message, run_id, _emitter(request),
                                extra_system_prompt=system or None, chat_run=False)
        if not result.ok:
            return hh.json_response(500, {"error": {"message": "internal error", "type": "api_error"}})
        return hh.json_response(200, {
            "id": run_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text or
                                                 "No response from OpenClaw."},
                         "finish_reason": "length" if result.stop_reason == "length" else "stop"}],
            "usage": _chat_usage(result.usage),
        })
    resp = _sse_response()
    await resp.prepare(request)

    sink = _Sink(resp)

    async def write(obj: Any) -> None:
        await sink.send(f"data: {_dumps(obj)}\n\n")

    await write({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
    streamed: list[str] = []

    async def on_delta(delta: str) -> None:
        if delta:
            streamed.append(delta)
            await write({**base, "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]})

    result = await run_turn(request.app, session_key, message, run_id, _emitter(request, on_delta),
                            extra_system_prompt=system or None, chat_run=False)
    if not result.ok:
        await write({"error": {"message": "internal error", "type": "api_error"}})
    else:
        if not streamed:
            await on_delta("No response from OpenClaw.")
        await write({**base, "choices": [{"index": 0, "delta": {},
                                          "finish_reason": "length" if result.stop_reason == "length" else "stop"}]})
        if include_usage:
            await write({**base, "choices": [], "usage": _chat_usage(result.usage)})
    await sink.send("data: [DONE]\n\n")
    await sink.close()
    return resp


def _chat_usage(usage: Any) -> dict[str, int]:
    i = usage.input if usage else 0
    o = usage.output if usage else 0
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": max(i + o, usage.total if usage else 0)}


# -- /v1/responses -------------------------------------------------------------------------------------------------


def _responses_usage(usage: Any) -> dict[str, Any]:
    i = usage.input if usage else 0
    o = usage.output if usage else 0
    return {"input_tokens": i, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": o, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": max(i + o, usage.total if usage else 0)}


def _responses_prompt(value: Any) -> tuple[str, str]:
    if isinstance(value, str):
        return value.strip(), ""
    user, system = "", []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, Mapping) or item.get("type", "message") != "message":
            continue
        t = _text(item.get("content")).strip()
        if item.get("role") == "user":
            user = t
        elif item.get("role") in ("system", "developer") and t:
            system.append(t)
    return user, "\n\n".join(system)


def _resource(rid: str, created: int, status: str, model: str, output: list[Any], usage: Any,
              error: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "object": "response", "created_at": created, "status": status, "model": model,
                           "output": output, "usage": _responses_usage(usage)}
    if error is not None:
        out["error"] = error
    return out


def _item(item_id: str, text: str, status: str, phase: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "id": item_id, "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}
    if phase:
        item["phase"] = phase
    item["status"] = status
    return item


async def handle_responses(request: web.Request) -> web.StreamResponse:
    from gateway.agent.runner import run_turn

    got = await authorized_json_post(request, MAX_BODY_BYTES)
    if not isinstance(got, BodyResult):
        return got
    payload = got.value
    error = validate(payload, RESPONSES_FIELDS, strict=True) or _check_responses_input(payload)
    if error:
        return hh.invalid_request(error)
    stream = bool(payload.get("stream"))
    model = payload["model"]
    agent, error = _agent_for_model(request, model)
    if error or agent is None:
        return hh.invalid_request(error or INVALID_MODEL)
    session_key, error = _session_key(request, agent, payload.get("user"), "openresponses")
    if error or session_key is None:
        return hh.invalid_request(error or "invalid session key")
    message, system = _responses_prompt(payload.get("input"))
    instructions = payload.get("instructions")
    system = "\n\n".join(p for p in (instructions, system) if p)
    if not message:
        return hh.invalid_request("Missing user message in `input`.")
    rid, item_id, created = f"resp_{uuid.uuid4()}", f"msg_{uuid.uuid4()}", int(time.time())
    if not stream:
        result = await run_turn(request.app, session_key, message, rid, _emitter(request),
                                extra_system_prompt=system or None, chat_run=False)
        if not result.ok:
            return hh.json_response(500, _resource(rid, created, "failed", model, [], None,
                                                   {"code": "api_error", "message": "internal error"}))
        status = "incomplete" if result.stop_reason == "length" else "completed"
        out = _resource(rid, created, status, model,
                        [_item(item_id, result.text or "No response from OpenClaw.", status, "final_answer")],
                        result.usage)
        if status == "incomplete":
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        return hh.json_response(200, out)
    resp = _sse_response()
    await resp.prepare(request)

    sink = _Sink(resp)

    async def event(obj: dict[str, Any]) -> None:
        await sink.send(f"event: {obj['type']}\ndata: {_dumps(obj)}\n\n")

    initial = _resource(rid, created, "in_progress", model, [], None)
    await event({"type": "response.created", "response": initial})
    await event({"type": "response.in_progress", "response": initial})
    await event({"type": "response.output_item.added", "output_index": 0,
                 "item": {**_item(item_id, "", "in_progress"), "content": []}})
    await event({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0,
                 "part": {"type": "output_text", "text": ""}})

    async def on_delta(delta: str) -> None:
        if delta:
            await event({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0,
                         "content_index": 0, "delta": delta})

    result = await run_turn(request.app, session_key, message, rid, _emitter(request, on_delta),
                            extra_system_prompt=system or None, chat_run=False)
    if result.ok:
        text = result.text or "No response from OpenClaw."
        if not result.text:
            await on_delta(text)
        status = "incomplete" if result.stop_reason == "length" else "completed"
        await event({"type": "response.output_text.done", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "text": text})
        await event({"type": "response.content_part.done", "item_id": item_id, "output_index": 0,
                     "content_index": 0, "part": {"type": "output_text", "text": text}})
        done_item = _item(item_id, text, status, "final_answer")
        await event({"type": "response.output_item.done", "output_index": 0, "item": done_item})
        await event({"type": f"response.{status}",
                     "response": _resource(rid, created, status, model, [done_item], result.usage)})
    else:
        await event({"type": "response.failed", "response": _resource(
            rid, created, "failed", model, [], None, {"code": "api_error", "message": "internal error"})})
    await sink.send("data: [DONE]\n\n")
    await sink.close()
    return resp
