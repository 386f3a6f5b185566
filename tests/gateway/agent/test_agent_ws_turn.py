"""chat.send over the candidate's WebSocket (H4a's shell) runs our turn; events reach the client like the legacy's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from h4b_support import Candidate

CONNECT = {"minProtocol": 4, "maxProtocol": 4, "client": {"id": "cli", "version": "0.0.1", "platform": "linux",
                                                         "mode": "cli"},
           "role": "operator", "scopes": ["operator.admin", "operator.read", "operator.write"], "caps": []}


async def test_chat_send_turn_over_ws(candidate: Candidate, legacy_capture: dict[str, Any]) -> None:
    ws = await candidate.client.ws_connect("/")
    try:
        challenge = json.loads((await ws.receive(timeout=10)).data)
        assert challenge["event"] == "connect.challenge"
        await ws.send_str(json.dumps({"type": "req", "id": "c1", "method": "connect",
                                      "params": {**CONNECT, "auth": {"token": candidate.token}}}))
        hello = json.loads((await ws.receive(timeout=10)).data)
        assert hello["ok"], hello
        await ws.send_str(json.dumps({"type": "req", "id": "r1", "method": "chat.send",
                                      "params": {"sessionKey": "main", "message": "hi there",
                                                 "idempotencyKey": "idem-ws-1"}}))
        frames: list[dict[str, Any]] = []

        async def until_final() -> None:
            while True:
                f = json.loads((await ws.receive()).data)
                frames.append(f)
                if f.get("event") == "chat" and f["payload"].get("state") == "final":
                    return

        await asyncio.wait_for(until_final(), 30)
    finally:
        await ws.close()
    res = next(f for f in frames if f.get("type") == "res")
    legacy_res = next(f for f in legacy_capture["ws_turn"] if f.get("type") == "res" and f.get("id") == "r1")
    assert res["payload"] == {"runId": "idem-ws-1", "status": "started"}
    assert set(res["payload"]) == set(legacy_res["payload"])
    assert frames.index(res) == 0  # the answer comes before the turn's events, as on the legacy

    def seq_of(fs: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
        out = []
        for f in fs:
            if f.get("event") in ("chat", "agent"):
                p = f["payload"]
                out.append((f["event"], p.get("stream") or p.get("state"),
                            (p.get("data") or {}).get("phase") if f["event"] == "agent" else p.get("phase")))
        return out

    assert seq_of(frames) == seq_of(legacy_capture["ws_turn"])
    envelope_seqs = [f["seq"] for f in frames if f.get("type") == "event"]
    assert envelope_seqs == sorted(envelope_seqs) and len(set(envelope_seqs)) == len(envelope_seqs)
