"""The candidate's WS protocol 4 surface against the legacy's observed answers (reference §2.3–§2.8)."""

from __future__ import annotations

import asyncio
import json

import pytest
from gw_support import CLI_CLIENT, GatewayFactory, RunningGateway, open_client

HELLO_KEYS = {"type", "protocol", "server", "features", "snapshot", "auth", "policy"}
SNAPSHOT_KEYS = {"suspension", "presence", "health", "stateVersion", "uptimeMs", "appliedConfigHash", "configPath",
                 "stateDir", "sessionDefaults", "updateSchedule", "authMode"}


async def test_challenge_then_hello_ok_has_the_legacy_keys(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        ch = c.challenge
        assert set(ch) == {"type", "event", "payload"} and "seq" not in ch
        assert set(ch["payload"]) == {"nonce", "ts", "capabilities"}
        res = await c.connect(auth={"token": gw.token})
        assert res["ok"] is True, res
        hello = res["payload"]
        assert set(hello) == HELLO_KEYS
        assert hello["type"] == "hello-ok" and hello["protocol"] == 4
        assert set(hello["server"]) == {"version", "buildId", "bootId", "controlUiBuildSource", "connId"}
        assert set(hello["snapshot"]) == SNAPSHOT_KEYS
        assert hello["snapshot"]["sessionDefaults"]["mainSessionKey"] == "agent:main:main"
        assert hello["policy"]["maxPayload"] == 26214400 and hello["policy"]["maxBufferedBytes"] == 52428800
        auth = dict(hello["auth"])
        assert len(auth.pop("recoveryScope")) == 43  # sha256, base64url (shared-auth material, as the legacy)
        assert auth == {"method": "token", "role": "operator", "scopes": CLI_SCOPES}
        methods = set(hello["features"]["methods"])
        assert {"health", "status", "config.get", "chat.send", "tools.effective"} <= methods
        assert "sessions.patch" not in methods  # only what pyclaw implements is advertised


@pytest.mark.parametrize(
    ("scopes", "extra_keys", "sees_presence"),
    [
        (["operator.admin"], {"updateSchedule", "configPath", "stateDir", "authMode"}, True),
        (["operator.read"], {"updateSchedule"}, True),
        (["operator.write"], {"updateSchedule"}, True),  # write implies read
        (["operator.approvals"], set(), False),
        (["operator.sessions.read"], set(), False),  # session reads do not grant operator.read
        ([], set(), False),
    ],
)
async def test_hello_snapshot_is_projected_by_the_clients_scopes(
        gw: RunningGateway, scopes: list[str], extra_keys: set[str], sees_presence: bool) -> None:
    # legacy dist buildGatewaySnapshot: install paths and auth mode for operator.admin only, updateSchedule and
    # presence for operators with read access (the golden ws-missing-scope-* scenarios connect this way)
    async with open_client(gw.url) as c:
        res = await c.connect(auth={"token": gw.token}, scopes=scopes)
        assert res["ok"] is True, res
        snap = res["payload"]["snapshot"]
        base = SNAPSHOT_KEYS - {"updateSchedule", "configPath", "stateDir", "authMode"}
        assert set(snap) == base | extra_keys
        assert bool(snap["presence"]) is sees_presence


CLI_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing",
              "operator.talk.secrets"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"client": {**CLI_CLIENT, "id": "nope"}}, "invalid connect params: at /client/id: must be equal to one of the allowed values"),
        ({"minProtocol": None}, "invalid connect params: at /minProtocol: must be integer"),
        ({"extra": 1}, "invalid connect params: at root: unexpected property 'extra'"),
        ({"client": {"id": "cli"}}, "invalid connect params: at /client: must have required property 'version'; "
                                    "at /client: must have required property 'platform'; "
                                    "at /client: must have required property 'mode'"),
    ],
)
async def test_invalid_connect_params_answer_and_close_1008(gw: RunningGateway, params: dict, message: str) -> None:
    async with open_client(gw.url) as c:
        res = await c.connect(params)
        assert res["ok"] is False
        assert res["error"] == {"code": "INVALID_REQUEST", "message": message}
        assert await c.closed() == (1008, message.encode()[:120].decode("utf-8", "ignore"))


async def test_protocol_mismatch_closes_1002(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        res = await c.connect(minProtocol=1, maxProtocol=2, auth={"token": gw.token})
        assert res["error"] == {"code": "INVALID_REQUEST", "message": "protocol mismatch", "details": {
            "code": "PROTOCOL_MISMATCH", "clientMinProtocol": 1, "clientMaxProtocol": 2, "expectedProtocol": 4,
            "minimumProbeProtocol": 3}}
        assert await c.closed() == (1002, "protocol mismatch")


async def test_first_frame_rules(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:  # not JSON: no answer, close 1000 with an empty reason
        await c.send("{not json")
        assert await c.closed() == (1000, "")
    async with open_client(gw.url) as c:  # an event: no answer, 1008 invalid request frame
        await c.send({"type": "event", "event": "x"})
        assert await c.closed() == (1008, "invalid request frame")
    async with open_client(gw.url) as c:  # another method first
        await c.send({"type": "req", "id": "1", "method": "health"})
        res = await c.response("1")
        assert res == {"type": "res", "id": "1", "ok": False, "error": {
            "code": "INVALID_REQUEST", "message": "invalid handshake: first request must be connect"}}
        assert await c.closed() == (1008, "invalid handshake: first request must be connect")


async def test_preauth_frame_over_64k_closes_1009(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        await c.send(json.dumps({"type": "req", "id": "1", "method": "connect", "params": {"pad": "x" * 70_000}}))
        assert await c.closed() == (1009, "")  # the golden trace ws-preauth-oversize: empty reason


async def test_handshake_timeout_closes_1000(gw_factory: GatewayFactory) -> None:
    async with gw_factory(env={"OPENCLAW_HANDSHAKE_TIMEOUT_MS": "300"}) as g, open_client(g.url) as c:
        assert await c.closed(timeout=5) == (1000, "")


async def test_odd_frames_after_connect_keep_the_connection(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        await c.send("{not json")
        await c.send({"type": "req", "method": "health"})
        assert await c.response("invalid") == {"type": "res", "id": "invalid", "ok": False, "error": {
            "code": "INVALID_REQUEST", "message": "invalid request frame: must have required property 'id'"}}
        await c.send({"type": "res", "id": "x", "ok": True})
        assert (await c.response("x"))["error"]["message"] == (
            "invalid request frame: must have required property 'method'; at root: unexpected property 'ok'; "
            "at /type: must be equal to constant")
        await c.send({"type": "req", "id": "again", "method": "connect", "params": {}})
        assert (await c.response("again"))["error"] == {
            "code": "INVALID_REQUEST", "message": "connect is only valid as the first request"}
        res = await c.call("no.such.method")
        assert res["error"] == {"code": "INVALID_REQUEST", "message": "unknown method: no.such.method"}
        assert (await c.call("health"))["ok"] is True


async def test_missing_scope_is_forbidden_with_details(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}, scopes=["operator.read"]))["ok"]
        res = await c.call("chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "k1"})
        assert res["error"] == {"code": "FORBIDDEN", "message": "missing scope: operator.write", "details": {
            "code": "MISSING_SCOPE", "missingScope": "operator.write", "requiredScopes": ["operator.write"]}}
        assert (await c.call("config.get"))["ok"] is True  # a read method in protocol 4
        unknown = await c.call("no.such")
        assert unknown["error"]["code"] == "FORBIDDEN" and unknown["error"]["details"]["missingScope"] == "operator.admin"


async def test_tick_events_carry_per_client_seq_from_1(gw_factory: GatewayFactory) -> None:
    async with gw_factory(env={"PYCLAW_TICK_INTERVAL_MS": "50"}) as g, open_client(g.url) as a:
        assert (await a.connect(auth={"token": g.token}))["ok"]
        await asyncio.sleep(0.2)
        async with open_client(g.url) as b:
            assert (await b.connect(auth={"token": g.token}))["ok"]
            seqs_b = [(await b.recv())["seq"] for _ in range(3)]
            assert seqs_b == [1, 2, 3]
        seqs_a = []
        while len(seqs_a) < 6:
            frame = await a.recv()
            if frame.get("event") == "tick":
                assert set(frame["payload"]) == {"ts"}
                seqs_a.append(frame["seq"])
        assert seqs_a[0] == 1 and seqs_a == sorted(seqs_a) and len(set(seqs_a)) == len(seqs_a)


async def test_shutdown_event_then_close_1012(gw_factory: GatewayFactory) -> None:
    async with gw_factory() as g, open_client(g.url) as c:
        assert (await c.connect(auth={"token": g.token}))["ok"]
        stopper = asyncio.ensure_future(g.app.shutdown())
        frame = await c.recv()
        assert frame["event"] == "shutdown" and frame["payload"] == {"reason": "gateway stopping"} and frame["seq"] == 1
        assert await c.closed() == (1012, "service restart")
        await stopper
