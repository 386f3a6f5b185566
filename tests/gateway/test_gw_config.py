"""The config load pipeline and precedence rules (reference §5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import CliOverrides, ConfigInvalidError, load_config, resolve_gateway_config, resolve_paths
from wire.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_follow_the_legacy_env_vars(tmp_path: Path) -> None:
    assert resolve_paths({"HOME": str(tmp_path)}) == (tmp_path / ".openclaw", tmp_path / ".openclaw" / "openclaw.json")
    assert resolve_paths({"HOME": "/x", "OPENCLAW_HOME": str(tmp_path)})[0] == tmp_path / ".openclaw"
    state, cfg = resolve_paths({"OPENCLAW_STATE_DIR": str(tmp_path / "s"), "OPENCLAW_CONFIG_PATH": str(tmp_path / "c.json")})
    assert (state, cfg) == (tmp_path / "s", tmp_path / "c.json")


def test_json5_include_merge_env_block_and_substitution(tmp_path: Path) -> None:
    write(tmp_path / "parts" / "models.json5", "{ models: { providers: { p: { baseUrl: 'http://x/${HOST_PART}', models: [{id: 'a'}] } } }, list: [1] }")
    write(tmp_path / "parts" / "more.json5", "{ list: [2], gateway: { port: 1111 } }")
    cfg = write(tmp_path / "openclaw.json", """{
      // JSON5: comments, unquoted keys, trailing commas
      $include: ['parts/models.json5', 'parts/more.json5'],
      env: { vars: { HOST_PART: 'from-block', KEEP: 'block' }, PLAIN: 'plain-value' },
      gateway: { port: 2222, auth: { token: '${TOKEN_VAR}' }, customBindHost: '$${NOT_A_VAR}' },
      hooks: { path: '${MISSING_VAR}/x' },
    }""")
    env = {"TOKEN_VAR": "tok-from-env", "KEEP": "process"}
    loaded = load_config(cfg, env)
    d = loaded.data
    assert d["gateway"]["port"] == 2222  # the including file's scalars win
    assert d["list"] == [1, 2]  # arrays concatenate across includes
    assert d["models"]["providers"]["p"]["baseUrl"] == "http://x/from-block"
    assert d["gateway"]["auth"]["token"] == "tok-from-env"
    assert d["gateway"]["customBindHost"] == "${NOT_A_VAR}"  # $${VAR} escapes
    assert d["hooks"]["path"] == "${MISSING_VAR}/x"  # a missing variable stays unresolved ...
    assert any("MISSING_VAR" in w for w in loaded.warnings)  # ... with a warning
    assert env["KEEP"] == "process" and env["PLAIN"] == "plain-value"  # the env block never overrides
    assert len(loaded.included_paths) == 2


def test_include_cycles_and_depth_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "a.json5", "{ $include: 'b.json5' }")
    write(tmp_path / "b.json5", "{ $include: 'a.json5' }")
    with pytest.raises(ConfigError, match="Circular include detected"):
        load_config(tmp_path / "a.json5", {})
    for i in range(12):
        write(tmp_path / f"d{i}.json5", f"{{ $include: 'd{i + 1}.json5' }}")
    write(tmp_path / "d12.json5", "{}")
    with pytest.raises(ConfigError, match="depth exceeds 10"):
        load_config(tmp_path / "d0.json5", {})


def test_parse_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"openclaw\.json: JSON5 parse failed"):
        load_config(write(tmp_path / "openclaw.json", "{ gateway: "), {})


def test_validation_paths_unknown_keys_and_not_implemented(tmp_path: Path) -> None:
    cfg = write(tmp_path / "openclaw.json", """{
      gateway: { port: 'x', bind: 'everywhere', bogus: 1, auth: { mode: 'token', rateLimit: { maxAttempts: 'many' } } },
      nonsense: true,
      channels: { telegram: {} },
      talk: {},
    }""")
    loaded = load_config(cfg, {})
    rendered = [i.render() for i in loaded.issues]
    assert 'gateway: Unrecognized key: "bogus"' in rendered
    assert '<root>: Unrecognized key: "nonsense"' in rendered
    assert "gateway.port: Invalid input: expected number, received string" in rendered
    assert 'gateway.bind: Invalid option: expected one of "auto"|"lan"|"loopback"|"custom"|"tailnet"' in rendered
    assert "gateway.auth.rateLimit.maxAttempts: Invalid input: expected number, received string" in rendered
    assert {"channels", "talk"} <= set(loaded.not_implemented)
    with pytest.raises(ConfigInvalidError, match="OpenClaw config is invalid"):
        resolve_gateway_config(loaded, env={})


def test_missing_file_is_empty_config_with_defaults(tmp_path: Path) -> None:
    loaded = load_config(tmp_path / "none.json", {})
    assert not loaded.exists and loaded.data == {}
    cfg = resolve_gateway_config(loaded, env={"OPENCLAW_STATE_DIR": str(tmp_path)})
    assert (cfg.port, cfg.bind, cfg.auth.mode) == (18789, "loopback", "token")


def test_port_env_first_and_secrets_config_first(tmp_path: Path) -> None:
    cfg = write(tmp_path / "openclaw.json", "{ gateway: { port: 1000, auth: { token: 'cfg-token' } } }")
    env = {"OPENCLAW_GATEWAY_PORT": "2000", "OPENCLAW_GATEWAY_TOKEN": "env-token", "OPENCLAW_GATEWAY_PASSWORD": "env-pw"}
    loaded = load_config(cfg, dict(env))
    resolved = resolve_gateway_config(loaded, env=env)
    assert resolved.port == 2000  # env beats config
    assert resolved.auth.token == "cfg-token"  # config beats env
    assert resolved.auth.mode == "password"  # finalizeResolvedGatewayAuth: any password (env too) infers password
    flagged = resolve_gateway_config(loaded, CliOverrides(port=3000, token="flag-token"), env=env)
    assert (flagged.port, flagged.auth.token) == (3000, "flag-token")
    bare = resolve_gateway_config(load_config(tmp_path / "absent.json", {}), env={"OPENCLAW_GATEWAY_PASSWORD": "p"})
    assert bare.auth.mode == "password" and bare.auth.password == "p"  # password present -> password mode
    assert "cfg-token" not in repr(resolved) and "cfg-token" not in repr(resolved.auth)
