"""Starting, readiness, stop and clean-up of the real contained legacy; the session ``legacy`` fixture itself."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from _timing import S

from parity.legacy import EXPECTED_GUARD_LINE, FakeModelServer, LegacyGateway, LegacyOptions
from parity.legacy.process import (
    free_port,
    group_members,
    lock_files_for,
    pid_alive,
    port_is_free,
    stop_pid,
)
from wire.errors import LegacyError


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30 * S) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _post(url: str, body: object, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        # The first agent turn prepares the workspace and tool catalog: 13-25 s on 2 idle cores, much more under load.
        with urllib.request.urlopen(req, timeout=240 * S) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- ports (no legacy needed) ---------------------------------------------------------------------------------------

def test_free_port_is_free_on_both_loopbacks() -> None:
    port = free_port()
    assert port_is_free(port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert not port_is_free(port)
    assert port_is_free(port)


def test_port_taken_only_on_ipv6_loopback_is_busy() -> None:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this host: {exc}")
    with sock:
        assert not port_is_free(int(sock.getsockname()[1]))


def test_busy_port_is_a_clear_error_and_starts_nothing(tmp_path: Path, fake_model: FakeModelServer,
                                                       legacy_installation: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = int(sock.getsockname()[1])
        with pytest.raises(LegacyError, match=f"port {port} is busy"):
            LegacyGateway.start(LegacyOptions(run_dir=tmp_path / "run", model_url=fake_model.url, port=port))
    assert not (tmp_path / "run" / "logs" / "gateway.log").exists()


# -- the session legacy -----------------------------------------------------------------------------------------

def test_session_legacy_is_ready_and_described(legacy: LegacyGateway) -> None:
    assert legacy.is_running()
    assert legacy.ws_url == f"ws://127.0.0.1:{legacy.port}" and legacy.http_url == f"http://127.0.0.1:{legacy.port}"
    status, ready = _get(f"{legacy.http_url}/readyz")
    assert status == 200 and ready["ready"] is True
    assert _get(f"{legacy.http_url}/healthz") == (200, {"ok": True, "status": "live"})
    assert legacy.auth == "token" and legacy.password is None
    assert len(legacy.token or "") == 48 and len(legacy.hook_token) == 48 and legacy.token != legacy.hook_token
    assert legacy.secrets() == {"GW_TOKEN": legacy.token, "HOOK_TOKEN": legacy.hook_token}
    assert stat.S_IMODE(legacy.config_path.stat().st_mode) == 0o600
    config = json.loads(legacy.config_path.read_text())
    assert config["gateway"]["port"] == legacy.port and config["gateway"]["auth"]["token"] == legacy.token
    assert legacy.state_dir == legacy.config_path.parent
    assert all(line == EXPECTED_GUARD_LINE for line in legacy.guard_lines())
    assert legacy.token not in legacy.log_path.read_text()


def test_session_legacy_runs_agent_turns_on_the_fake_model(legacy: LegacyGateway, fake_model: FakeModelServer) -> None:
    assert legacy.token is not None
    before = fake_model.request_count("POST /v1/chat/completions")
    status, body = _post(f"{legacy.http_url}/v1/chat/completions",
                         {"model": "openclaw", "messages": [{"role": "user", "content": "ping"}]}, legacy.token)
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "PONG from fake model"
    assert fake_model.request_count("POST /v1/chat/completions") > before
    status, _ = _post(f"{legacy.http_url}/v1/chat/completions", {"model": "openclaw", "messages": []}, "wrong")
    assert status == 401


def test_contained_cli_client_talks_to_the_session_legacy(legacy: LegacyGateway) -> None:
    assert legacy.token is not None
    ok = legacy.run_cli("gateway", "call", "health", "--url", legacy.ws_url, "--token", legacy.token, "--json",
                        "--timeout", "60000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad = legacy.run_cli("gateway", "call", "health", "--url", legacy.ws_url, "--token", "0" * 48, "--json",
                         "--timeout", "60000")
    assert bad.returncode == 1
    assert "AUTH_TOKEN_MISMATCH" in bad.stdout


# -- dedicated boots: full lifecycle, early exit, timeout ------------------------------------------------------------

@pytest.mark.slow
def test_password_legacy_boots_stops_cleanly_and_cleans_up(tmp_path: Path, fake_model: FakeModelServer,
                                                          legacy_installation: Any) -> None:
    gw = LegacyGateway.start(LegacyOptions(run_dir=tmp_path / "pw", model_url=fake_model.url, auth="password"))
    try:
        assert gw.token is None and gw.password and gw.secrets() == {"GW_PASSWORD": gw.password,
                                                                     "HOOK_TOKEN": gw.hook_token}
        assert _get(f"{gw.http_url}/readyz")[0] == 200
        assert _get(f"{gw.http_url}/v1/models", {"Authorization": f"Bearer {gw.password}"})[0] == 200
        assert _get(f"{gw.http_url}/v1/models", {"Authorization": "Bearer wrong"})[0] == 401
        locks = lock_files_for(gw.run_dir)
        assert locks, "OpenClaw writes per-database lock files under /tmp/openclaw-state-locks-<uid>/"
    finally:
        rc = gw.stop()
    assert rc == 0, gw.log_tail()
    assert not pid_alive(gw.pid) and not _group_alive(gw.pid)
    assert not any(path.exists() for path in locks)
    assert "received SIGTERM" in gw.log_path.read_text()
    assert gw.unexpected_guard_lines() == []
    assert gw.stop() == 0  # idempotent


def test_gateway_that_exits_early_fails_fast_with_its_log(tmp_path: Path, fake_model: FakeModelServer,
                                                         legacy_installation: Any) -> None:
    with pytest.raises(LegacyError) as err:
        LegacyGateway.start(LegacyOptions(run_dir=tmp_path / "bad", model_url=fake_model.url, ready_timeout=170 * S,
                                          config_overrides={"gateway": {"bind": "everywhere"}}))
    message = str(err.value)
    assert "exited with status" in message and "before it was ready" in message
    assert "last lines:" in message and "bind" in message
    assert not lock_files_for(tmp_path / "bad")


def test_boot_timeout_is_an_error_with_log_lines_and_kills_the_gateway(tmp_path: Path, fake_model: FakeModelServer,
                                                                       legacy_installation: Any) -> None:
    with pytest.raises(LegacyError) as err:
        LegacyGateway.start(LegacyOptions(run_dir=tmp_path / "slow", model_url=fake_model.url, ready_timeout=2.0))
    message = str(err.value)
    assert "not ready within 2 s" in message and "last lines:" in message
    assert str(tmp_path / "slow" / "logs" / "gateway.log") in message
    # The half-booted gateway and its children are gone (stop() ran), and nothing is left in the lock dir.
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    for pid in pids:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        assert cwd != str((tmp_path / "slow").resolve()), f"pid {pid} of the timed-out run is still alive"
    assert not lock_files_for(tmp_path / "slow")



# a session leader whose child ignores SIGTERM and holds 400 MB (freeing them takes the kernel a moment after SIGKILL,
# as a killed Node gateway's heap does); both sleep
GROUP = r"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "held = b'x' * (400 << 20)\nprint('held', flush=True)\ntime.sleep(60)"], stdout=sys.stdout)
time.sleep(60)
"""


def test_stopping_a_group_returns_once_every_member_is_gone() -> None:
    """stop_pid returns only when no process of the group runs any more: a killed process takes a moment to exit,
    and until then it still holds its working directory and files."""
    leader = subprocess.Popen([sys.executable, "-c", GROUP], start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "held"
        members = group_members(leader.pid)
        assert leader.pid in members and len(members) == 2, members
        assert stop_pid(leader.pid, timeout=5.0)  # the leader exits on SIGTERM; its child needs the SIGKILL
        assert group_members(leader.pid) == []
    finally:
        leader.kill()
        leader.wait(10)


def test_legacy_b_is_an_independent_second_legacy(legacy: LegacyGateway, legacy_b: LegacyGateway) -> None:
    assert legacy_b.is_running() and legacy.is_running()
    assert legacy_b.port != legacy.port and legacy_b.pid != legacy.pid
    assert legacy_b.token != legacy.token and legacy_b.hook_token != legacy.hook_token
    assert legacy_b.state_dir != legacy.state_dir
    assert _get(f"{legacy_b.http_url}/readyz")[0] == 200
    assert legacy_b.token is not None and legacy.token is not None
    # Each accepts only its own token.
    assert _get(f"{legacy_b.http_url}/v1/models", {"Authorization": f"Bearer {legacy_b.token}"})[0] == 200
    assert _get(f"{legacy_b.http_url}/v1/models", {"Authorization": f"Bearer {legacy.token}"})[0] == 401
