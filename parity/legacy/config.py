"""The offline ``openclaw.json`` writer and the environment block of one contained legacy run.

Owns ``RunLayout`` (where a run keeps its state, home, tmp, workspace and logs), ``build_config`` (reference
section 1.4: local mode, loopback bind, token or password auth, hooks, ``/v1`` endpoints, no discovery, no update
checks, no catalog refresh, the ``fakellm`` provider, no cron), ``deep_merge`` for overrides, ``build_env``
(section 1.3/1.10) and ``new_secret``. Imports only the standard library and ``wire.errors``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wire.errors import ConfigError

GUARD_PATH = Path(__file__).with_name("guard.cjs")
GUARD_LOG_ENV = "PARITY_GUARD_LOG"
#: The only guard line a healthy boot produces (reference section 1.5).
EXPECTED_GUARD_LINE = "BLOCKED dns.promises.lookup clawhub.ai"
FAKE_MODEL_ID = "fake-model"
FAKE_PROVIDER = "fakellm"


def unexpected_guard_lines(lines: list[str]) -> list[str]:
    """Guard log lines other than the one expected per boot (blank lines ignored): each is a containment finding."""
    return [line for line in lines if line.strip() and line != EXPECTED_GUARD_LINE]


def new_secret() -> str:
    """A random 48-hex-character secret, the shape of OpenClaw's generated tokens."""
    return secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class RunLayout:
    """Every path of one legacy run, all under ``run_dir``."""

    run_dir: Path

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "state"

    @property
    def home(self) -> Path:
        return self.run_dir / "home"

    @property
    def tmp(self) -> Path:
        return self.run_dir / "tmp"

    @property
    def workspace(self) -> Path:
        return self.run_dir / "workspace"

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.state_dir / "openclaw.json"

    @property
    def gateway_log(self) -> Path:
        """stdout and stderr of ``openclaw gateway run``."""
        return self.logs / "gateway.log"

    @property
    def openclaw_log(self) -> Path:
        """OpenClaw's own JSON log file (``logging.file``)."""
        return self.logs / "openclaw.log"

    @property
    def guard_log(self) -> Path:
        return self.logs / "guard.log"

    @property
    def secrets_path(self) -> Path:
        return self.run_dir / "secrets.json"

    def create(self) -> None:
        for path in (self.state_dir, self.home, self.tmp, self.workspace, self.logs,
                     self.run_dir / "xdg" / "config", self.run_dir / "xdg" / "cache", self.run_dir / "xdg" / "data",
                     self.run_dir / "xdg" / "state"):
            path.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)


def deep_merge(base: dict[str, Any], override: Mapping[str, Any], _path: str = "") -> dict[str, Any]:
    """A new dict: ``override`` merged into ``base`` recursively; non-dict values replace, ``None`` deletes."""
    out = dict(base)
    for key, value in override.items():
        if not isinstance(key, str):
            raise ConfigError(f"config override key {_path}{key!r} is not a string")
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, f"{_path}{key}.")
        else:
            out[key] = json.loads(json.dumps(value)) if isinstance(value, Mapping | list) else value
    return out


def build_config(
    *,
    port: int,
    model_url: str,
    layout: RunLayout,
    auth: str = "token",
    token: str | None = None,
    password: str | None = None,
    hook_token: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The offline config of reference section 1.4 as a dict; ``overrides`` are deep-merged last."""
    if auth not in ("token", "password"):
        raise ConfigError(f"gateway.auth.mode: expected 'token' or 'password', got {auth!r}")
    if not 0 < port < 65536:
        raise ConfigError(f"gateway.port: {port} is not a TCP port")
    if not model_url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise ConfigError(f"models.providers.{FAKE_PROVIDER}.baseUrl: {model_url!r} is not a loopback http URL")
    auth_block: dict[str, Any] = {"mode": auth}
    if auth == "token":
        auth_block["token"] = token
    else:
        auth_block["password"] = password
    config: dict[str, Any] = {
        "gateway": {
            "mode": "local", "port": port, "bind": "loopback",
            "auth": auth_block,
            "tailscale": {"mode": "off"},
            "http": {"endpoints": {"chatCompletions": {"enabled": True}, "responses": {"enabled": True}}},
        },
        "discovery": {"mdns": {"mode": "off"}},
        "update": {"checkOnStart": False, "auto": {"enabled": False}},
        "models": {
            "catalogRefresh": {"enabled": False},
            "providers": {FAKE_PROVIDER: {
                "baseUrl": model_url.rstrip("/"), "apiKey": "fake-key", "api": "openai-completions",
                "models": [{
                    "id": FAKE_MODEL_ID, "name": "Fake", "reasoning": False, "input": ["text"],
                    "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                    "contextWindow": 32000, "maxTokens": 1024,
                }],
            }},
        },
        "agents": {"defaults": {"model": {"primary": f"{FAKE_PROVIDER}/{FAKE_MODEL_ID}"}}},
        "cron": {"enabled": False},
        "logging": {"file": str(layout.openclaw_log)},
        "hooks": {"enabled": True, "token": hook_token, "path": "/hooks"},
    }
    return deep_merge(config, overrides or {})


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    """Write ``config`` as JSON (valid JSON5) with mode 0600: it holds the gateway secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")
    return path


def build_env(layout: RunLayout, *, node_bin_dir: Path | None = None,
              base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a contained legacy process (gateway or CLI client): every path into the run dir."""
    src = dict(os.environ if base is None else base)
    # Never inherit credentials or a foreign OpenClaw setup from the caller's shell.
    # Proxy variables go too: a proxy on loopback would pass the guard and carry traffic off the machine.
    env = {k: v for k, v in src.items()
           if not k.startswith(("OPENCLAW_", "NODE_", "npm_", "GLOBAL_AGENT_")) and not k.lower().endswith("_proxy")}
    path = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    if node_bin_dir is not None:
        path = f"{node_bin_dir}{os.pathsep}{path}"
    run = layout.run_dir
    env.update({
        "PATH": path,
        "HOME": str(layout.home),
        "OPENCLAW_HOME": str(layout.home),
        "OPENCLAW_STATE_DIR": str(layout.state_dir),
        "OPENCLAW_CONFIG_PATH": str(layout.config_path),
        "OPENCLAW_WORKSPACE_DIR": str(layout.workspace),
        "TMPDIR": str(layout.tmp),
        "XDG_CONFIG_HOME": str(run / "xdg" / "config"),
        "XDG_CACHE_HOME": str(run / "xdg" / "cache"),
        "XDG_DATA_HOME": str(run / "xdg" / "data"),
        "XDG_STATE_HOME": str(run / "xdg" / "state"),
        "OPENCLAW_DISABLE_BONJOUR": "1",
        "OPENCLAW_NO_AUTO_UPDATE": "1",
        "OPENCLAW_SKIP_CHANNELS": "1",
        "OPENCLAW_SKIP_CRON": "1",
        "OPENCLAW_SKIP_GMAIL_WATCHER": "1",
        "OPENCLAW_OFFLINE": "1",
        "OPENCLAW_NO_RESPAWN": "1",
        "OPENCLAW_EXEC_SHELL_SNAPSHOT": "0",
        "DO_NOT_TRACK": "1",
        "NO_COLOR": "1",
        "NODE_OPTIONS": f'--require "{GUARD_PATH}"' if " " in str(GUARD_PATH) else f"--require {GUARD_PATH}",
        GUARD_LOG_ENV: str(layout.guard_log),
    })
    return env
