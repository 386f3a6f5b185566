"""Root fixtures: the fake model server and the real, contained OpenClaw legacy gateway (booted once per session).

Fixtures (all session-scoped):
- ``fake_model``: ``parity.legacy.FakeModelServer`` on 127.0.0.1; ``.url`` ("http://127.0.0.1:P/v1"), ``.port``,
  ``.reply_text`` ("PONG from fake model"), ``.counts()`` / ``.request_count(key)`` ("POST /v1/chat/completions").
- ``legacy``: ``parity.legacy.LegacyGateway`` with token auth, booted on first use (13-60 s). Attributes: ``port``,
  ``ws_url`` ("ws://127.0.0.1:P"), ``http_url``, ``token``, ``password`` (None), ``hook_token``, ``auth``,
  ``state_dir``, ``run_dir``, ``config_path``, ``log_path`` (gateway stdout/stderr), ``openclaw_log_path``,
  ``guard_log_path``, ``pid``, ``boot_seconds``, ``env`` (contained env for CLI clients),
  ``secrets()`` -> {"GW_TOKEN", "HOOK_TOKEN"} for ``wire.redact.Redactor``, ``guard_lines()``,
  ``run_cli(*args, timeout=)`` (contained ``openclaw`` CLI; pass ``--timeout`` to client commands too).
- ``legacy_b``: a second, independent legacy (own port, state and secrets; same fake model), booted lazily.
- ``legacy_factory``: ``legacy_factory(auth="password", config_overrides={...}, name="pw")`` boots more legacies
  (e.g. password auth); each is stopped at session end and guard-checked like the others.
- ``legacy_installation``: the verified ``parity.legacy.Installation`` (``.node``, ``.entry``, ``.root``).
Every test using one of these legacy fixtures (tests that boot their own legacy request ``legacy_installation``)
is marked ``legacy`` automatically (``-m "not legacy"`` deselects them) and, unless it sets its own, gets a 480 s
pytest-timeout (fixture setup, i.e. the boot, counts toward it). Timeouts: ``from _timing import MS, S`` (scaled by
``PARITY_TEST_TIMEOUT_FACTOR``). Extra legacies go through ``legacy_factory`` so they are stopped and guard-checked.

At session end every legacy is stopped and its guard log must hold only ``BLOCKED dns.promises.lookup
clawhub.ai`` lines: anything else fails the run (exit status 1, listed in the summary) - a new line means the
legacy tried a new outbound call. Options: ``--update-golden`` (rewrite golden files instead of comparing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from _timing import FACTOR

from parity.legacy import EXPECTED_GUARD_LINE, FakeModelServer, LegacyGateway, LegacyOptions
from parity.legacy.install import find_installation, install
from parity.legacy.netns import describe as describe_isolation
from wire.errors import LegacyError

LEGACY_FIXTURES = frozenset({"legacy", "legacy_b", "legacy_factory", "legacy_installation"})
#: Per-test hang guard for tests using a legacy fixture: the usual 300 s plus the boot deadline.
LEGACY_TEST_TIMEOUT_S = int((300 + 180) * FACTOR)

#: Every legacy booted by these fixtures in this session, in boot order: (name, gateway).
_BOOTED: list[tuple[str, LegacyGateway]] = []
_GUARD_FAILURES: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files (traces, expected outputs) instead of comparing against them")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if LEGACY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.legacy)
            # pytest-timeout counts fixture setup: the test that boots a legacy (up to 180 s) gets that on top.
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(LEGACY_TEST_TIMEOUT_S))


def pytest_report_header(config: pytest.Config) -> str:
    return f"legacy containment: {describe_isolation()}"


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def fake_model() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def legacy_installation() -> Any:
    """The verified pinned install under ``.cache/legacy`` (installed now if missing; fails with the reason)."""
    try:
        return find_installation()
    except LegacyError:
        try:
            return install(progress=lambda msg: print(f"[legacy install] {msg}"))
        except LegacyError as exc:
            pytest.fail(f"the legacy gateway is not installed and could not be installed: {exc}", pytrace=False)


def _stop_and_check(name: str, gw: LegacyGateway) -> None:
    try:
        rc = gw.stop()
    except Exception as exc:  # noqa: BLE001 - report, keep stopping the others
        _GUARD_FAILURES.append(f"legacy {name} (pid {gw.pid}) could not be stopped: {exc}")
        return
    bad = gw.unexpected_guard_lines()
    if bad:
        _GUARD_FAILURES.append(f"legacy {name} guard log {gw.guard_log_path} has unexpected lines "
                               f"(only {EXPECTED_GUARD_LINE!r} is allowed): {bad}")
    if rc not in (0, None):
        print(f"legacy {name} (pid {gw.pid}) exited with status {rc}; log {gw.log_path}")


@pytest.fixture(scope="session")
def legacy_factory(
    tmp_path_factory: pytest.TempPathFactory, fake_model: FakeModelServer, legacy_installation: Any
) -> Iterator[Callable[..., LegacyGateway]]:
    """Boot an extra contained legacy: ``legacy_factory(name="pw", auth="password", config_overrides={...})``."""
    mine: list[tuple[str, LegacyGateway]] = []

    def boot(name: str = "extra", *, auth: str = "token", config_overrides: Mapping[str, Any] | None = None,
             **options: Any) -> LegacyGateway:
        run_dir = tmp_path_factory.mktemp(f"legacy-{name}")
        try:
            gw = LegacyGateway.start(LegacyOptions(run_dir=Path(run_dir), model_url=fake_model.url, auth=auth,
                                                   config_overrides=dict(config_overrides or {}),
                                                   install_dir=legacy_installation.root, **options))
        except LegacyError as exc:
            pytest.fail(f"legacy {name} did not boot: {exc}", pytrace=False)
        mine.append((name, gw))
        _BOOTED.append((name, gw))
        return gw

    try:
        yield boot
    finally:
        for name, gw in reversed(mine):
            _stop_and_check(name, gw)


@pytest.fixture(scope="session")
def legacy(legacy_factory: Callable[..., LegacyGateway]) -> LegacyGateway:
    """The real contained OpenClaw legacy gateway, token auth, booted once per session."""
    return legacy_factory("a")


@pytest.fixture(scope="session")
def legacy_pw(legacy_factory: Callable[..., LegacyGateway]) -> LegacyGateway:
    """A password-mode legacy for replaying the pw-* golden traces (recorded in password mode), booted on first use.
    Replaying them against the token-mode ``legacy`` fails their connect, and whether the frame sent after that
    failure still leaves before the server's close is a race: A/A noise of the wrong set-up, not of the legacy."""
    return legacy_factory("pw", auth="password")


@pytest.fixture(scope="session")
def legacy_b(legacy_factory: Callable[..., LegacyGateway]) -> LegacyGateway:
    """A second, independent legacy (A/A runs, or a stand-in candidate), booted on first use."""
    return legacy_factory("b")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Session fixtures are torn down before this hook; stop anything a crash left running all the same.
    for name, gw in _BOOTED:
        if gw.returncode is None:
            _stop_and_check(name, gw)
    if _GUARD_FAILURES and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _BOOTED:
        terminalreporter.write_sep("-", "legacy gateways")
        for name, gw in _BOOTED:
            boot = f"{gw.boot_seconds:.1f} s" if gw.boot_seconds is not None else "?"
            terminalreporter.write_line(f"legacy {name}: port {gw.port}, boot {boot}, exit {gw.returncode}, "
                                        f"guard lines {len(gw.guard_lines())}, {describe_isolation()}")
    for failure in _GUARD_FAILURES:
        terminalreporter.write_line(f"LEGACY CONTAINMENT FAILURE: {failure}", red=True, bold=True)
