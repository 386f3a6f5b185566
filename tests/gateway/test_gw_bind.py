"""Bind-mode resolution and the refusal to bind beyond loopback without auth (reference §5.2, §6.1)."""

from __future__ import annotations

import pytest

from gateway import bind


def test_modes_resolve_like_the_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bind.resolve_bind_host("loopback") == "127.0.0.1"
    assert bind.resolve_bind_host(None) == "127.0.0.1"
    assert bind.resolve_bind_host("lan") == "0.0.0.0"
    assert bind.resolve_bind_host("custom", "127.0.0.1") == "127.0.0.1"
    assert bind.resolve_bind_host("custom", "not-an-ip") == "0.0.0.0"
    assert bind.resolve_bind_host("custom", None) == "0.0.0.0"
    monkeypatch.setattr(bind, "is_container_environment", lambda env=None: False)
    assert bind.resolve_bind_host("auto") == "127.0.0.1"
    assert bind.default_bind_mode("off") == "loopback"
    monkeypatch.setattr(bind, "is_container_environment", lambda env=None: True)
    assert bind.resolve_bind_host("auto") == "0.0.0.0"
    assert bind.default_bind_mode("off") == "auto"
    assert bind.default_bind_mode("serve") == "loopback"
    monkeypatch.setattr(bind, "pick_tailnet_ipv4", lambda: None)
    assert bind.resolve_bind_host("tailnet") == "127.0.0.1"  # no tailnet address: loopback fallback


def test_listen_hosts() -> None:
    hosts = bind.resolve_listen_hosts("127.0.0.1")
    assert hosts[0] == "127.0.0.1" and set(hosts) <= {"127.0.0.1", "::1"}
    assert bind.resolve_listen_hosts("0.0.0.0") == ["0.0.0.0"]
    assert bind.resolve_listen_hosts("10.1.2.3") == ["10.1.2.3", "127.0.0.1"]


def test_refusal_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bind, "is_container_environment", lambda env=None: False)
    assert bind.bind_refusal("loopback", "127.0.0.1", "none", False) is None
    assert bind.bind_refusal("lan", "0.0.0.0", "token", True) is None
    assert bind.bind_refusal("lan", "0.0.0.0", "trusted-proxy", False) is None
    assert bind.bind_refusal("lan", "0.0.0.0", "none", False) == (
        "Refusing to bind gateway to lan without auth.\n"
        "Set gateway.auth.token/password (or OPENCLAW_GATEWAY_TOKEN/OPENCLAW_GATEWAY_PASSWORD) or pass --token/--password.")
    assert bind.is_loopback_host("::ffff:127.0.0.1") and bind.is_loopback_host("[::1]") and not bind.is_loopback_host("0.0.0.0")
