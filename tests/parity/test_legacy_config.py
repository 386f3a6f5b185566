"""The offline config writer and env block, checked by hand and by the real ``openclaw config validate``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _timing import S

from parity.legacy.config import (
    EXPECTED_GUARD_LINE,
    GUARD_PATH,
    RunLayout,
    build_config,
    build_env,
    deep_merge,
    new_secret,
    unexpected_guard_lines,
    write_config,
)
from parity.legacy.install import Installation, find_installation
from wire.errors import ConfigError, LegacyError

MODEL_URL = "http://127.0.0.1:18790/v1"


def _config(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    kw.setdefault("token", "t" * 48)
    return build_config(port=18789, model_url=MODEL_URL, layout=RunLayout(tmp_path), hook_token="h" * 48, **kw)


def test_token_config_is_the_offline_loopback_config(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    gw = cfg["gateway"]
    assert (gw["mode"], gw["port"], gw["bind"]) == ("local", 18789, "loopback")
    assert gw["auth"] == {"mode": "token", "token": "t" * 48}
    assert gw["http"]["endpoints"] == {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}
    assert cfg["discovery"] == {"mdns": {"mode": "off"}}
    assert cfg["update"] == {"checkOnStart": False, "auto": {"enabled": False}}
    assert cfg["models"]["catalogRefresh"] == {"enabled": False}
    assert cfg["models"]["providers"]["fakellm"]["baseUrl"] == MODEL_URL
    assert cfg["agents"]["defaults"]["model"]["primary"] == "fakellm/fake-model"
    assert cfg["cron"] == {"enabled": False}
    assert cfg["logging"]["file"] == str(tmp_path / "logs" / "openclaw.log")
    assert cfg["hooks"] == {"enabled": True, "token": "h" * 48, "path": "/hooks"}


def test_password_mode_carries_no_token(tmp_path: Path) -> None:
    cfg = _config(tmp_path, auth="password", token=None, password="p" * 48)
    assert cfg["gateway"]["auth"] == {"mode": "password", "password": "p" * 48}


def test_overrides_deep_merge_and_none_deletes(tmp_path: Path) -> None:
    cfg = _config(tmp_path, overrides={"gateway": {"auth": {"rateLimit": {"maxAttempts": 3}}, "tailscale": None},
                                       "hooks": {"path": "/h2"}})
    assert cfg["gateway"]["auth"] == {"mode": "token", "token": "t" * 48, "rateLimit": {"maxAttempts": 3}}
    assert "tailscale" not in cfg["gateway"] and cfg["gateway"]["bind"] == "loopback"
    assert cfg["hooks"]["path"] == "/h2" and cfg["hooks"]["enabled"] is True
    base = {"a": {"b": [1]}}
    merged = deep_merge(base, {"a": {"c": 2}})
    assert merged == {"a": {"b": [1], "c": 2}} and base == {"a": {"b": [1]}}


@pytest.mark.parametrize(("kwargs", "where"), [
    ({"auth": "none"}, "gateway.auth.mode"),
    ({"port": 0}, "gateway.port"),
    ({"model_url": "https://api.openai.com/v1"}, "models.providers.fakellm.baseUrl"),
])
def test_bad_input_is_a_config_error_naming_the_key(tmp_path: Path, kwargs: dict[str, Any], where: str) -> None:
    args: dict[str, Any] = {"port": 18789, "model_url": MODEL_URL, "layout": RunLayout(tmp_path), "token": "x"}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        build_config(**args)


def test_written_config_is_private(tmp_path: Path) -> None:
    path = write_config({"a": 1}, tmp_path / "state" / "openclaw.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"a": 1}


def test_env_points_everything_into_the_run_dir(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    env = build_env(layout, node_bin_dir=Path("/opt/node/bin"),
                    base={"PATH": "/usr/bin", "OPENCLAW_GATEWAY_TOKEN": "leak", "NODE_OPTIONS": "--inspect", "LANG": "C",
                          "HTTPS_PROXY": "http://127.0.0.1:3128", "all_proxy": "socks5://127.0.0.1:1080"})
    assert env["PATH"] == "/opt/node/bin:/usr/bin" and env["LANG"] == "C"
    assert "OPENCLAW_GATEWAY_TOKEN" not in env
    assert "HTTPS_PROXY" not in env and "all_proxy" not in env  # a loopback proxy would tunnel past the guard
    assert env["NODE_OPTIONS"] == f"--require {GUARD_PATH}"
    assert env["PARITY_GUARD_LOG"] == str(layout.guard_log)
    for key in ("HOME", "OPENCLAW_STATE_DIR", "TMPDIR", "OPENCLAW_WORKSPACE_DIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        assert env[key].startswith(str(tmp_path)), key
    for key in ("OPENCLAW_DISABLE_BONJOUR", "OPENCLAW_NO_AUTO_UPDATE", "OPENCLAW_SKIP_CHANNELS", "OPENCLAW_SKIP_CRON",
                "OPENCLAW_SKIP_GMAIL_WATCHER", "OPENCLAW_OFFLINE", "OPENCLAW_NO_RESPAWN", "DO_NOT_TRACK"):
        assert env[key] == "1", key
    assert env["OPENCLAW_EXEC_SHELL_SNAPSHOT"] == "0"


def test_secrets_are_48_hex_and_random() -> None:
    a, b = new_secret(), new_secret()
    assert len(a) == 48 and int(a, 16) >= 0 and a != b


def test_only_the_clawhub_lookup_is_an_expected_guard_line() -> None:
    assert unexpected_guard_lines([EXPECTED_GUARD_LINE, EXPECTED_GUARD_LINE, ""]) == []
    assert unexpected_guard_lines([EXPECTED_GUARD_LINE, "BLOCKED net.connect 1.2.3.4:443"]) == [
        "BLOCKED net.connect 1.2.3.4:443"]


# -- the real validator ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def installation() -> Installation:
    try:
        return find_installation()
    except LegacyError as exc:
        pytest.fail(f"the legacy install is needed to validate configs: {exc}", pytrace=False)


def _validate(inst: Installation, tmp_path: Path, cfg: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    layout = RunLayout(tmp_path)
    layout.create()
    write_config(cfg, layout.config_path)
    env = build_env(layout, node_bin_dir=inst.node_bin_dir, base={"PATH": os.environ.get("PATH", "/usr/bin")})
    proc = subprocess.run([str(inst.node), str(inst.entry), "config", "validate"], env=env, capture_output=True,
                          text=True, timeout=120 * S, cwd=tmp_path)
    lines = layout.guard_log.read_text().splitlines() if layout.guard_log.exists() else []
    assert unexpected_guard_lines(lines) == [], lines
    return proc


@pytest.mark.parametrize("auth", ["token", "password"])
def test_real_openclaw_validates_the_written_config(installation: Installation, tmp_path: Path, auth: str) -> None:
    cfg = _config(tmp_path, auth=auth, token=new_secret() if auth == "token" else None,
                  password=new_secret() if auth == "password" else None)
    proc = _validate(installation, tmp_path, cfg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Config valid" in proc.stdout + proc.stderr


def test_real_openclaw_rejects_a_bad_override(installation: Installation, tmp_path: Path) -> None:
    # Control for the test above: the validator is real and does look at what we wrote.
    cfg = _config(tmp_path, overrides={"gateway": {"bind": "everywhere"}})
    proc = _validate(installation, tmp_path, cfg)
    assert proc.returncode != 0
    assert "bind" in proc.stdout + proc.stderr
