"""``parity legacy install|start|status|logs|stop`` round trip, as a user runs it (a real detached legacy)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _timing import S

from parity.legacy.process import pid_alive


def parity(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "parity", "legacy", *args], capture_output=True, text=True,
                          env=env, timeout=timeout * S)


def test_install_is_quick_when_done(legacy_installation: Any) -> None:
    proc = parity("install", env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert "legacy already installed: node v24.21.0, openclaw 2026.9.6" in proc.stdout


def test_status_without_a_run_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "PARITY_LEGACY_RUN_DIR": str(tmp_path)}
    proc = parity("status", env=env)
    assert proc.returncode == 1 and "legacy: not started" in proc.stdout
    logs = parity("logs", env=env)
    assert logs.returncode == 1 and "no detached legacy recorded" in logs.stderr


@pytest.mark.slow
def test_start_status_logs_stop_round_trip(tmp_path: Path, legacy_installation: Any) -> None:
    env = {**os.environ, "PARITY_LEGACY_RUN_DIR": str(tmp_path)}
    started = parity("start", "--auth", "password", env=env, timeout=240)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "ready after" in started.stdout
        current = json.loads((tmp_path / "current.json").read_text())
        secrets_file = Path(current["secrets_file"])
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        password = json.loads(secrets_file.read_text())["password"]
        assert password and password not in started.stdout + started.stderr
        assert password not in (tmp_path / "current.json").read_text()

        status = parity("status", "--json", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        facts = json.loads(status.stdout)
        assert facts["ready"] is True and facts["running"] is True and facts["auth"] == "password"
        assert facts["containment"].startswith(("netns", "guard only"))
        assert password not in status.stdout
        shown = parity("status", "--show-secrets", env=env)
        assert f"password={password}" in shown.stdout

        again = parity("start", env=env)
        assert again.returncode == 1 and "already runs" in again.stderr

        logs = parity("logs", "-n", "5", env=env)
        assert logs.returncode == 0 and "[gateway]" in logs.stdout
        assert len(logs.stdout.strip().splitlines()) <= 6  # header + 5
    finally:
        stopped = parity("stop", env=env, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped pid" in stopped.stdout
    assert not pid_alive(int(current["pid"])) and not pid_alive(int(current["fake_model_pid"]))
    assert not (tmp_path / "current.json").exists()
    guard = Path(current["guard_log"])
    lines = guard.read_text().splitlines() if guard.exists() else []
    assert all(line == "BLOCKED dns.promises.lookup clawhub.ai" for line in lines), lines
    assert parity("status", env=env).returncode == 1
