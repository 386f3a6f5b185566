"""load/locustfile.py against the real legacy gateway, always in a subprocess (locust patches with gevent).

Proves: the smoke profile drives both users (WS handshake + RPC mix, HTTP probes, hooks, tools invoke) with zero
failures and exits 0; a broken p99 threshold and a broken failure-ratio threshold each make locust exit non-zero.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCUST = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(LOCUST is None, reason="locust not installed (extra 'load': pip install -e '.[load]')"),
]


@pytest.fixture(scope="module")
def load_legacy(legacy_factory: Any) -> Any:
    """A legacy of our own: the WS mix runs agent turns (chat.send) and hooks queue system events, state the
    session-shared ``legacy`` of other tests must not see."""
    return legacy_factory("load")


def run_locust(args: list[str], *, token: str, hook_token: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert LOCUST is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "PARITY_LOAD_"))}
    env.update(PARITY_LOAD_TOKEN=token, PARITY_LOAD_HOOK_TOKEN=hook_token, PARITY_LOAD_RPC_TIMEOUT="60")
    return subprocess.run([LOCUST, *args, "--csv", str(tmp_path / "stats")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def stats_rows(tmp_path: Path) -> dict[str, dict[str, Any]]:
    with open(tmp_path / "stats_stats.csv", newline="") as f:
        return {f"{row['Type']} {row['Name']}": row for row in csv.DictReader(f)}


def test_smoke_profile_passes_against_the_legacy(load_legacy: Any, tmp_path: Path) -> None:
    # Speed is not judged here (a shared 2-core machine; bench/ does speed): p99 bound lifted to 2 minutes.
    result = run_locust(["--config", "load/profiles/smoke.conf", "--host", load_legacy.http_url, "-t", "10s",
                         "--max-p99-ms", "120000"],
                        token=load_legacy.token, hook_token=load_legacy.hook_token, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "parity thresholds met" in result.stderr
    rows = stats_rows(tmp_path)
    total = rows.pop(" Aggregated")
    assert int(total["Failure Count"]) == 0
    assert int(rows["WS connect (handshake)"]["Request Count"]) >= 1
    known = {"WS connect (handshake)", "GET GET /healthz", "GET GET /readyz", "POST POST /tools/invoke",
             "POST POST /hooks/wake", "GET GET /v1/models"} | {
        f"WS {m}" for m in ("health", "status", "sessions.list", "models.list", "agents.list", "chat.history",
                             "tools.catalog", "chat.send")}
    assert set(rows) <= known, set(rows) - known
    assert any(name.startswith("WS ") and name != "WS connect (handshake)" for name in rows), rows
    assert any(not name.startswith("WS ") for name in rows), rows
    assert all(int(row["Failure Count"]) == 0 for row in rows.values())


def test_broken_p99_threshold_exits_non_zero(load_legacy: Any, tmp_path: Path) -> None:
    result = run_locust(["-f", "load/locustfile.py", "--headless", "-u", "2", "-r", "2", "-t", "4s", "--only-summary",
                         "--host", load_legacy.http_url, "--max-p99-ms", "0.001"],
                        token=load_legacy.token, hook_token=load_legacy.hook_token, tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "parity thresholds broken: p99" in result.stderr


def test_wrong_token_breaks_the_failure_ratio(load_legacy: Any, tmp_path: Path) -> None:
    result = run_locust(["-f", "load/locustfile.py", "--headless", "-u", "2", "-r", "2", "-t", "4s", "--only-summary",
                         "--host", load_legacy.http_url],
                        token="not-the-token", hook_token="not-the-hook-token", tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "parity thresholds broken: failure ratio" in result.stderr
    rows = stats_rows(tmp_path)
    assert int(rows["WS connect (handshake)"]["Failure Count"]) >= 1
    assert "not-the-token" not in result.stderr  # the credential never reaches the output
