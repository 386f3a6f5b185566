"""Run one scenario against a target and record every observation of it into a trace.

Owns :func:`run_scenario` and :class:`ScenarioResult`: placeholder resolution, the connect helper and the
``ws_expect`` conditions. The WS/HTTP shell is ``recorder.client``; the trace is written through
``recorder.format.TraceWriter`` (which redacts every observation first). May import asyncio, aiohttp,
``wire`` and ``recorder``.

Failure handling: a step that cannot complete (target down, expectation not met in time) ends the scenario;
what was observed until then stays in the trace, which is closed with ``complete: false`` and the error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlencode

import aiohttp

from parity import TOOL
from recorder.client import Frame, ObservationLog, WaitTimeout, WsClient, http_exchange
from recorder.format import TraceHeader, TraceWriter
from recorder.scenario import PLACEHOLDER_RE, Scenario, Step
from recorder.target import Target
from wire.errors import ScenarioError, UpstreamError
from wire.model import Leg, Observation
from wire.redact import Redactor

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_CLIENT", "DEFAULT_SCOPES", "ScenarioResult", "header_for", "run_scenario"]

DEFAULT_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing",
                  "operator.talk.secrets"]
DEFAULT_CLIENT = {"id": "cli", "version": "0.0.1-parity", "platform": "linux", "mode": "cli"}
_DEVICE = object()  # marker for a {{device}} placeholder, replaced once the connect params are final


@dataclass(slots=True)
class ScenarioResult:
    """How one scenario went. ``error`` is ``None`` when every step completed."""

    scenario: Scenario
    observations: list[Observation] = field(default_factory=list)
    error: str | None = None
    upstream_down: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def header_for(scenario: Scenario, target: Target, recorded_at: str) -> TraceHeader:
    """The trace header of a recording of ``scenario`` (no secrets: ids and public values only)."""
    meta: dict[str, Any] = {"title": scenario.title, "file": scenario.file, "auth_mode": scenario.auth_mode,
                            "resign_steps": scenario.resign_steps}
    if scenario.resign_steps:
        meta["device_id"] = target.identity.device_id
    return TraceHeader(target=target.http_base, recorded_at=recorded_at, tool=TOOL, scenario=scenario.id, meta=meta)


class _Context:
    """Live values a scenario's placeholders resolve to."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.uuids: dict[str, str] = {}
        self.clients: dict[str, WsClient] = {}

    def challenge(self, conn: str) -> tuple[str, int] | None:
        client = self.clients.get(conn)
        if client is None:
            return None
        for f in reversed(client.received):
            j = f.json
            if isinstance(j, dict) and j.get("event") == "connect.challenge" and isinstance(j.get("payload"), dict):
                return str(j["payload"].get("nonce", "")), int(j["payload"].get("ts") or 0)
        return None

    def resolve(self, value: Any, conn: str | None) -> Any:
        if isinstance(value, dict):
            return {self.resolve(k, conn): self.resolve(v, conn) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, conn) for v in value]
        if not isinstance(value, str) or "{{" not in value:
            return value
        whole = PLACEHOLDER_RE.fullmatch(value.strip())
        if whole and whole.group(1) == "device":
            return _DEVICE
        if whole and whole.group(1) == "challenge_ts":
            return self._one(whole, conn)
        return PLACEHOLDER_RE.sub(lambda m: str(self._one(m, conn)), value)

    def _one(self, m: Any, conn: str | None) -> Any:
        name, arg = m.group(1), m.group(2)
        if name in ("token", "password", "hook_token"):
            return getattr(self.target, name) or ""
        if name == "uuid":
            if arg is None:
                return str(uuid.uuid4())
            return self.uuids.setdefault(arg, str(uuid.uuid4()))
        if name == "pad":
            return "x" * int(arg)
        if name in ("nonce", "challenge_ts"):
            ch = self.challenge(conn or "")
            if ch is None:
                raise ScenarioError(f"{{{{{name}}}}} used on {conn!r} before a connect.challenge arrived")
            return ch[0] if name == "nonce" else ch[1]
        raise ScenarioError(f"placeholder {{{{{name}}}}} cannot be used here")

    def sign_devices(self, frame: Any, conn: str) -> Any:
        """Replace a ``{{device}}`` marker in a connect frame's params with a signed v3 device block."""
        if isinstance(frame, dict) and isinstance(frame.get("params"), dict) and frame["params"].get("device") is _DEVICE:
            ch = self.challenge(conn)
            if ch is None:
                raise ScenarioError(f"{{{{device}}}} on {conn!r} needs a connect.challenge first")
            frame["params"]["device"] = self.target.identity.device_block(frame["params"], nonce=ch[0],
                                                                          signed_at_ms=ch[1])
        return frame


def _dumps(value: Any) -> str:
    if value is _DEVICE:
        raise ScenarioError("{{device}} is only valid as the value of params.device in a connect frame")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_no_marker)


def _no_marker(v: Any) -> Any:
    raise ScenarioError("{{device}} is only valid as the value of params.device in a connect frame")


class _Run:
    def __init__(self, scenario: Scenario, target: Target, log: ObservationLog, tg: asyncio.TaskGroup,
                 session: aiohttp.ClientSession) -> None:
        self.scenario = scenario
        self.target = target
        self.log = log
        self.tg = tg
        self.session = session
        self.ctx = _Context(target)
        self.http_count = 0

    def client(self, step: Step) -> WsClient:
        conn = str(step.arg("conn", "c1"))
        c = self.ctx.clients.get(conn)
        if c is None:
            raise ScenarioError(f"{self.scenario.file}:{step.line}: connection {conn!r} is not open")
        c.step = step.id
        return c

    async def step(self, step: Step) -> None:
        handler = getattr(self, f"do_{step.kind}")
        await handler(step)

    async def do_sleep_ms(self, step: Step) -> None:
        await asyncio.sleep(step.args["ms"] / 1000)

    async def do_ws_open(self, step: Step) -> WsClient:
        conn = str(step.arg("conn", "c1"))
        if conn in self.ctx.clients and not self.ctx.clients[conn].closed:
            raise ScenarioError(f"{self.scenario.file}:{step.line}: connection {conn!r} is already open")
        c = WsClient(self.log, conn)
        c.step = step.id
        self.ctx.clients[conn] = c
        path = str(step.arg("path", "/"))
        await c.open(self.target.ws_url(path), path, timeout=step.arg("timeout_ms", 10_000) / 1000)
        self.tg.create_task(c.reader(), name=f"reader {conn}")
        return c

    async def do_ws_connect(self, step: Step) -> None:
        c = await self.do_ws_open(step)
        timeout = step.arg("timeout_ms", 15_000) / 1000
        await c.wait(lambda f: _is_event(f, "connect.challenge"), timeout=timeout, what="connect.challenge")
        default_auth = {"password": "{{password}}"} if self.scenario.auth_mode == "password" else {"token": "{{token}}"}
        params: dict[str, Any] = {
            "minProtocol": step.arg("min_protocol", 4),
            "maxProtocol": step.arg("max_protocol", 4),
            "client": {**DEFAULT_CLIENT, **(step.arg("client") or {})},
            "role": step.arg("role", "operator"),
            "scopes": step.arg("scopes", DEFAULT_SCOPES),
            "caps": [],
        }
        auth = step.args.get("auth", default_auth)
        if auth is not None:
            params["auth"] = auth
        params.update(step.arg("params") or {})
        if step.arg("device"):
            params["device"] = "{{device}}"
        req_id = str(step.arg("id", "{{uuid}}"))
        frame = self.ctx.resolve({"type": "req", "id": req_id, "method": "connect", "params": params}, c.conn)
        frame = self.ctx.sign_devices(frame, c.conn)
        await c.send(_dumps(frame))
        got = await c.wait(lambda f: f.closed or _is_res(f, frame["id"]), timeout=timeout,
                           what=f"the connect response (id {frame['id']})")
        res = got[-1].json if not got[-1].closed else None
        if isinstance(res, dict) and res.get("ok") is False:
            # A failed connect is followed by a close (reference section 2.5); record it when it comes.
            wait = step.arg("close_wait_ms", 3000) / 1000
            try:
                await c.wait(lambda f: f.closed, timeout=wait, what="the close after a failed connect")
            except WaitTimeout:
                pass

    async def do_ws_send(self, step: Step) -> None:
        c = self.client(step)
        if "text" in step.args:
            await c.send(str(self.ctx.resolve(step.args["text"], c.conn)))
        elif "binary_size" in step.args:
            await c.send(b"\x00" * int(step.args["binary_size"]))
        else:
            frame = self.ctx.sign_devices(self.ctx.resolve(step.args["frame"], c.conn), c.conn)
            await c.send(_dumps(frame))

    async def do_ws_rpc(self, step: Step) -> None:
        c = self.client(step)
        frame: dict[str, Any] = {"type": "req", "id": step.arg("id", "{{uuid}}"), "method": step.args["method"]}
        if "params" in step.args:
            frame["params"] = step.args["params"]
        frame = self.ctx.resolve(frame, c.conn)
        await c.send(_dumps(frame))
        await c.wait(lambda f: _is_res(f, frame["id"]), timeout=step.arg("timeout_ms", 15_000) / 1000,
                     what=f"res {frame['id']} ({frame['method']})")

    async def do_ws_expect(self, step: Step) -> None:
        c = self.client(step)
        until = step.args["until"]
        timeout = step.arg("timeout_ms", 5_000) / 1000
        if until == "close" or (isinstance(until, dict) and "close" in until):
            await c.wait(lambda f: f.closed, timeout=timeout, what="close")
            return
        until = self.ctx.resolve(until, c.conn)
        if "res" in until:
            # nth: the n-th res with that id on this connection (``agent`` answers twice: accepted, then final).
            nth = int(until.get("nth", 1))
            already = sum(1 for f in c.consumed if _is_res(f, str(until["res"])))
            if already >= nth:
                return
            left = [nth - already]

            def nth_res(f: Frame) -> bool:
                if _is_res(f, str(until["res"])):
                    left[0] -= 1
                return left[0] <= 0

            await c.wait(nth_res, timeout=timeout, what=f"res {until['res']} #{nth}")
        elif "event" in until:
            state = until.get("state")
            await c.wait(lambda f: _is_event(f, until["event"], state), timeout=timeout,
                         what=f"event {until['event']}" + (f" state {state}" if state else ""))
        elif "count" in until:
            n = int(until["count"])
            seen = [0]

            def count(f: Frame) -> bool:
                seen[0] += 0 if f.closed else 1
                return seen[0] >= n

            await c.wait(count, timeout=timeout, what=f"{n} frames")
        else:
            quiet = until["quiet_ms"] / 1000
            await c.wait(lambda f: f.closed, timeout=max(timeout, quiet + 0.1), what="quiet", quiet=quiet)

    async def do_ws_close(self, step: Step) -> None:
        c = self.client(step)
        await c.close(int(step.arg("code", 1000)), str(step.arg("reason", "")))

    async def do_http(self, step: Step) -> None:
        self.http_count += 1
        conn = str(step.arg("conn", f"h{self.http_count}"))
        path = str(self.ctx.resolve(step.args["path"], None))
        query = step.arg("query")
        if query:
            path += ("&" if "?" in path else "?") + urlencode(self.ctx.resolve(query, None))
        headers = [(str(k), str(self.ctx.resolve(v, None))) for k, v in (step.arg("headers") or {}).items()]
        body: bytes | None = None
        if "json" in step.args:
            body = _dumps(self.ctx.resolve(step.args["json"], None)).encode("utf-8")
            if not any(k.lower() == "content-type" for k, _ in headers):
                headers.append(("Content-Type", "application/json"))
        elif "text" in step.args:
            body = str(self.ctx.resolve(step.args["text"], None)).encode("utf-8")
        elif "bytes_of_size" in step.args:
            body = b'{"text":"' + b"x" * max(0, int(step.args["bytes_of_size"]) - 11) + b'"}'
        await http_exchange(self.session, self.log, conn, url=self.target.http_url(path),
                            method=str(step.arg("method", "GET")).upper(), path=path, headers=headers, body=body,
                            timeout=step.arg("timeout_ms", 60_000) / 1000, step=step.id)


def _is_res(f: Frame, req_id: str) -> bool:
    j = f.json
    return isinstance(j, dict) and j.get("type") == "res" and j.get("id") == req_id


def _is_event(f: Frame, name: str, state: str | None = None) -> bool:
    j = f.json
    if not (isinstance(j, dict) and j.get("type") == "event" and j.get("event") == name):
        return False
    if state is None:
        return True
    p = j.get("payload")
    return isinstance(p, dict) and p.get("state") == state


async def run_scenario(scenario: Scenario, target: Target, *, stream: IO[str] | None = None,
                       recorded_at: str = "", leg: Leg = Leg.LEGACY,
                       extra_secrets: dict[str, str] | None = None) -> ScenarioResult:
    """Run ``scenario`` against ``target``; write its trace to ``stream`` (if given) as it goes.

    The trace is redacted with the target's secrets (plus ``extra_secrets``) before anything is written, and
    ends with ``complete: false`` and the error when a step fails. Never raises for what the target does.
    """
    redactor = Redactor({**(extra_secrets or {}), **target.secrets()})
    writer = TraceWriter(stream, header_for(scenario, target, recorded_at), redactor=redactor) if stream else None
    log = ObservationLog(leg=leg, sink=writer.write if writer else None)
    result = ScenarioResult(scenario, log.observations)
    errors: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            async with asyncio.TaskGroup() as tg:
                run = _Run(scenario, target, log, tg, session)
                try:
                    for step in scenario.steps:
                        try:
                            await run.step(step)
                        except (WaitTimeout, UpstreamError, ScenarioError) as exc:
                            where = f"{scenario.file}:{step.line}"
                            errors.append(f"step {step.id} ({step.kind}, {where}): {exc}")
                            result.upstream_down = isinstance(exc, UpstreamError)
                            break
                finally:
                    for c in run.ctx.clients.values():
                        await c.abort()
    except* Exception as group:  # a bug in a reader task: keep the trace, report it
        for err in group.exceptions:
            errors.append(f"{err.__class__.__name__}: {err}")
    result.error = "; ".join(errors) if errors else None
    if writer is not None:
        writer.close(complete=result.ok, error=result.error)
    return result
