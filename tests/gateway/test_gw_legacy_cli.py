"""The REAL legacy ``openclaw`` CLI (contained) used as a client of pyclaw, compared with the same CLI against the legacy.

Acceptance (issue 5): ``openclaw gateway call health|status --url … --token … --json`` exits 0 with the same payload
keys as against the legacy; with a wrong token it exits 1 with the same error code and ``details.code``.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gw_support import GatewayFactory

from parity.legacy.process import legacy_cli

pytestmark = pytest.mark.legacy


def _cli(tmp: Path) -> Callable[..., tuple[int, Any]]:
    argv, env = legacy_cli(tmp / "cli")

    def call(method: str, url: str, token: str) -> tuple[int, Any]:
        res = subprocess.run([*argv, "gateway", "call", method, "--url", url, "--token", token, "--json",
                              "--timeout", "20000"], env=env, capture_output=True, text=True, timeout=120)
        return res.returncode, json.loads(res.stdout) if res.stdout.strip() else res.stderr

    return call


async def test_legacy_cli_against_pyclaw_matches_legacy(tmp_path: Path, legacy: Any, gw_factory: GatewayFactory) -> None:
    call = _cli(tmp_path)
    legacy_url = f"ws://127.0.0.1:{legacy.port}"
    async with gw_factory() as g:
        url = f"ws://127.0.0.1:{g.port}"
        import asyncio

        for method in ("health", "status"):
            rc_c, out_c = await asyncio.to_thread(call, method, url, g.token)
            rc_l, out_l = await asyncio.to_thread(call, method, legacy_url, legacy.token)
            assert (rc_c, rc_l) == (0, 0), (out_c, out_l)
            assert set(out_c) == set(out_l), (method, set(out_c) ^ set(out_l))
        rc_c, out_c = await asyncio.to_thread(call, "health", url, "wrong-token")
        rc_l, out_l = await asyncio.to_thread(call, "health", legacy_url, "wrong-token")
        assert (rc_c, rc_l) == (1, 1)
        assert out_c["error"]["code"] == out_l["error"]["code"] == "INVALID_REQUEST"
        assert out_c["error"]["details"] == out_l["error"]["details"]
        assert out_c["error"]["message"] == out_l["error"]["message"]
