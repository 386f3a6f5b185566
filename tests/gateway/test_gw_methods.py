"""RPC methods answered from real state, with the legacy's key sets (reference §2.11) and params texts (§2.6)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gw_support import GatewayFactory, RunningGateway, offline_config, open_client

from gateway.app import STATE_KEY
from parity.legacy import FakeModelServer

KEYS = {
    "health": {"agents", "channelLabels", "channelOrder", "channels", "configReload", "defaultAgentId", "durationMs",
               "eventLoop", "heartbeatSeconds", "modelRuntime", "ok", "plugins", "sessions", "ts"},
    "status": {"channelSummary", "degradedPlugins", "degradedSecretOwners", "eventLoop", "heartbeat", "hostDesktop",
               "modelRuntime", "pid", "processMemory", "queuedSystemEvents", "runtimeVersion", "sessions",
               "shutdownBudget", "taskAudit", "tasks", "workerPools"},
    "system.info": {"arch", "cpuCount", "cpuModel", "defaultAgentUtilityModel", "diskAvailableBytes", "diskPath",
                    "diskTotalBytes", "disks", "eventLoop", "hostname", "loadAverage", "machineName", "memoryFreeBytes",
                    "memoryTotalBytes", "nodeVersion", "osLabel", "pid", "platform", "port", "processInstanceId",
                    "processMemory", "release", "uptimeMs"},
    "config.get": {"agentRosterIncludeOwned", "appliedConfigHash", "bindingsIncludeOwned", "config", "configRevisionHash",
                   "exists", "hash", "includeProvenance", "includedPaths", "issues", "legacyIssues", "parsed", "path",
                   "raw", "resolved", "runtimeConfig", "sourceConfig", "valid", "warnings"},
    "sessions.list": {"ts", "path", "count", "totalCount", "limitApplied", "nextOffset", "hasMore", "owners", "defaults",
                      "sessions"},
    "tools.catalog": {"agentId", "groups", "profiles"},
    "channels.status": {"channelAccounts", "channelDefaultAccountId", "channelDetailLabels", "channelLabels", "channelMeta",
                        "channelOrder", "channelSystemImages", "channels", "eventLoop", "statusIssues", "ts"},
    "usage.status": {"updatedAt", "providers"},
    "cron.status": {"enabled", "jobs", "nextWakeAtMs", "sqlitePath", "storage", "storePath", "triggersEnabled"},
    "cron.list": {"deliveryPreviews", "hasMore", "jobs", "limit", "nextOffset", "offset", "snapshotRevision", "total"},
    "node.list": {"ts", "nodes"},
    "device.pair.list": {"paired", "pending"},
    "gateway.identity.get": {"deviceId", "publicKey"},
    "hooks.status": {"hooks", "managedHooksDir", "workspaceDir"},
    "agent.identity.get": {"agentId", "avatar", "name", "nameSource"},
    "commands.list": {"commands"},
}


async def test_read_methods_have_the_legacy_keys(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        for name, keys in KEYS.items():
            res = await c.call(name, {})
            assert res["ok"], (name, res)
            assert keys <= set(res["payload"]), (name, keys - set(res["payload"]))
        health = [await c.call("health", p) for p in ({}, None, "not-an-object", {"bogus": 1})]
        assert all(h["ok"] for h in health) and len({h["payload"]["ts"] for h in health}) == 1  # cached snapshot
        # the legacy's schema allows only "active" (its config file watcher runs) or "disabled"; pyclaw has no config
        # hot reload, and the legacy CLI compares key sets, so the key stays with the truthful legal value
        assert health[0]["payload"]["configReload"] == {"hotReloadStatus": "disabled"}
        assert (await c.call("last-heartbeat"))["payload"] is None
        presence = (await c.call("system-presence"))["payload"]
        assert presence[0]["mode"] == "gateway" and presence[0]["reason"] == "self"


async def test_models_and_agents_come_from_config(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        models = (await c.call("models.list"))["payload"]
        assert models == {"models": [{"id": "fake-model", "name": "Fake", "provider": "fakellm", "contextWindow": 32000,
                                      "reasoning": False, "tags": ["default"], "thinkingLevels": [{"id": "off", "label": "off"}],
                                      "thinkingDefault": "off", "available": True}]}
        agents = (await c.call("agents.list"))["payload"]
        assert agents["defaultId"] == "main" and agents["agents"][0]["model"] == {"primary": "fakellm/fake-model"}
        ident = (await c.call("gateway.identity.get"))["payload"]
        assert len(ident["deviceId"]) == 64 and len(ident["publicKey"]) == 43


async def test_identity_persists_across_restarts(gw_factory: GatewayFactory, tmp_path: Any) -> None:
    async with gw_factory() as g:
        first = g.app
        from gateway.app import IDENTITY_KEY
        ident = first[IDENTITY_KEY]
        from gateway.device import GatewayIdentity
        assert GatewayIdentity.load_or_create(g.state_dir).device_id == ident.device_id


async def test_config_get_redacts_secrets(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        payload = (await c.call("config.get"))["payload"]
        assert payload["config"]["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"
        assert payload["config"]["models"]["providers"]["fakellm"]["apiKey"] == "__OPENCLAW_REDACTED__"
        assert gw.token not in json.dumps(payload) and "fake-key" not in json.dumps(payload)
        assert payload["appliedConfigHash"].startswith("hmac-sha256:v1:")


async def test_params_validation_texts(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        assert (await c.call("tools.effective", {"sessionKey": "nope"}))["error"] == {
            "code": "INVALID_REQUEST", "message": 'unknown session key "nope"'}  # as the legacy, for a session not seen
        assert (await c.call("tools.effective", {}))["error"] == {
            "code": "INVALID_REQUEST", "message": "invalid tools.effective params: must have required property 'sessionKey'"}
        assert (await c.call("chat.history", {}))["error"]["message"] == (
            "invalid chat.history params: must have required property 'sessionKey'")
        assert (await c.call("chat.send", {"sessionKey": "main", "message": "x"}))["error"]["message"] == (
            "invalid chat.send params: must have required property 'idempotencyKey'")
        assert (await c.call("sessions.preview", {}))["error"]["message"] == (
            "invalid sessions.preview params: must have required property 'keys'")
        assert (await c.call("users.self", {}))["error"] == {"code": "FORBIDDEN", "message": "users.self requires an authenticated user"}
        assert (await c.call("agents.list", {"x": 1}))["error"]["message"] == (
            "invalid agents.list params: at root: unexpected property 'x'")


async def test_chat_send_runs_a_turn_and_dedupes(gw_factory: GatewayFactory, fake_model: FakeModelServer) -> None:
    async with gw_factory(data=offline_config("tok-" + "a" * 20, fake_model.url)) as g, open_client(g.url) as c:
        assert (await c.connect(auth={"token": "tok-" + "a" * 20}))["ok"]
        res = await c.call("chat.send", {"sessionKey": "main", "message": "ping", "idempotencyKey": "idem-1"})
        assert res["payload"] == {"runId": "idem-1", "status": "started"}
        replay = await c.call("chat.send", {"sessionKey": "main", "message": "ping", "idempotencyKey": "idem-1"})
        assert replay["payload"]["runId"] == "idem-1" and replay["payload"]["status"] != "started"
        final = None
        seqs = []
        async with asyncio.timeout(30):
            while final is None:
                frame = await c.recv(30)
                if frame.get("type") == "event":
                    seqs.append(frame["seq"])
                if frame.get("event") == "chat" and frame["payload"].get("state") == "final":
                    final = frame["payload"]
        assert final["runId"] == "idem-1" and final["sessionKey"] == "agent:main:main"
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        history = (await c.call("chat.history", {"sessionKey": "main"}))["payload"]
        assert history["sessionKey"] == "main" and history["totalMessages"] >= 2  # the legacy echoes the key as sent
        assert history["sessionInfo"]["key"] == "agent:main:main" and history["pendingInputs"] == {"items": [], "total": 0}
        effective = (await c.call("tools.effective", {"sessionKey": "main"}))["payload"]
        assert effective["groups"][0]["label"] == "Built-in tools" and effective["profile"] == "full"
        listed = (await c.call("sessions.list"))["payload"]
        assert [s["key"] for s in listed["sessions"]] == ["agent:main:main"] and listed["count"] == 1


async def test_control_ui_model_catalog_snapshot(gw: RunningGateway) -> None:
    """The ``model-catalog-snapshot`` capability in the challenge is backed by a ``models.snapshot`` event."""
    from test_gw_auth import Device

    dev = Device()
    ui = {"id": "openclaw-control-ui", "version": "1", "platform": "linux", "mode": "ui"}
    async with open_client(gw.url) as c:
        assert c.challenge["payload"]["capabilities"] == ["model-catalog-snapshot"]
        nonce = c.challenge["payload"]["nonce"]
        res = await c.connect(client=ui, auth={"token": gw.token}, caps=["model-catalog-snapshot"],
                              modelCatalog={"agentId": "main"}, scopes=["operator.read"],
                              device=dev.block(nonce, token=gw.token, client=ui, scopes=["operator.read"]))
        assert res["ok"], res
        snap = await c.recv()
        while snap.get("event") == "presence":  # the UI client's presence upsert may come first
            snap = await c.recv()
        assert snap["event"] == "models.snapshot" and "seq" not in snap
        assert snap["payload"]["scope"] == {"agentId": "main"}
        assert snap["payload"]["catalog"]["models"][0]["id"] == "fake-model"


async def test_agent_answers_twice_accepted_then_final(gw_factory: GatewayFactory, fake_model: FakeModelServer) -> None:
    async with gw_factory(data=offline_config("tok-" + "b" * 20, fake_model.url)) as g, open_client(g.url) as c:
        assert (await c.connect(auth={"token": "tok-" + "b" * 20}))["ok"]
        await c.send({"type": "req", "id": "a1", "method": "agent", "params": {"message": "ping", "idempotencyKey": "run-a1"}})
        first = await c.response("a1", timeout=30)
        assert first["payload"]["status"] == "accepted" and first["payload"]["runId"] == "run-a1"
        assert first["payload"]["sessionKey"] == "agent:main:main" and first["payload"]["agentId"] == "main"
        second = await c.response("a1", timeout=30)
        assert second["ok"] and second["payload"]["status"] == "ok" and second["payload"]["summary"] == "completed"
        assert second["payload"]["result"]["payloads"] == [{"text": "PONG from fake model", "mediaUrl": None}]


def _golden_config_get() -> dict[str, Any]:
    path = Path(__file__).resolve().parents[1] / "golden" / "rpc-config-get.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        obs = json.loads(line)
        if obs.get("dir") == "s2c" and '"sourceConfig"' in obs.get("data", ""):
            return dict(json.loads(obs["data"])["payload"])
    raise AssertionError(f"{path}: no config.get answer")


def test_config_materialization_matches_the_legacy_recording() -> None:
    """The legacy's config.get (golden trace): ``sourceConfig``/``resolved`` add the default agent roster,
    ``runtimeConfig``/``config`` also the runtime defaults (agent concurrency, compaction, commands, messages,
    model ``api`` inherited from the provider). pyclaw materializes the recorded ``parsed`` config the same way."""
    from gateway.methods.config import materialize_runtime, materialize_source

    golden = _golden_config_get()
    source = materialize_source(golden["parsed"])
    assert source == golden["sourceConfig"] == golden["resolved"]
    assert materialize_runtime(source) == golden["runtimeConfig"] == golden["config"]
    assert golden["includeProvenance"] == []
    # explicit values are kept, never overwritten by defaults
    custom = {"agents": {"defaults": {"maxConcurrent": 2, "compaction": {"mode": "off"}}, "entries": {"ops": {}}},
              "messages": {"ackReactionScope": "all"}, "commands": {"native": False}}
    runtime = materialize_runtime(materialize_source(custom))
    assert runtime["agents"]["entries"] == {"ops": {}}
    assert runtime["agents"]["defaults"]["maxConcurrent"] == 2 and runtime["agents"]["defaults"]["compaction"] == {"mode": "off"}
    assert runtime["messages"] == {"ackReactionScope": "all"}
    assert runtime["commands"] == {"native": False, "nativeSkills": "auto", "restart": True}
    assert custom["agents"]["defaults"] == {"maxConcurrent": 2, "compaction": {"mode": "off"}}  # input not mutated


async def test_config_get_reports_materialized_config(gw: RunningGateway) -> None:
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        payload = (await c.call("config.get"))["payload"]
    assert payload["includeProvenance"] == []
    assert "entries" not in payload["parsed"]["agents"] and payload["sourceConfig"]["agents"]["entries"] == {"main": {}}
    assert payload["config"]["agents"]["defaults"]["compaction"] == {"mode": "safeguard"}
    assert payload["config"] == payload["runtimeConfig"] and payload["resolved"] == payload["sourceConfig"]


async def test_sessions_list_classifies_cron_and_openai_rows_like_the_legacy(gw: RunningGateway) -> None:
    """Golden rpc-sessions-list: a cron run session is classification cron, background, created by the system via
    cron, with no chatType; /v1 (openai, openresponses) sessions carry no chatType either; main is direct."""
    from gateway.app import SESSIONS_KEY

    store = gw.app[SESSIONS_KEY]
    cron = store.ensure("agent:main:cron:3026f9a7-160c-46e4-a480-4ee1946980a8")
    store.ensure("agent:main:openai:ecaa1e7c-8958-454f-b540-03364bd2baf0")
    store.ensure("agent:main:main")
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        rows = {r["key"]: r for r in (await c.call("sessions.list"))["payload"]["sessions"]}
    row = rows[cron["key"]]
    assert (row["classification"], row["isBackground"], row["createdVia"], row["createdActor"], row["createdAt"]) == (
        "cron", True, "cron", {"type": "system"}, cron["createdAt"])
    assert "chatType" not in row and "chatType" not in rows["agent:main:openai:ecaa1e7c-8958-454f-b540-03364bd2baf0"]
    main = rows["agent:main:main"]
    assert (main["classification"], main["isBackground"], main["chatType"]) == ("main", False, "direct")
    assert "createdVia" not in main


async def test_status_root_requests_counts_other_in_flight_requests_not_connections(gw: RunningGateway) -> None:
    """The legacy's shutdownBudget.activeWork.rootRequests: active gateway requests other than the current one
    (golden rpc-status: 0 while the caller's own status request runs), not connected clients."""
    async with open_client(gw.url) as a, open_client(gw.url) as b:
        assert (await a.connect(auth={"token": gw.token}))["ok"] and (await b.connect(auth={"token": gw.token}))["ok"]
        status = (await a.call("status"))["payload"]
        assert status["shutdownBudget"]["activeWork"]["rootRequests"] == 0
        # two requests of other clients still being handled (the dispatcher's own counter, as a slow handler
        # would leave it): they count, the caller's own status request does not
        state = gw.app[STATE_KEY]
        state.active_requests += 2
        try:
            status = (await b.call("status"))["payload"]
        finally:
            state.active_requests -= 2
    assert status["shutdownBudget"]["activeWork"]["rootRequests"] == 2


async def test_status_recent_rows_carry_the_session_accounting(gw_factory: GatewayFactory,
                                                               fake_model: FakeModelServer) -> None:
    """Golden rpc-status: each recent row names agentId, kind, sessionId, token counts, the remaining context,
    the configured/selected model and an ``id:<sessionId>`` flag (health keeps its short key/updatedAt/age rows)."""
    from gateway.methods.health import session_summary

    token = "tok-" + "s" * 20
    async with gw_factory(data=offline_config(token, fake_model.url)) as g, open_client(g.url) as c:
        assert (await c.connect(auth={"token": token}))["ok"]
        await c.chat_turn("ping", "s-1")
        sessions = (await c.call("status"))["payload"]["sessions"]
        listed = (await c.call("sessions.list"))["payload"]["sessions"][0]
        health = session_summary(g.app)  # what health reports (its snapshot is cached)
    row = sessions["recent"][0]
    sid = row["sessionId"]
    assert row["key"] == "agent:main:main" and row["agentId"] == "main" and row["kind"] == "direct"
    assert row["inputTokens"] > 0 and row["outputTokens"] > 0 and row["totalTokens"] == row["inputTokens"]
    assert row["totalTokensFresh"] is True and row["contextTokens"] == 32000
    assert row["remainingTokens"] == 32000 - row["totalTokens"] and row["percentUsed"] == 0
    assert (row["model"], row["configuredModel"], row["selectedModel"]) == ("fake-model", "fakellm/fake-model",
                                                                            "fakellm/fake-model")
    assert row["modelSelectionReason"] is None and row["flags"] == [f"id:{sid}"] and row["abortedLastRun"] is False
    assert sessions["byAgent"][0]["recent"] == sessions["recent"]
    assert set(health["recent"][0]) == {"key", "updatedAt", "age"}
    assert (listed["inputTokens"], listed["outputTokens"], listed["totalTokens"], listed["totalTokensFresh"],
            listed["status"], listed["abortedLastRun"]) == (row["inputTokens"], row["outputTokens"], row["totalTokens"],
                                                           True, "done", False)


async def test_status_recent_cron_rows_are_kind_cron(gw: RunningGateway) -> None:
    from gateway.app import SESSIONS_KEY

    key = "agent:main:cron:3026f9a7-160c-46e4-a480-4ee1946980a8"
    gw.app[SESSIONS_KEY].update(key, abortedLastRun=False, totalTokens=10)
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        rows = {r["key"]: r for r in (await c.call("status"))["payload"]["sessions"]["recent"]}
    assert rows[key]["kind"] == "cron" and "abortedLastRun" not in rows[key]  # golden rpc-status
