"""Webhooks under ``hooks.path``: ``/wake``, ``/agent`` and mappings (reference §3.6/§3.7/§4.2/§4.3).

Owns ``HooksSettings`` (resolved ``hooks.*``), ``HookAuthLimiter`` (20 failures in 60 s -> 429 for 60 s, loopback
NOT exempt, a success resets the client), ``WakeQueue`` (per-session system events; an identical consecutive text
is ``coalesced``), ``HookRuntime`` (the app-scoped state, under ``HOOKS_KEY``) and ``handle_hooks``.

Check order as the legacy's ``hooks-request-handler.ts``: ``?token`` -> 400 text, method -> 405 ``Allow: POST``,
hook token (``Authorization: Bearer`` or ``X-OpenClaw-Token``; the gateway token is just a wrong token) -> 401
text / 429 text with ``Retry-After``, empty sub-path -> 404, body (256 KiB -> 413 JSON, bad JSON -> 400 JSON),
then wake / agent / mappings / 404 text. A wake with ``mode: "now"`` also asks ``gateway.agent.heartbeat`` for
an immediate heartbeat turn (as the legacy does). ``/hooks/agent`` checks the provider first (preflight cached
5 min -> 502), then runs a real turn in the background (idempotency keys replay the admitted run for 5 min after
it ends); ``waitForCompletion`` waits for it. Known gaps: the 15 s admission timeout (503), JS mapping transforms,
channel delivery (pyclaw has no channels, so only ``last`` is accepted). May import aiohttp, ``gateway.*`` and the
standard library.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.agent.heartbeat import HeartbeatWaker
from gateway.http import headers as hh
from gateway.http.bodies import read_json_body
from gateway.http.hook_mappings import HookAction, HookMapping, MappingError, TemplateContext, apply_mappings
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_PATH = "/hooks"
DEFAULT_MAX_BODY_BYTES = 262_144
AUTH_FAILURE_LIMIT = 20
AUTH_FAILURE_WINDOW_S = 60.0
WAKE_QUEUE_MAX = 20
MAX_IDEMPOTENCY_KEY = 256
REPLAY_TTL_S = 300.0
REPLAY_MAX = 1000
QUERY_TOKEN_TEXT = ("Hook token must be provided via Authorization: Bearer <token> or X-OpenClaw-Token header "
                    "(query parameters are not allowed).")
PREPARATION_ERROR = "hook agent run failed before entering the agent runner"
SESSION_KEY_DISABLED = ("sessionKey is disabled for externally supplied hook payload values; set "
                        "hooks.allowRequestSessionKey=true to enable")


_AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _opt(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class HooksSettings:
    base_path: str
    token: str
    mappings: tuple[HookMapping, ...]
    known_agents: frozenset[str]
    default_agent: str = "main"
    allowed_agents: frozenset[str] | None = None
    default_session_key: str | None = None
    allow_request_session_key: bool = False
    allowed_prefixes: tuple[str, ...] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> HooksSettings | None:
        """``None`` when hooks are disabled; ``ConfigError`` with the legacy's text when misconfigured."""
        hooks: Mapping[str, Any] = cfg["hooks"] if isinstance(cfg.get("hooks"), Mapping) else {}
        if hooks.get("enabled") is not True:
            return None
        token = _opt(hooks.get("token"))
        if not token:
            raise ConfigError("hooks.enabled requires hooks.token")
        raw = _opt(hooks.get("path")) or DEFAULT_PATH
        path = raw if raw.startswith("/") else "/" + raw
        path = path.rstrip("/") if len(path) > 1 else path
        if path in ("/", ""):
            raise ConfigError("hooks.path may not be '/'")
        mappings = tuple(HookMapping.from_config(m, i) for i, m in enumerate(hooks.get("mappings") or ())
                         if isinstance(m, Mapping))
        agents = {"main"} | {str(a["id"]).lower() for a in ((cfg.get("agents") or {}).get("list") or ())
                             if isinstance(a, Mapping) and isinstance(a.get("id"), str)}
        allowed = hooks.get("allowedAgentIds")
        prefixes = [p.strip().lower() for p in (hooks.get("allowedSessionKeyPrefixes") or ())
                    if isinstance(p, str) and p.strip()]
        return cls(
            base_path=path, token=token, mappings=mappings, known_agents=frozenset(agents),
            allowed_agents=frozenset(a.strip().lower() for a in allowed if isinstance(a, str))
            if isinstance(allowed, list) else None,
            default_session_key=_opt(hooks.get("defaultSessionKey")),
            allow_request_session_key=hooks.get("allowRequestSessionKey") is True,
            allowed_prefixes=tuple(dict.fromkeys(prefixes)) or None,
        )


@dataclass
class HookAuthLimiter:
    clock: Callable[[], float] = time.monotonic
    limit: int = AUTH_FAILURE_LIMIT
    window: float = AUTH_FAILURE_WINDOW_S
    lockout: float = AUTH_FAILURE_WINDOW_S
    _fails: dict[str, list[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)

    def retry_after_s(self, client: str) -> int | None:
        until = self._locked.get(client)
        if until is None:
            return None
        remaining = until - self.clock()
        if remaining <= 0:
            del self._locked[client]
            self._fails.pop(client, None)
            return None
        return max(1, -int(-remaining // 1))

    def record_failure(self, client: str) -> None:
        now = self.clock()
        fails = [t for t in self._fails.get(client, []) if now - t < self.window] + [now]
        self._fails[client] = fails
        if len(fails) >= self.limit:
            self._locked[client] = now + self.lockout

    def reset(self, client: str) -> None:
        self._fails.pop(client, None)
        self._locked.pop(client, None)


@dataclass
class WakeQueue:
    queues: dict[str, list[str]] = field(default_factory=dict)

    def enqueue(self, session_key: str, text: str) -> bool:
        cleaned = text.strip()
        q = self.queues.setdefault(session_key, [])
        if not cleaned or (q and q[-1] == cleaned):
            return False
        q.append(cleaned)
        del q[:-WAKE_QUEUE_MAX]
        return True

    def drain(self, session_key: str) -> list[str]:
        return self.queues.pop(session_key, [])


@dataclass
class HookRuntime:
    limiter: HookAuthLimiter = field(default_factory=HookAuthLimiter)
    wakes: WakeQueue = field(default_factory=WakeQueue)
    tasks: set[asyncio.Future[Any]] = field(default_factory=set)
    #: replay key -> (monotonic end time or None while running, admission)
    replays: dict[str, tuple[float | None, Admission]] = field(default_factory=dict)


HOOKS_KEY = web.AppKey("gateway_http_hooks", HookRuntime)
WAKER_KEY = web.AppKey("gateway_http_heartbeat_waker", HeartbeatWaker)
SETTINGS_KEY = web.AppKey("gateway_http_hooks_settings", HooksSettings)


def _token(request: web.Request) -> str | None:
    auth = (request.headers.get("Authorization") or "").strip()
    if auth.lower().startswith("bearer "):
        tok = auth[7:].strip()
        if tok:
            return tok
    return _opt(request.headers.get("X-OpenClaw-Token"))


def _fail(status: int, error: str, **extra: Any) -> web.Response:
    return hh.json_response(status, {"ok": False, "error": error, **extra})


def _main_key(agent: str, session_key: str | None) -> str:
    from gateway.sessions import canonical_key

    return canonical_key(session_key or "main", agent)


def _target_agent(settings: HooksSettings, raw: Any) -> tuple[str | None, str | None]:
    """(effective agent, error) for a request-supplied ``agentId``."""
    if raw is None:
        agent = settings.default_agent
    elif not isinstance(raw, str) or not raw.strip():
        return None, "agentId must be a non-empty string"
    else:
        agent = raw.strip().lower()
        if agent not in settings.known_agents:
            # the legacy names the normalized (lower-case) id when the id is well-formed, else the raw text
            shown = agent if _AGENT_ID.match(agent) else raw.strip()
            return None, f'unknown agentId "{shown}"'
    if settings.allowed_agents is not None and agent not in settings.allowed_agents:
        return None, "agentId is not allowed by hooks.allowedAgentIds"
    return agent, None


def _session_key(settings: HooksSettings, requested: str | None, source: str) -> tuple[str | None, str | None]:
    if requested:
        if source in ("request", "mapping-templated") and not settings.allow_request_session_key:
            return None, SESSION_KEY_DISABLED
        if settings.allowed_prefixes and not requested.lower().startswith(settings.allowed_prefixes):
            return None, f"sessionKey must start with one of: {', '.join(settings.allowed_prefixes)}"
        return requested, None
    return settings.default_session_key, None


async def handle_hooks(request: web.Request, settings: HooksSettings) -> web.StreamResponse:
    from gateway.auth import peer_ip, secret_equal

    runtime = request.app[HOOKS_KEY]
    if "token" in request.query:
        return hh.text(400, QUERY_TOKEN_TEXT)
    if request.method != "POST":
        return hh.method_not_allowed("POST")
    client = peer_ip(request)
    if not secret_equal(_token(request), settings.token):
        retry = runtime.limiter.retry_after_s(client)
        if retry is not None:
            logger.warning("hook auth throttled for %s; retry-after=%ss", client, retry)
            return hh.text(429, "Too Many Requests", {"Retry-After": str(retry)})
        runtime.limiter.record_failure(client)
        return hh.text(401, "Unauthorized")
    runtime.limiter.reset(client)
    sub = request.path[len(settings.base_path):].lstrip("/")
    if not sub:
        return hh.not_found()
    body = await read_json_body(request, DEFAULT_MAX_BODY_BYTES)
    if not body.ok:
        if body.too_large:
            return hh.rejection(413, {"ok": False, "error": body.error})
        return _fail(400, body.error)
    payload: dict[str, Any] = body.value if isinstance(body.value, dict) else {}
    if sub == "wake":
        return _wake(request, settings, payload)
    if sub == "agent":
        return await _agent(request, settings, payload)
    if settings.mappings:
        return await _mapped(request, settings, payload, sub)
    return hh.not_found()


def _wake(request: web.Request, settings: HooksSettings, payload: Mapping[str, Any]) -> web.Response:
    text = _opt(payload.get("text"))
    if not text:
        return _fail(400, "text required")
    mode = "next-heartbeat" if payload.get("mode") == "next-heartbeat" else "now"
    agent, error = _target_agent(settings, payload.get("agentId"))
    if error:
        return _fail(400, error)
    sk = _opt(payload.get("sessionKey"))
    if payload.get("sessionKey") is not None and not sk:
        return _fail(400, "sessionKey must be a non-empty string")
    if mode == "next-heartbeat" and sk:
        return _fail(400, "sessionKey requires mode=now")
    if sk:
        sk, error = _session_key(settings, sk, "request")
        if error:
            return _fail(400, error)
    target = _main_key(agent or "main", sk)
    queued = request.app[HOOKS_KEY].wakes.enqueue(target, text)
    if mode == "now":
        _wake_now(request.app, target)
    return hh.json_response(200, {"ok": True, "mode": mode, "eventOutcome": "queued" if queued else "coalesced"})


def _wake_now(app: web.Application, session_key: str) -> None:
    """``requestSessionEventWake(intent: immediate)``: a heartbeat turn on the session after 250 ms."""
    waker = app.get(WAKER_KEY)
    if waker is not None:
        waker.request(session_key)


def _validate_agent_payload(payload: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    message = _opt(payload.get("message"))
    if not message:
        return None, "message required"
    wait = payload.get("waitForCompletion")
    if payload.get("agentId") is not None and not _opt(payload.get("agentId")):
        return None, "agentId must be a non-empty string"
    mode = payload.get("sessionMode")
    if mode is not None and mode not in ("isolated", "persistent"):
        return None, "sessionMode must be isolated or persistent"
    error = _delivery_error(payload)
    if error:
        return None, error
    if payload.get("model") is not None and not _opt(payload.get("model")):
        return None, "model required"
    return {"message": message, "name": _opt(payload.get("name")) or "Hook", "wait": wait is True,
            "session_mode": mode or "isolated", "session_key": _opt(payload.get("sessionKey")),
            "deliver": payload.get("deliver") is not False}, None


def _delivery_error(payload: Mapping[str, Any]) -> str | None:
    """The legacy's ``normalizeHookAgentDelivery`` checks; pyclaw has no channel plugins, so only ``last`` exists."""
    if payload.get("deliver") is False:
        return None
    channel, to, account = payload.get("channel"), payload.get("to"), payload.get("accountId")
    if channel is not None and (not isinstance(channel, str) or channel.strip().lower() != "last"):
        return "channel must be last"
    if channel is None and to is None and account is None:
        return None
    if to is not None and not _opt(to):
        return "to must be a non-empty string for hook delivery"
    if account is not None and not _opt(account):
        return "accountId must be a non-empty string for hook delivery"
    if account is not None and (channel is None or not _opt(to)):
        return "accountId requires channel and to for hook delivery"
    if channel is None or not _opt(to):
        return "channel and to must be set together for hook delivery"
    return "channel must name a concrete channel for hook delivery"


async def _agent(request: web.Request, settings: HooksSettings, payload: Mapping[str, Any]) -> web.Response:
    wait = payload.get("waitForCompletion")
    if wait is not None and not isinstance(wait, bool):
        return _fail(400, "waitForCompletion must be boolean")
    value, error = _validate_agent_payload(payload)
    if error or value is None:
        return _fail(400, error or "message required")
    agent, error = _target_agent(settings, payload.get("agentId"))
    if error:
        return _fail(400, error)
    if value["session_mode"] == "persistent" and not value["session_key"]:
        return _fail(400, "sessionKey is required when sessionMode is persistent")
    sk, error = _session_key(settings, value["session_key"], "request")
    if error:
        return _fail(400, error)
    if value["session_mode"] == "persistent" and not settings.allowed_prefixes:
        return _fail(400, "hooks.allowedSessionKeyPrefixes is required when direct hook sessionMode is persistent")
    idem = idempotency_key(request, payload)
    replay_key = None
    if idem is not None:
        scope = json.dumps([agent, value["session_key"] or settings.default_session_key, value["message"],
                            value["name"], value["session_mode"], value["deliver"], payload.get("model"),
                            payload.get("thinking"), payload.get("timeoutSeconds"), payload.get("wakeMode")])
        replay_key = "|".join(hashlib.sha256(x.encode()).hexdigest() for x in (settings.token, "agent", scope, idem))
    admission = await dispatch_agent(request.app, agent or "main", value["message"], value["name"], sk,
                                     value["session_mode"], value["deliver"], replay_key)
    return await admission.respond(value["wait"])


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of admitting one hook agent run (kept for idempotent replays)."""

    run_id: str
    ok: bool
    task: asyncio.Future[dict[str, Any]] | None = None

    async def respond(self, wait: bool) -> web.Response:
        if not self.ok or self.task is None:
            return _fail(502, PREPARATION_ERROR, runId=self.run_id)
        if wait:
            completion = await asyncio.shield(self.task)
            return hh.json_response(200, {"ok": True, "runId": self.run_id, "completion": completion})
        return hh.json_response(200, {"ok": True, "runId": self.run_id})


def idempotency_key(request: web.Request, payload: Mapping[str, Any]) -> str | None:
    """``Idempotency-Key``, then ``X-OpenClaw-Idempotency-Key``, then ``payload.idempotencyKey`` (<= 256 chars)."""
    for raw in (request.headers.get("Idempotency-Key"), request.headers.get("X-OpenClaw-Idempotency-Key"),
                payload.get("idempotencyKey")):
        if isinstance(raw, str) and raw.strip() and len(raw.strip()) <= MAX_IDEMPOTENCY_KEY:
            return raw.strip()
    return None


async def dispatch_agent(app: web.Application, agent: str, message: str, name: str, session_key: str | None,
                         session_mode: str, deliver: bool, replay_key: str | None = None) -> Admission:
    """Admit a hook agent run (provider preflight first; a failure is a 502), then run the turn in the background.

    With ``replay_key`` a repeat within 5 minutes of the run's end returns the first admission (same ``runId``),
    as the legacy's hook replay cache does; failed admissions are not kept.
    """
    runtime = app[HOOKS_KEY]
    if replay_key is not None:
        cached = runtime.replays.get(replay_key)
        if cached is not None and (cached[0] is None or time.monotonic() - cached[0] < REPLAY_TTL_S):
            return cached[1]
    admission = await _admit(app, agent, message, name, session_key, session_mode, deliver)
    if replay_key is not None and admission.ok and admission.task is not None:
        runtime.replays[replay_key] = (None, admission)

        def settle(_: Any) -> None:
            if runtime.replays.get(replay_key, (None, None))[1] is admission:
                runtime.replays[replay_key] = (time.monotonic(), admission)

        admission.task.add_done_callback(settle)
        _prune_replays(runtime)
    return admission


def _prune_replays(runtime: HookRuntime) -> None:
    now = time.monotonic()
    for key, (ended, _) in list(runtime.replays.items()):
        if ended is not None and now - ended >= REPLAY_TTL_S:
            del runtime.replays[key]
    while len(runtime.replays) > REPLAY_MAX:
        del runtime.replays[next(iter(runtime.replays))]


async def _admit(app: web.Application, agent: str, message: str, name: str, session_key: str | None,
                 session_mode: str, deliver: bool) -> Admission:
    from gateway.agent.provider import ProviderError, resolve_primary
    from gateway.agent.runner import PROVIDER_KEY, run_turn
    from gateway.app import BROADCAST_KEY, CONFIG_KEY, SESSIONS_KEY

    run_id = str(uuid.uuid4())
    job_id = str(uuid.uuid4())
    try:
        ref = resolve_primary(app[CONFIG_KEY].data)
        await app[PROVIDER_KEY].preflight(ref)
    except (ProviderError, KeyError) as exc:
        logger.warning("hook agent run %s not admitted: %s", run_id, exc)
        return Admission(run_id, False)
    key = session_key if session_mode == "persistent" and session_key else f"cron:{job_id}"
    app[SESSIONS_KEY].ensure(_main_key(agent, key), channel="internal")
    broadcast = app.get(BROADCAST_KEY)

    def emit(event: str, event_payload: dict[str, Any]) -> None:
        if broadcast is not None:
            broadcast(event, event_payload, drop_if_slow=event == "agent")

    async def run() -> dict[str, Any]:
        isolated = key.startswith("cron:")  # isolated cron-style runs name their run session in events
        shown = f"{_main_key(agent, key)}:run:{{sessionId}}" if isolated else None
        result = await run_turn(app, _main_key(agent, key), message, run_id, emit, chat_run=False,
                                event_session_key=shown)
        if not result.ok or deliver:
            status = "ok" if result.ok else "error"
            summary = result.text if result.ok else (result.error or status)
            prefix = f"Hook {name}" if result.ok else f"Hook {name} ({status})"
            app[HOOKS_KEY].wakes.enqueue(_main_key(agent, settings_default(app)), f"{prefix}: {summary}".strip())
        if not result.ok:
            return {"status": "error", "replyDisposition": "empty"}
        return {"status": "ok", "replyDisposition": "visible" if result.text else "empty", "delivered": False,
                "deliveryAttempted": False}

    task = asyncio.ensure_future(run())
    runtime = app[HOOKS_KEY]
    runtime.tasks.add(task)
    task.add_done_callback(runtime.tasks.discard)
    return Admission(run_id, True, task)


def settings_default(app: web.Application) -> str | None:
    settings = app.get(SETTINGS_KEY)
    return settings.default_session_key if settings is not None else None


async def _mapped(request: web.Request, settings: HooksSettings, payload: dict[str, Any], sub: str) -> web.Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ctx = TemplateContext(payload, headers, dict(request.query), sub, now)
    try:
        mapped = apply_mappings(list(settings.mappings), ctx)
    except MappingError as exc:
        logger.warning("hook mapping failed: %s", exc)
        return _fail(500, "hook mapping failed")
    if mapped is None:
        return hh.not_found()
    if not mapped.ok:
        return _fail(400, mapped.error or "hook mapping failed")
    if not mapped.actions:
        return web.Response(status=204)
    wake_result: dict[str, Any] | None = None
    wake_mode: str | None = None
    agents: list[HookAction] = []
    for action in mapped.actions:
        agent, error = _mapping_agent(settings, action.agent_id)
        if error:
            return _fail(400, error, **(wake_result or {}))
        if action.kind == "wake":
            source = "mapping-static" if action.session_key_source == "static" else "mapping-templated"
            sk, error = _session_key(settings, action.session_key, source) if action.session_key else (None, None)
            if error:
                return _fail(400, error, **(wake_result or {}))
            queued = request.app[HOOKS_KEY].wakes.enqueue(_main_key(agent, sk), action.text)
            if action.mode == "now":
                _wake_now(request.app, _main_key(agent, sk))
            outcome = {"eventOutcome": "queued" if queued else "coalesced"}
            if wake_result is None or queued:
                wake_result = outcome
            wake_mode = action.mode
        else:
            agents.append(action)
    if not agents:
        return hh.json_response(200, {"ok": True, "mode": wake_mode or "now", **(wake_result or {})})
    prepared = []
    for action in agents:
        agent, _ = _mapping_agent(settings, action.agent_id)
        source = "mapping-static" if action.session_key_source == "static" else "mapping-templated"
        sk, error = _session_key(settings, action.session_key, source)
        if error:
            return _fail(400, error, **(wake_result or {}))
        prepared.append((agent, action, sk))
    admissions = [await dispatch_agent(request.app, agent, action.message, action.name or "Hook", sk,
                                       action.session_mode, action.deliver is not False)
                  for agent, action, sk in prepared]
    extra = wake_result or {}
    if len(admissions) == 1:
        first = admissions[0]
        if not first.ok:
            return _fail(502, PREPARATION_ERROR, runId=first.run_id, **extra)
        return hh.json_response(200, {"ok": True, "runId": first.run_id, **extra})
    run_ids = [a.run_id for a in admissions if a.ok]
    failed = [a for a in admissions if not a.ok]
    if not failed:
        return hh.json_response(200, {"ok": True, "runId": run_ids[0], "runIds": run_ids,
                                      "dispatched": len(run_ids), **extra})
    return hh.json_response(502, {
        "ok": False, "runIds": run_ids, "errors": [PREPARATION_ERROR] * min(5, len(failed)), **extra,
        "error": f"hook fan-out incomplete: {len(run_ids)}/{len(admissions)} dispatched, {len(failed)} failed, "
                 f"0 pending"})


def _mapping_agent(settings: HooksSettings, raw: str | None) -> tuple[str, str | None]:
    agent = raw.lower() if raw and raw.lower() in settings.known_agents else settings.default_agent
    if settings.allowed_agents is not None and agent not in settings.allowed_agents:
        return agent, "agentId is not allowed by hooks.allowedAgentIds"
    return agent, None
