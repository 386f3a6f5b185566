"""recorder.runner against a small OpenClaw-like server on loopback (tests/recorder/conftest.py)."""

from __future__ import annotations

import io
import json

from recorder.format import read_trace
from recorder.runner import run_scenario
from recorder.scenario import parse_text
from recorder.target import Target
from tests.recorder.conftest import ToyGateway
from wire.model import Direction, Kind


def _one(yaml_steps: str) -> object:
    return parse_text("scenarios:\n  - id: t\n    steps:\n" + yaml_steps, "t.yaml")[0]


def _target(toy: ToyGateway, **kw: object) -> Target:
    return Target(url=toy.url, token=toy.token, hook_token=toy.hook_token, **kw)  # type: ignore[arg-type]


async def test_connect_signs_the_device_against_the_live_nonce_and_redacts_secrets(toy: ToyGateway) -> None:
    sc = _one("      - ws_connect: {conn: c1, device: true}\n      - ws_rpc: {conn: c1, method: health}\n"
              "      - ws_close: {conn: c1}\n")
    buf = io.StringIO()
    result = await run_scenario(sc, _target(toy), stream=buf, recorded_at="now")  # type: ignore[arg-type]
    assert result.ok, result.error
    sent = toy.connects[0]
    assert sent["device"]["nonce"] == toy.nonces[0]  # the toy verified the signature, or it would have refused
    assert sent["auth"] == {"token": toy.token}
    text = buf.getvalue()
    assert toy.token not in text and "issued-device-token-secret" not in text
    trace = read_trace(io.StringIO(text), strict=True)
    assert trace.complete and trace.header.scenario == "t" and trace.header.meta["resign_steps"] == ["s1"]
    kinds = [(o.dir, o.kind, o.step) for o in trace.observations]
    assert kinds[0] == (Direction.C2S, Kind.WS_OPEN, "s1")
    assert (Direction.C2S, Kind.WS_CLOSE, "s3") == kinds[-1]
    connect = json.loads(trace.observations[2].data or "")
    assert connect["params"]["auth"]["token"] == "<GW_TOKEN>" and connect["params"]["device"]["signature"] == "<REDACTED>"


async def test_failed_connect_records_the_error_and_the_close(toy: ToyGateway) -> None:
    sc = _one("      - ws_connect: {conn: c1, auth: {token: wrong}}\n")
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert result.ok
    close = [o for o in result.observations if o.kind is Kind.WS_CLOSE]
    assert [(c.dir, c.code, c.reason) for c in close] == [(Direction.S2C, 1008, "unauthorized: gateway token mismatch")]


async def test_placeholders_resolve_stable_uuids_pad_and_challenge(toy: ToyGateway) -> None:
    sc = _one(
        "      - ws_connect: {conn: c1}\n"
        "      - ws_send: {conn: c1, frame: {type: req, id: \"{{uuid:a}}\", method: echo,"
        " params: {same: \"{{uuid:a}}\", fresh: \"{{uuid}}\", pad: \"{{pad:5}}\", ts: \"{{challenge_ts}}\","
        " nonce: \"n-{{nonce}}\"}}}\n"
        "      - ws_expect: {conn: c1, until: {res: \"{{uuid:a}}\"}}\n")
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert result.ok, result.error
    echo = json.loads(toy.seen[-1])
    p = echo["params"]
    assert p["same"] == echo["id"] and p["fresh"] != echo["id"] and p["pad"] == "xxxxx"
    assert isinstance(p["ts"], int) and p["nonce"] == f"n-{toy.nonces[0]}"


async def test_expect_timeout_ends_the_scenario_with_an_incomplete_trace(toy: ToyGateway) -> None:
    sc = _one("      - ws_connect: {conn: c1}\n      - ws_rpc: {conn: c1, method: slow, timeout_ms: 300}\n"
              "      - ws_rpc: {conn: c1, method: health}\n")
    buf = io.StringIO()
    result = await run_scenario(sc, _target(toy), stream=buf)  # type: ignore[arg-type]
    assert not result.ok and "step s2 (ws_rpc, t.yaml:5)" in (result.error or "") and "timed out" in (result.error or "")
    trace = read_trace(io.StringIO(buf.getvalue()))
    assert trace.complete is False and "timed out" in (trace.error or "")
    assert not any('"health"' in (o.data or "") for o in trace.observations)  # s3 never ran


async def test_expect_event_state_count_and_close(toy: ToyGateway) -> None:
    sc = _one(
        "      - ws_connect: {conn: c1}\n"
        "      - ws_rpc: {conn: c1, method: chat.send, params: {idempotencyKey: \"{{uuid}}\"}}\n"
        "      - ws_expect: {conn: c1, until: {event: chat, state: final}}\n"
        "      - ws_rpc: {conn: c1, method: chat.send, params: {idempotencyKey: \"{{uuid}}\"}}\n"
        "      - ws_expect: {conn: c1, until: {count: 3}}\n"
        "      - ws_rpc: {conn: c1, method: bye}\n"
        "      - ws_expect: {conn: c1, until: close}\n")
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert result.ok, result.error
    finals = [o for o in result.observations if o.step == "s3" and "final" in (o.data or "")]
    assert len(finals) == 1
    assert result.observations[-1].kind is Kind.WS_CLOSE and result.observations[-1].code == 4001


async def test_http_step_records_request_and_response(toy: ToyGateway) -> None:
    sc = _one("      - http: {method: POST, path: /hooks/wake, query: {a: b}, headers: {Authorization: \"Bearer {{hook_token}}\"},"
              " json: {text: hi}}\n      - http: {path: /binary}\n      - http: {method: POST, path: /hooks/wake, bytes_of_size: 100}\n")
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert result.ok
    req, res, _, binres, big, _ = result.observations
    assert (req.conn, req.method, req.path, req.data) == ("h1", "POST", "/hooks/wake?a=b", '{"text":"hi"}')
    assert ("Content-Type", "application/json") in req.headers
    assert res.status == 200 and json.loads(res.data or "")["got"] == {"text": "hi"}
    assert binres.data is None and binres.data_b64 == b"\xff\xfe\x00binary"
    assert len(big.body) == 100 and big.conn == "h3"
    _, _, headers, _ = toy.seen[0]
    assert "User-Agent" not in headers  # only what the scenario asked for (plus Host, Content-Length)


async def test_down_target_is_reported_as_upstream_down() -> None:
    sc = _one("      - ws_connect: {conn: c1}\n")
    result = await run_scenario(sc, Target(url="http://127.0.0.1:9", token="x"))  # type: ignore[arg-type]
    assert not result.ok and result.upstream_down and "cannot open" in (result.error or "")


async def test_expect_nth_response_waits_for_the_second_answer_on_one_id(toy: ToyGateway) -> None:
    sc = _one("      - ws_connect: {conn: c1}\n"
              "      - ws_rpc: {conn: c1, method: agent, id: a1}\n"
              "      - ws_expect: {conn: c1, until: {res: a1, nth: 2}, timeout_ms: 2000}\n"
              "      - ws_expect: {conn: c1, until: {res: a1, nth: 2}, timeout_ms: 100}\n")  # already there: no wait
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert result.ok, result.error
    answers = [json.loads(o.data or "")["payload"]["status"] for o in result.observations
               if o.dir is Direction.S2C and '"a1"' in (o.data or "")]
    assert answers == ["accepted", "ok"]


async def test_http_timeout_is_a_step_failure_with_a_clear_message(toy: ToyGateway) -> None:
    sc = _one("      - http: {path: /slow, timeout_ms: 300}\n      - http: {path: /healthz}\n")
    result = await run_scenario(sc, _target(toy))  # type: ignore[arg-type]
    assert not result.ok and not result.upstream_down
    assert "step s1 (http, t.yaml:4): h1: GET /slow timed out after 0.3s" in (result.error or "")
    assert [o.kind for o in result.observations] == [Kind.HTTP_REQUEST, Kind.ERROR]
