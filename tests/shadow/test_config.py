"""Config: defaults, layering (TOML < env < flags) and errors that name the key path."""

from __future__ import annotations

import argparse

import pytest

from shadow.__main__ import configure, load_config
from shadow.config import Limits, ShadowConfig, parse_cpus
from wire.errors import ConfigError


def test_defaults_and_secrets_not_in_repr() -> None:
    cfg = ShadowConfig.from_mapping({"candidate": {"url": "http://127.0.0.1:1", "token": "s3cret"}})
    assert cfg.mode == "shadow" and cfg.listen == ("127.0.0.1", 18790) and cfg.limits.conn_queue == 256
    assert "s3cret" not in repr(cfg)
    assert cfg.secrets() == {"CAND_GW_TOKEN": "s3cret"}


@pytest.mark.parametrize(("data", "message"), [
    ({"mode": "flip"}, "mode: expected one of"),
    ({"mode": "shadow"}, "candidate.url: required in mode 'shadow'"),
    ({"mode": "passthrough", "listen": "nope"}, "listen: expected host:port"),
    ({"mode": "passthrough", "listen": "127.0.0.1:99999"}, "listen: port out of range"),
    ({"mode": "passthrough", "legacy": {"url": "ftp://x"}}, "legacy.url: expected http(s)://host:port"),
    ({"mode": "passthrough", "limits": {"conn_queue": 0}}, "limits.conn_queue: expected an integer ≥ 1"),
    ({"mode": "passthrough", "limits": {"candidate_timeout": -1}}, "limits.candidate_timeout: must be > 0"),
    ({"mode": "passthrough", "limits": {"bogus": 1}}, "limits.bogus: unknown key"),
    ({"mode": "passthrough", "record": {"sample_rate": 2}}, "record.sample_rate: expected 0..1"),
    ({"mode": "passthrough", "policy": {"chat.send": "maybe"}}, "policy.chat.send: expected one of"),
    ({"mode": "passthrough", "canary": {"percent": 120}}, "canary.percent: expected 0..100"),
    ({"mode": "passthrough", "candidate": {"device_auth": "sso"}}, "candidate.device_auth: expected one of"),
])
def test_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        ShadowConfig.from_mapping(data)


def test_layering_toml_env_flags(tmp_path) -> None:
    toml = tmp_path / "shadow.toml"
    toml.write_text('mode = "shadow"\nlisten = "127.0.0.1:1000"\n[legacy]\nurl = "http://127.0.0.1:2000"\n'
                    '[candidate]\nurl = "http://127.0.0.1:3000"\ntoken = "from-file"\n[limits]\nconn_queue = 7\n')
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--config", str(toml), "--listen", "127.0.0.1:1001"])
    env = {"PARITY_CANDIDATE_TOKEN": "from-env", "PARITY_LISTEN": "127.0.0.1:1002", "PARITY_CANARY_PERCENT": "5"}
    cfg = load_config(args, env)
    assert cfg.listen == ("127.0.0.1", 1001)  # flag beats env beats file
    assert cfg.candidate.token == "from-env"
    assert cfg.canary_percent == 5.0 and cfg.limits.conn_queue == 7
    assert not cfg.limits.mirror_process  # off unless asked for
    cfg = load_config(parser.parse_args(["--config", str(toml), "--mirror-process"]), {})
    assert cfg.limits.mirror_process and cfg.limits.conn_queue == 7  # the flag sets it, the file's limits stay
    assert not cfg.limits.mirror_idle
    cfg = load_config(parser.parse_args(["--config", str(toml), "--mirror-process", "--mirror-idle"]), {})
    assert cfg.limits.mirror_process and cfg.limits.mirror_idle
    with pytest.raises(ConfigError, match="mirror_idle: applies to the mirror process"):
        load_config(parser.parse_args(["--config", str(toml), "--mirror-idle"]), {})
    cfg = load_config(parser.parse_args(["--config", str(toml), "--mirror-process", "--mirror-cpus", "1"]),
                      {"PARITY_MIRROR_CPUS": "0"})
    assert cfg.limits.mirror_cpus == "1"  # the flag beats the env
    cfg = load_config(parser.parse_args(["--config", str(toml), "--mirror-process"]), {"PARITY_MIRROR_CPUS": "0-1"})
    assert cfg.limits.mirror_cpus == "0-1" and not Limits().mirror_cpus  # unpinned unless asked for
    bad = tmp_path / "bad.toml"
    bad.write_text("mode = \n")
    with pytest.raises(ConfigError, match="--config: .*bad.toml"):
        load_config(parser.parse_args(["--config", str(bad)]), {})


def test_cpu_lists_parse_like_linux() -> None:
    assert parse_cpus("", "k") == frozenset()
    assert parse_cpus("3", "k") == {3}
    assert parse_cpus("0, 2-4,7", "k") == {0, 2, 3, 4, 7}
    assert parse_cpus("1-1", "k") == {1}
