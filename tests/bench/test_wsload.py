"""bench/_wsload.py, the lean connect loop of the gateway bench, against pyclaw on loopback: every counted connect
is a real hello-ok, a refused connect raises, and each cycle ends with a clean close (nothing left registered)."""

from __future__ import annotations

import pytest
from _wsload import LeanClient, connects_per_s
from gw_support import RunningGateway

from gateway.app import STATE_KEY

PARAMS = {"minProtocol": 4, "maxProtocol": 4, "client": {"id": "cli", "version": "t", "platform": "linux", "mode": "cli"},
          "role": "operator", "scopes": ["operator.read"]}


async def test_lean_loop_counts_only_real_hellos_and_closes_cleanly(gw: RunningGateway) -> None:
    state = gw.app[STATE_KEY]
    seen: list[str] = []
    register = state.register
    state.register = lambda conn: (seen.append(conn.conn_id), register(conn))[1]  # type: ignore[method-assign]
    rate = await connects_per_s(LeanClient("127.0.0.1", gw.port, gw.token, PARAMS), 0.5, 3)
    assert rate > 0
    assert len(seen) >= rate * 0.5 * 0.9  # every counted cycle was a connection the gateway registered
    assert not state.clients  # and each one was closed, not left open


async def test_lean_loop_raises_on_a_refused_connect(gw: RunningGateway) -> None:
    with pytest.raises(RuntimeError, match="connect refused"):
        await LeanClient("127.0.0.1", gw.port, "not-the-token", PARAMS).hello()
