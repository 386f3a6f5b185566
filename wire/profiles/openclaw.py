"""The ``openclaw`` profile: normalization rules, timer events, write policies and bounded labels for the
OpenClaw gateway (pinned legacy ``openclaw@2026.9.6``, WS protocol 4).

Owns :data:`OPENCLAW` and :func:`get_profile`. Every rule cites the section of
``reference/openclaw-gateway.md`` (``ref §N``) that makes the field volatile; rules only hide what differs
between two legacy runs (A/A) or what is install-specific by construction, never a legacy/candidate
behaviour difference.

Documents the rules see (built by ``diffing.diff``):

* WS ``res``: the frame object ``{type, id, ok, payload?, error?}``, context ``method=<request method>``;
* WS ``event``: ``{type, event, payload?, seq?, stateVersion?}``, context ``event=<name>``;
* WS close: ``{"close": {"code", "reason"}}``;
* HTTP: ``{"status", "headers": {lower-case name: value}, "body"}``, context ``route=<route template>``;
  SSE bodies are lifted by :func:`lift_sse` (chunk boundaries removed, ref §8 "HTTP").

Stdlib and ``wire`` only.
"""

from __future__ import annotations

import json
from typing import Any

from wire.model import Event, Json, SseEvent
from wire.normalize import AsSet, Drop, Mask, Monotonic, Regex, Rule, When
from wire.profiles._openclaw_catalogue import EVENTS, METHODS
from wire.profiles.base import Profile, RouteSpec, WritePolicy

__all__ = ["OPENCLAW", "TIMER_EVENTS", "get_profile", "is_task_progress", "lift_sse", "task_progress"]

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

#: ref §2.7 / §8 "Timers": arrive on timers or from background work; never compared by position.
TIMER_EVENTS = frozenset({"tick", "health", "heartbeat", "presence", "chat.metadata.changed", "skills.changed"})

#: Task ledger statuses that are not final (legacy docs/gateway/protocol/ledgers.md, TaskSummary ``status``).
_TASK_OPEN = frozenset({"queued", "running"})


def task_progress(event: Event) -> bool:
    """:func:`is_task_progress` of a parsed event frame (the profile's ``progress`` hook)."""
    return is_task_progress(event.value)


def is_task_progress(frame: Any) -> bool:
    """A ``task`` upsert of a task still queued or running: a progress update, not compared.

    A/A evidence: one agent run gave 6 ``running`` upserts before its ``completed`` one in one legacy run and 5
    in the next (the ledger writes one per activity change: ``lastActivity``, ``execution.state``), so paired by
    ordinal they shifted and the final upsert showed as missing. The final-state upsert is still compared.
    """
    if not isinstance(frame, dict) or frame.get("type") != "event" or frame.get("event") != "task":
        return False
    payload = frame.get("payload")
    task = payload.get("task") if isinstance(payload, dict) else None
    return isinstance(task, dict) and task.get("status") in _TASK_OPEN


def _masks(prefix: str, names: str, reason: str) -> tuple[Rule, ...]:
    return tuple(Mask(f"{prefix}{n}", reason) for n in names.split())


_HANDSHAKE: tuple[Rule, ...] = (
    When(
        event="connect.challenge",
        reason="ref §2.3: challenge nonce and ts are per connection",
        rules=(Mask("payload.nonce", "ref §8 per connection: challenge nonce"), Mask("payload.ts", "ref §8: ts")),
    ),
    When(
        method="connect",
        reason="ref §2.4 hello-ok: per-connection and per-process values",
        rules=(
            *_masks("payload.server.", "connId bootId", "ref §8 per connection: hello-ok.server.{connId,bootId}"),
            *_masks("payload.server.", "buildId version", "ref §8: buildId/version fixed for the pin, differ by build"),
            Mask("payload.snapshot.uptimeMs", "ref §8: snapshot.uptimeMs"),
            Mask("payload.snapshot.stateVersion", "ref §8: snapshot.stateVersion compared as deltas, not absolute"),
            Mask("payload.snapshot.health", "ref §8: the whole snapshot.health is a per-connection snapshot"),
            *_masks(
                "payload.snapshot.presence.*.",
                "host ip platform instanceId text ts",
                "ref §8: snapshot.presence[*].{host,ip,platform,instanceId,text,ts}",
            ),
            *_masks(
                "payload.auth.",
                "deviceToken recoveryScope issuedAtMs deviceTokens",
                "ref §8: auth.{deviceToken,recoveryScope,issuedAtMs,deviceTokens} issued per connection",
            ),
            Regex(
                "payload.pluginSurfaceUrls.canvas",
                r"(https?://)[^/]+(/__openclaw__/cap/).*",
                r"\1<host>\2<capability>",
                "ref §2.4/§8: canvas URL holds a random capability path and the bound host:port",
            ),
            *_masks(
                "payload.snapshot.",
                "appliedConfigHash configPath stateDir",
                "ref §8 install-specific: appliedConfigHash (HMAC keyed per install), configPath, stateDir",
            ),
            Mask("payload.policy.attachments.maxBytes", "ref §8: derived from config"),
            *(
                AsSet(f"payload.features.{n}", "ref §2.10/§8: advertised as sets")
                for n in ("methods", "events", "capabilities")
            ),
        ),
    ),
)

_ENVELOPE: tuple[Rule, ...] = (
    Monotonic("seq", "ref §2.7/§8: event seq is per connection with gaps; compared as monotonic, never absolute"),
    Monotonic("stateVersion.presence", "ref §2.7/§8: stateVersion compared as monotonic"),
    Monotonic("stateVersion.health", "ref §2.7/§8: stateVersion compared as monotonic"),
    When(
        event="agent",
        reason="ref §2.6/§8: per-run payload.seq",
        rules=(Monotonic("payload.seq", "ref §8: per-run payload.seq in agent events"),),
    ),
    When(
        event="chat",
        reason="ref §2.6/§8: per-run payload.seq",
        rules=(Monotonic("payload.seq", "ref §8: per-run payload.seq in chat events"),),
    ),
)

_TIME_KEYS = (
    "ts timestamp created created_at durationMs uptimeMs "
    "eventLoop processMemory pid processInstanceId instanceId loadAverage memoryFreeBytes diskAvailableBytes "
    "diskTotalBytes disks cpuModel nodeVersion release"
)

_ANYWHERE: tuple[Rule, ...] = (
    *(Mask(f"**.{k}", "ref §8 'Time and size': clock-, process- or machine-derived") for k in _TIME_KEYS.split()),
    Mask("**.*AtMs", "ref §8 'Time and size': every *AtMs"),
    Mask("**.*At", "ref §8 'Time and size': startedAt/endedAt/acceptedAt/updatedAt/...; A/A: createdAt, snapshotAt"),
    Mask("**.age", "ref §8 'Time and size': session age is clock-derived (A/A)"),
    Mask("**.contextBudgetStatus", "ref §8 usage token counts: prompt budget depends on session history (A/A)"),
    Mask("**.usage.*", "ref §8: usage token counts"),
    *(
        Regex(f"**.{k}", f"^{_UUID}$", "<uuid>", "ref §8 'Identifiers': random ids (runId for hooks, sessionId, ...)")
        for k in ("runId", "sessionId", "item_id", "requestId", "taskId", "sourceId", "turnId")
    ),
    Regex("**.itemId", rf"^{_UUID}(?=(?::\d+)?$)", "<uuid>",
          "ref §8 'Identifiers': item ids <uuid> and <run uuid>:<n> (A/A)"),
    Regex("**.flags.*", rf"^id:{_UUID}$", "id:<uuid>", "ref §8 'Identifiers': status session flag id:<sessionId> (A/A)"),
    Regex("**.key", rf"(?<=:cron:){_UUID}", "<uuid>",
          "ref §8 'Identifiers': cron run session keys agent:<id>:cron:<uuid> (A/A); the uuid is per run, so which "
          "cron job a run belongs to is not compared through the key"),
    *(
        Regex(
            f"**.{k}", rf"^(chatcmpl|resp|msg|call)_{_UUID}$", r"\1_<uuid>", "ref §8: chatcmpl_/resp_/msg_/call_<uuid>"
        )
        for k in ("id", "item_id", "itemId")
    ),
    *(
        Regex(
            f"**.{k}",
            _UUID,
            "<uuid>",
            "ref §8: generated session keys hook:/openai:<uuid>; client-chosen keys carry the replayer's fresh uuids",
        )
        for k in ("sessionKey", "childSessionKey", "ownerKey", "sessionFile")
    ),
    *(
        Regex(f"**.{k}", r"^(/|[A-Za-z]:\\).*$", "<path>", "ref §8 install-specific: filesystem paths")
        for k in (
            "path workspace workspaceDir managedSkillsDir managedHooksDir sqlitePath storePath prefsPath diskPath "
            "configPath stateDir sessionFile"
        ).split()
    ),
    *(
        Mask(f"**.{k}", "ref §8 install-specific: hashes keyed per install")
        for k in ("hash", "configRevisionHash", "appliedConfigHash")
    ),
    Mask("**.hostname", "ref §8 install-specific: hostname"),
    AsSet("**.plugins.loaded", "ref §8: plugins.loaded is a set"),
    AsSet("**.channelOrder", "ref §8: channelOrder is plugin/channel dependent; compared as a set"),
)

_METHODS: tuple[Rule, ...] = (
    When(
        event="task",
        reason="ref §8 'Identifiers': background task ids are random per run (A/A)",
        rules=(Regex("payload.task.id", f"^{_UUID}$", "<uuid>", "ref §8 'Identifiers': random task id (A/A)"),),
    ),
    When(
        method="gateway.identity.get",
        reason="ref §2.11/§8: gateway identity keys are per install",
        rules=(Mask("payload.deviceId", "ref §8: per install"), Mask("payload.publicKey", "ref §8: per install")),
    ),
    When(
        method="system.info",
        reason="ref §2.11: machine description",
        rules=_masks("payload.", "arch cpuCount machineName memoryTotalBytes osLabel port", "ref §8 install-specific"),
    ),
    When(
        method="config.get",
        reason="ref §8 'Secrets' and install-specific: config.get raw text and hashes",
        rules=(Mask("payload.raw", "ref §8: config.get raw text (install-specific, may hold secrets)"),),
    ),
)

# ref §2.2 / §2.6: AJV messages (Node-specific wording) compared by error class.
_AJV = r"^(invalid [\w.\- ]+? (?:params|frame)): .*$"
# ref §4.2: V8 JSON.parse messages compared by error class.
_V8 = (
    r"^(?:Unexpected token|Unexpected end of JSON input|Expected property name|Expected ',' or|Expected double-quoted"
    r"|Unterminated string|Bad control character|Bad escaped character|Unexpected non-whitespace|No number after)"
    r".*$"
)

_ERRORS: tuple[Rule, ...] = (
    Regex("error.message", _AJV, r"\1: <validation-error>", "ref §2.2/§8: AJV message text -> error class"),
    Regex("close.reason", _AJV, r"\1: <validation-error>", "ref §2.8/§8: close reason carries the AJV text"),
    Regex("body.error.message", _V8, "<json-parse-error>", "ref §4.2/§8: V8 JSON.parse message -> error class"),
    Regex("body.error", _V8, "<json-parse-error>", "ref §4.2/§8: V8 JSON.parse message -> error class"),
)

_HTTP: tuple[Rule, ...] = (
    Drop("headers.date", "ref §4.1/§8: Date"),
    Drop("headers.connection", "ref §4.1/§8: Connection/Keep-Alive are transport"),
    Drop("headers.keep-alive", "ref §4.1/§8: Connection/Keep-Alive are transport"),
    Drop("headers.content-length", "ref §8: Content-Length vs Transfer-Encoding: chunked; bodies are compared"),
    Drop("headers.transfer-encoding", "ref §8: Content-Length vs Transfer-Encoding: chunked; bodies are compared"),
    Mask("headers.retry-after", "ref §8: Retry-After values"),
    When(
        route="POST /v1/*",
        reason="ref §4.2: OpenAI-compatible timestamps",
        rules=(Mask("body.created", "ref §8: created (unix s)"),),
    ),
)

RULES: tuple[Rule, ...] = (*_HANDSHAKE, *_ENVELOPE, *_METHODS, *_ERRORS, *_HTTP, *_ANYWHERE)


def _delta_text(item: Any) -> tuple[str, Any]:
    """Pull the streamed text out of one SSE data item; return (text, item without it)."""
    if not isinstance(item, dict):
        return "", item
    text = ""
    if isinstance(item.get("delta"), str):  # /v1/responses output_text.delta
        text += item["delta"]
        item = {**item, "delta": "<text>"}
    choices = item.get("choices")
    if isinstance(choices, list):
        new = []
        for ch in choices:
            delta = ch.get("delta") if isinstance(ch, dict) else None
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text += delta["content"]
                ch = {**ch, "delta": {**delta, "content": "<text>"}}
            new.append(ch)
        item = {**item, "choices": new}
    return text, item


def lift_sse(events: tuple[SseEvent, ...]) -> Json:
    """ref §4.2/§8: compare the concatenated streamed text per event type, not the chunk boundaries.

    Per event type: ``text`` is the concatenation of the streamed deltas, ``frames`` the data items with their
    text replaced by ``<text>`` and consecutive identical items collapsed (so 2 chunks vs 3 chunks of the same
    text compare equal, while any other field still does not).
    """
    out: dict[str, dict[str, Any]] = {}
    for ev in events:
        try:
            item: Any = json.loads(ev.data)
        except ValueError:
            item = ev.data
        text, skeleton = _delta_text(item)
        slot = out.setdefault(ev.event, {"text": "", "frames": []})
        slot["text"] += text
        frames = slot["frames"]
        if not frames or frames[-1] != skeleton:
            frames.append(skeleton)
    return out


_ROUTES = (
    *(
        RouteSpec(m, p, f"{m} {p}")
        for m in ("GET", "HEAD")
        for p in ("/healthz", "/health", "/readyz", "/ready", "/startupz", "/startup")
    ),
    *(RouteSpec("*", p, f"* {p}") for p in ("/healthz", "/health", "/readyz", "/ready", "/startupz", "/startup")),
    RouteSpec("GET", "/v1/models", "GET /v1/models"),
    RouteSpec("GET", "/v1/models/*", "GET /v1/models/*"),
    RouteSpec("POST", "/v1/chat/completions", "POST /v1/chat/completions"),
    RouteSpec("POST", "/v1/responses", "POST /v1/responses"),
    RouteSpec("POST", "/v1/embeddings", "POST /v1/embeddings"),
    RouteSpec("*", "/v1/*", "* /v1/*"),
    RouteSpec("POST", "/tools/invoke", "POST /tools/invoke"),
    RouteSpec("*", "/tools/invoke", "* /tools/invoke"),
    RouteSpec("POST", "/hooks/wake", "POST /hooks/wake"),
    RouteSpec("POST", "/hooks/agent", "POST /hooks/agent"),
    RouteSpec("POST", "/hooks/*", "POST /hooks/*"),
    RouteSpec("*", "/hooks*", "* /hooks/*"),
    RouteSpec("*", "/__openclaw__/*", "* /__openclaw__/*"),
    RouteSpec("*", "/api/*", "* /api/*"),
    RouteSpec("GET", "/", "GET /"),
    RouteSpec("GET", "/*", "GET /<spa>"),  # ref §4.2: unknown paths get the Control UI SPA (200)
)

# ref §2.6/§2.10 and issue 6: side-effecting methods and routes are never mirrored by default.
_WRITE_POLICIES: tuple[tuple[str, WritePolicy], ...] = (
    *(
        (p, WritePolicy.SKIP)
        for p in (
            "send agent wake system-event set-heartbeats chat.send chat.abort chat.inject sessions.send "
            "sessions.abort config.set config.apply config.patch tools.invoke node.invoke *.create *.delete "
            "*.update *.remove *.patch *.apply *.set *.set[A-Z]* *.install *.send *.abort *.invoke *.run "
            "*.resolve *.request *.rotate *.revoke *.enable *.disable *.logout *.start *.stop *.cancel *.reset* "
            "*.put *.save *.mutate *.activate *.approve *.reject *.restore *.gc *.add *.close *.speak *.steer "
            "*.linkEmail *.unlink* *.link* wizard.* update.* exec.approvals.* "
            "POST?/hooks/* POST?/tools/invoke POST?/v1/chat/completions POST?/v1/responses POST?/v1/embeddings"
        ).split()
    ),
)

OPENCLAW = Profile(
    name="openclaw",
    rules=RULES,
    multi_response=frozenset({"agent"}),  # ref §2.6: agent answers accepted, then the final result
    timer_events=TIMER_EVENTS,
    event_window=5.0,
    response_timeout=30.0,  # ref §2.7: per-RPC client timeout
    methods=METHODS | {"connect"},
    events=EVENTS,
    routes=_ROUTES,
    write_policies=_WRITE_POLICIES,
    default_write_policy=WritePolicy.MIRROR,
    lift_sse=lift_sse,
    progress=task_progress,
)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; raises ``ValueError`` for an unknown name."""
    if name == OPENCLAW.name:
        return OPENCLAW
    raise ValueError(f"unknown profile {name!r} (known: openclaw)")
