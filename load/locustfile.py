"""Load profiles for an OpenClaw gateway or the shadow proxy in front of one: an HTTP user and a WebSocket user.

Run it as a subprocess, never import it from pytest (locust monkey-patches the process with gevent):

    locust -f load/locustfile.py --headless -u 4 -r 4 -t 10s --host http://127.0.0.1:18790
    locust --config load/profiles/smoke.conf --host http://127.0.0.1:18790
    locust --config load/profiles/staging.conf --host https://shadow.staging.example:18790

Credentials come from the environment, never from flags (they would land in shell history and process lists):
``PARITY_LOAD_TOKEN`` (gateway token: WS connect, /tools/invoke, /v1/*) and ``PARITY_LOAD_HOOK_TOKEN`` (hooks).
Without a hook token the hook tasks are skipped; without a gateway token the WS user cannot connect.

The mix covers the families of the golden scenarios (tests/scenarios: ws-handshake, ws-rpc, ws-agent,
http-probes, http-hooks, http-tools, http-openai), weighted the way operator traffic is rather than one call per
scenario: one handshake per WS connection, then mostly read RPCs with some agent turns (chat.send); over HTTP the
probes, hooks, tools invoke and the OpenAI models list. WS users outnumber HTTP users 3:1. Only calls that are
safe to repeat are used (no config writes, no pairing); edit ``WS_MIX`` and the task weights together.

Thresholds set the exit code (a ``quitting`` listener): the run fails (exit 1) when the failure ratio is above
``--max-fail-ratio`` (env ``PARITY_LOAD_MAX_FAIL_RATIO``), when the p99 of all requests is above ``--max-p99-ms``
(env ``PARITY_LOAD_MAX_P99_MS``), or when nothing was sent at all.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from typing import Any

import websocket
from locust import HttpUser, User, between, events, task
from locust.env import Environment
from locust.exception import StopUser

logger = logging.getLogger(__name__)

TOKEN_ENV = "PARITY_LOAD_TOKEN"
HOOK_TOKEN_ENV = "PARITY_LOAD_HOOK_TOKEN"
SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing"]
RPC_TIMEOUT = float(os.environ.get("PARITY_LOAD_RPC_TIMEOUT", "15"))

#: WS RPC mix: (method, params factory, weight). Read RPCs dominate, as in the golden scenarios.
WS_MIX: list[tuple[str, Any, int]] = [
    ("health", lambda: {}, 6),
    ("status", lambda: {}, 2),
    ("sessions.list", lambda: {}, 3),
    ("models.list", lambda: {}, 2),
    ("agents.list", lambda: {}, 1),
    ("chat.history", lambda: {"sessionKey": "main"}, 2),
    ("tools.catalog", lambda: {}, 1),
    ("chat.send", lambda: {"sessionKey": "main", "message": "load probe", "idempotencyKey": str(uuid.uuid4())}, 1),
]


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("parity thresholds")
    group.add_argument("--max-fail-ratio", type=float, env_var="PARITY_LOAD_MAX_FAIL_RATIO", default=0.01,
                       help="fail the run (exit 1) above this failure ratio (0..1)")
    group.add_argument("--max-p99-ms", type=float, env_var="PARITY_LOAD_MAX_P99_MS", default=2000.0,
                       help="fail the run (exit 1) when the p99 of all requests is above this, in ms")


@events.quitting.add_listener
def _apply_thresholds(environment: Environment, **_kw: Any) -> None:
    opts = environment.parsed_options
    total = environment.stats.total
    problems = []
    if total.num_requests == 0:
        problems.append("no request was made")
    else:
        if total.fail_ratio > opts.max_fail_ratio:
            problems.append(f"failure ratio {total.fail_ratio:.4f} > {opts.max_fail_ratio}")
        p99 = total.get_response_time_percentile(0.99)
        if p99 > opts.max_p99_ms:
            problems.append(f"p99 {p99:.1f} ms > {opts.max_p99_ms} ms")
    if problems:
        logger.error("parity thresholds broken: %s", "; ".join(problems))
        environment.process_exit_code = 1
    else:
        logger.info("parity thresholds met: %d requests, failure ratio %.4f, p99 %.1f ms", total.num_requests,
                    total.fail_ratio, total.get_response_time_percentile(0.99))


def _ws_url(host: str) -> str:
    if host.startswith("https://"):
        return "wss://" + host[len("https://"):]
    if host.startswith("http://"):
        return "ws://" + host[len("http://"):]
    return host


class GatewayWsUser(User):
    """One WS connection per user: challenge, connect with the gateway token, then a weighted RPC mix."""

    weight = 3
    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        token = os.environ.get(TOKEN_ENV, "")
        started = time.perf_counter()
        try:
            # No Origin header: a browser-style origin makes the gateway treat the client as non-local (scopes dropped).
            self.ws = websocket.create_connection(_ws_url(self.host or ""), timeout=RPC_TIMEOUT, suppress_origin=True)
            challenge = json.loads(self.ws.recv())
            if challenge.get("event") != "connect.challenge":
                raise RuntimeError(f"expected connect.challenge, got {str(challenge)[:120]}")
            params = {
                "minProtocol": 4, "maxProtocol": 4,
                "client": {"id": "cli", "version": "0.1.0-load", "platform": "linux", "mode": "cli"},
                "role": "operator", "scopes": SCOPES, "caps": [], "userAgent": "parity-locust/0.1",
                "auth": {"token": token},
            }
            self._call("connect", params, started=started, name="connect (handshake)")
        except StopUser:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to locust, then the user stops
            self._report("connect (handshake)", started, 0, exc)
            raise StopUser() from exc

    def on_stop(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()

    def _report(self, name: str, started: float, length: int, exc: BaseException | None) -> None:
        events.request.fire(request_type="WS", name=name, response_time=(time.perf_counter() - started) * 1000,
                            response_length=length, exception=exc, context={})

    def _call(self, method: str, params: Any, *, started: float | None = None, name: str | None = None) -> None:
        started = time.perf_counter() if started is None else started
        req_id = str(uuid.uuid4())
        length = 0
        exc: BaseException | None = None
        try:
            self.ws.send(json.dumps({"type": "req", "id": req_id, "method": method, "params": params}))
            deadline = time.monotonic() + RPC_TIMEOUT
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{method}: no response in {RPC_TIMEOUT} s")
                raw = self.ws.recv()
                frame = json.loads(raw)
                if frame.get("type") == "res" and frame.get("id") == req_id:
                    length = len(raw)
                    if not frame.get("ok"):
                        error = frame.get("error") or {}
                        raise RuntimeError(f"{method}: {error.get('code')} {error.get('message', '')[:120]}")
                    break
        except (websocket.WebSocketException, OSError) as e:
            exc = e
            self._report(name or method, started, length, exc)
            raise StopUser() from e
        except Exception as e:  # noqa: BLE001 - a failed RPC is a failed request, not a crash
            exc = e
        self._report(name or method, started, length, exc)

    @task
    def rpc(self) -> None:
        method, params, _weight = random.choices(WS_MIX, weights=[w for *_x, w in WS_MIX])[0]
        self._call(method, params())


class GatewayHttpUser(HttpUser):
    """Plain HTTP: probes, hooks, tools invoke and the OpenAI-compatible models list."""

    weight = 1
    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        self.token = os.environ.get(TOKEN_ENV, "")
        self.hook_token = os.environ.get(HOOK_TOKEN_ENV, "")

    @task(3)
    def healthz(self) -> None:
        self.client.get("/healthz", name="GET /healthz")

    @task(1)
    def readyz(self) -> None:
        self.client.get("/readyz", name="GET /readyz")

    @task(2)
    def tools_invoke(self) -> None:
        self.client.post("/tools/invoke", json={"tool": "sessions_list", "args": {}},
                         headers={"Authorization": f"Bearer {self.token}"}, name="POST /tools/invoke")

    @task(2)
    def hooks_wake(self) -> None:
        if not self.hook_token:
            return
        self.client.post("/hooks/wake", json={"text": f"load probe {random.randrange(1 << 30)}"},
                         headers={"Authorization": f"Bearer {self.hook_token}"}, name="POST /hooks/wake")

    @task(1)
    def models(self) -> None:
        with self.client.get("/v1/models", headers={"Authorization": f"Bearer {self.token}"}, name="GET /v1/models",
                             catch_response=True) as resp:
            if resp.status_code == 404:
                resp.success()  # the OpenAI endpoints are off by default on a gateway; not a failure of the target
