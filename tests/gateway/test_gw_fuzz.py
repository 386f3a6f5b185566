"""Property tests: malformed frames, wrong types, huge and deeply nested JSON, invalid UTF-8 — no crash, no hang.

Pre-auth, every bad first frame ends the connection with one of the legacy's closes (1000 parse error, 1008, 1009)
and never with an unexpected code; post-auth, bad frames leave the connection usable (``health`` still answers).
The sans-I/O validators are also fuzzed directly: they return error strings and never raise.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gw_support import RunningGateway, open_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.protocol import CONNECT_PARAMS, REQUEST_FRAME, validate

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
FRAMES = st.one_of(
    JSON.map(json.dumps),
    st.fixed_dictionaries({"type": st.sampled_from(["req", "res", "event", 1, None]), "id": JSON, "method": JSON,
                           "params": JSON}).map(json.dumps),
    st.binary(max_size=64),
    st.text(max_size=64),
    st.integers(min_value=1, max_value=400).map(lambda n: "[" * n + "]" * n),
)


@given(JSON)
def test_validators_never_raise(value: Any) -> None:
    for schema in (REQUEST_FRAME, CONNECT_PARAMS):
        errors = validate(schema, value)
        assert all(isinstance(e, str) and e for e in errors)


def test_deep_nesting_is_bounded() -> None:
    deep: Any = {}
    for _ in range(5000):
        deep = {"client": deep}
    assert validate(CONNECT_PARAMS, deep)  # no RecursionError


async def _first_frame_outcome(url: str, frame: str | bytes) -> tuple[int, str]:
    async with open_client(url) as c:
        await c.send(frame)
        return await c.closed(timeout=10)


async def test_bad_first_frames_close_with_legacy_codes(gw: RunningGateway) -> None:
    seen: list[tuple[int, str]] = []

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(FRAMES)
    def check(frame: str | bytes) -> None:
        seen.append(asyncio.get_event_loop().run_until_complete(_first_frame_outcome(gw.url, frame)))

    # hypothesis drives a sync function; run it in a worker thread with its own loop
    def drive() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            check()
        finally:
            loop.close()

    await asyncio.to_thread(drive)
    assert seen
    for code, reason in seen:
        assert code in (1000, 1008, 1009), (code, reason)
        if code == 1000:
            assert reason == ""


async def test_garbage_after_connect_keeps_connection_usable(gw: RunningGateway) -> None:
    frames = [
        b"\xff\xfe\xfd", "{", "null", "[]", "5", json.dumps({"type": "req", "id": 7, "method": "health"}),
        json.dumps({"type": "req", "id": "x", "method": ""}), json.dumps({"type": "req", "id": "y", "method": "health",
                                                                          "traceparent": "t" * 200}),
        "[" * 3000 + "]" * 3000, json.dumps({"type": "req", "id": "big", "method": "chat.send",
                                             "params": {"message": "x" * 2_000_000}}),
    ]
    async with open_client(gw.url) as c:
        assert (await c.connect(auth={"token": gw.token}))["ok"]
        for f in frames:
            await c.send(f)
        res = await c.call("health")
        assert res["ok"] is True
        bad_id = [f for f in c.pending if f.get("type") == "res" and f.get("id") == 7]
        assert bad_id and bad_id[0]["error"]["message"] == "invalid request frame: at /id: must be string"
