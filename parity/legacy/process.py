"""Start, wait for and stop one contained legacy gateway process.

Owns ``LegacyOptions`` (what to run), ``LegacyGateway`` (a running legacy: ports, URLs, secrets, paths; ``stop``),
``free_port`` / ``port_is_free`` and the clean-up of the files OpenClaw writes outside its run dir. Imports the
standard library, ``wire.errors`` and the sibling modules ``config``, ``install`` and ``netns``.

Readiness is ``GET /readyz`` 200 (reference section 1.7), never a TCP listen; a process that exits first fails
fast with the last 30 log lines. Stop is SIGTERM, up to 20 s, then SIGKILL to the process group.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire.errors import LegacyError

from . import netns
from .config import RunLayout, build_config, build_env, new_secret, unexpected_guard_lines, write_config
from .install import Installation, find_installation

logger = logging.getLogger(__name__)

READY_TIMEOUT_ENV = "PARITY_LEGACY_READY_TIMEOUT"
DEFAULT_READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0
#: Tries with a freshly picked port when the one we picked was taken before the gateway bound it.
PORT_ATTEMPTS = 3
LOCK_DIR = Path(f"/tmp/openclaw-state-locks-{os.getuid()}")
OPENCLAW_TMP = Path("/tmp/openclaw")

#: Legacies started by this process and not yet stopped; stopped at interpreter exit so none is left orphaned.
_RUNNING: weakref.WeakSet[LegacyGateway] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for gw in list(_RUNNING):
        logger.warning("stopping legacy pid %d left running at exit", gw.pid)
        try:
            gw.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            logger.exception("could not stop legacy pid %d", gw.pid)


def port_is_free(port: int) -> bool:
    """True when ``port`` can be bound on 127.0.0.1 and (if IPv6 works) ::1 — the gateway listens on both."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:  # no ::1 on this host
                continue
            return False
        finally:
            sock.close()
    return True


_HANDED_OUT: set[int] = set()
_HANDED_OUT_LOCK = threading.Lock()


def free_port(attempts: int = 50) -> int:
    """A port free on both loopback addresses (the kernel picks, we bind-test ::1 too).

    Never hands out the same port twice in one process, so legacies started concurrently do not collide.
    """
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        with _HANDED_OUT_LOCK:
            if port in _HANDED_OUT or not port_is_free(port):
                continue
            _HANDED_OUT.add(port)
            return port
    raise LegacyError(f"no free loopback port found in {attempts} attempts")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"<no log at {path}>"


@dataclass(frozen=True, slots=True)
class LegacyOptions:
    """What to run. ``run_dir`` gets a fresh state dir, home, tmp, workspace and logs."""

    run_dir: Path
    model_url: str
    auth: str = "token"
    port: int | None = None
    token: str | None = None
    password: str | None = None
    hook_token: str | None = None
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    ready_timeout: float | None = None
    install_dir: Path | None = None
    extra_args: tuple[str, ...] = ()


class LegacyGateway:
    """One running legacy. Create with ``LegacyGateway.start(options)``; always ``stop()`` it."""

    def __init__(self, *, options: LegacyOptions, installation: Installation, layout: RunLayout, port: int,
                 token: str | None, password: str | None, hook_token: str, process: subprocess.Popen[bytes],
                 created_openclaw_tmp: bool) -> None:
        self.options = options
        self.installation = installation
        self.layout = layout
        self.port = port
        self.auth = options.auth
        self.token = token
        self.password = password
        self.hook_token = hook_token
        self.process = process
        self.pid = process.pid
        self.boot_seconds: float | None = None
        self.returncode: int | None = None
        self._created_openclaw_tmp = created_openclaw_tmp

    # -- paths and URLs -------------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.layout.run_dir

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir

    @property
    def config_path(self) -> Path:
        return self.layout.config_path

    @property
    def log_path(self) -> Path:
        return self.layout.gateway_log

    @property
    def openclaw_log_path(self) -> Path:
        return self.layout.openclaw_log

    @property
    def guard_log_path(self) -> Path:
        return self.layout.guard_log

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The contained environment, for running ``openclaw`` CLI clients against this run (see ``cli_command``)."""
        return build_env(self.layout, node_bin_dir=self.installation.node_bin_dir)

    def cli_command(self, *args: str) -> list[str]:
        """``[node, openclaw.mjs, *args]``; run it with ``env=self.env`` (and pass ``--timeout`` to clients)."""
        return [str(self.installation.node), str(self.installation.entry), *args]

    def run_cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run an ``openclaw`` CLI command contained, against this run's config; text output, never raises on rc.

        Client commands need their own ``--timeout`` too (reference section 6.4); ``timeout`` bounds the process.
        """
        try:
            return subprocess.run(self.cli_command(*args), env=self.env, cwd=self.run_dir, capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise LegacyError(f"openclaw {' '.join(args)} did not finish within {timeout:g} s") from exc

    def secrets(self) -> dict[str, str]:
        """Placeholder name -> secret value, for ``wire.redact.Redactor``."""
        out = {"HOOK_TOKEN": self.hook_token}
        if self.token:
            out["GW_TOKEN"] = self.token
        if self.password:
            out["GW_PASSWORD"] = self.password
        return out

    def guard_lines(self) -> list[str]:
        try:
            return [ln for ln in self.guard_log_path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def unexpected_guard_lines(self) -> list[str]:
        return unexpected_guard_lines(self.guard_lines())

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def __repr__(self) -> str:
        return f"<LegacyGateway pid={self.pid} {self.http_url} run_dir={self.run_dir}>"

    # -- lifecycle --------------------------------------------------------------------------------------------
    @classmethod
    def start(cls, options: LegacyOptions) -> LegacyGateway:
        installation = find_installation(options.install_dir)
        layout = RunLayout(Path(options.run_dir).resolve())
        if layout.config_path.exists():
            raise LegacyError(f"run dir {layout.run_dir} was already used (has {layout.config_path}); "
                              "give every legacy run a fresh run dir")
        if options.port is not None and not port_is_free(options.port):
            raise LegacyError(f"port {options.port} is busy on 127.0.0.1 or ::1: pick another or pass port=None")
        layout.create()
        token = (options.token or new_secret()) if options.auth == "token" else None
        password = (options.password or new_secret()) if options.auth == "password" else None
        hook_token = options.hook_token or new_secret()
        write_config({"token": token, "password": password, "hook_token": hook_token}, layout.secrets_path)
        # A port we picked can be taken by someone else before the gateway binds it (boot takes 15-60 s):
        # then the gateway exits with EADDRINUSE and we retry on another port.
        attempts = 1 if options.port is not None else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = options.port if options.port is not None else free_port()
            log_offset = layout.gateway_log.stat().st_size if layout.gateway_log.exists() else 0
            try:
                return cls._launch(options, installation, layout, port, token, password, hook_token)
            except LegacyError:
                with layout.gateway_log.open("rb") as fh:
                    fh.seek(log_offset)
                    fresh = fh.read().decode(errors="replace")
                if attempt < attempts and "EADDRINUSE" in fresh:
                    logger.warning("port %d was taken before the legacy bound it; retrying on another port", port)
                    continue
                raise
        raise AssertionError("unreachable")

    @classmethod
    def _launch(cls, options: LegacyOptions, installation: Installation, layout: RunLayout, port: int,
                token: str | None, password: str | None, hook_token: str) -> LegacyGateway:
        config = build_config(port=port, model_url=options.model_url, layout=layout, auth=options.auth,
                              token=token, password=password, hook_token=hook_token,
                              overrides=options.config_overrides)
        write_config(config, layout.config_path)
        created_tmp = not OPENCLAW_TMP.exists()
        cmd = [str(installation.node), str(installation.entry), "gateway", "run", "--port", str(port),
               *options.extra_args]
        env = build_env(layout, node_bin_dir=installation.node_bin_dir)
        logger.info("starting legacy on port %d (%s) in %s", port, netns.isolation(), layout.run_dir)
        started = time.monotonic()
        with layout.gateway_log.open("ab") as log:
            try:
                process = subprocess.Popen(cmd, cwd=layout.run_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise LegacyError(f"could not run {installation.node}: {exc}") from exc
        gw = cls(options=options, installation=installation, layout=layout, port=port, token=token,
                 password=password, hook_token=hook_token, process=process, created_openclaw_tmp=created_tmp)
        _RUNNING.add(gw)
        timeout = options.ready_timeout
        if timeout is None:
            timeout = float(os.environ.get(READY_TIMEOUT_ENV) or DEFAULT_READY_TIMEOUT_S)
        try:
            gw._wait_ready(timeout)
        except BaseException:
            gw.stop()
            raise
        gw.boot_seconds = time.monotonic() - started
        logger.info("legacy ready on %s after %.1f s (pid %d)", gw.http_url, gw.boot_seconds, gw.pid)
        return gw

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.http_url}/readyz"
        last = "no answer yet"
        while True:
            code = self.process.poll()
            if code is not None:
                raise LegacyError(f"legacy gateway exited with status {code} before it was ready "
                                  f"(log {self.log_path}); last lines:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(getattr(exc, "reason", exc))
            if time.monotonic() >= deadline:
                raise LegacyError(f"legacy gateway not ready within {timeout:g} s (last /readyz: {last}; "
                                  f"log {self.log_path}); last lines:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL the process group; clean up; return the exit status."""
        if self.returncode is None:
            if self.process.poll() is None:
                try:
                    self.process.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("legacy pid %d ignored SIGTERM for %.0f s; killing its group", self.pid, timeout)
            # Children (spawn broker, sqlite worker) share the group; never leave them behind.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.returncode = self.process.wait(timeout=30)
            wait_group_gone(self.pid)
            self._cleanup_outside_files()
            _RUNNING.discard(self)
        return self.returncode

    def _cleanup_outside_files(self) -> None:
        cleanup_outside_files(self.run_dir, remove_openclaw_tmp=self._created_openclaw_tmp)

    def __enter__(self) -> LegacyGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about this run (for ``current.json`` and reports)."""
        return {"pid": self.pid, "port": self.port, "http_url": self.http_url, "ws_url": self.ws_url,
                "auth": self.auth, "run_dir": str(self.run_dir), "log": str(self.log_path),
                "guard_log": str(self.guard_log_path), "secrets_file": str(self.layout.secrets_path),
                "isolation": netns.isolation()}

    def write_descriptor(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.describe(), indent=2) + "\n")


def cleanup_outside_files(run_dir: Path, *, remove_openclaw_tmp: bool) -> None:
    """Remove this run's lock files under ``/tmp/openclaw-state-locks-<uid>/`` (and ``/tmp/openclaw/`` if ours)."""
    for path in lock_files_for(run_dir):
        path.unlink(missing_ok=True)
    if remove_openclaw_tmp and OPENCLAW_TMP.is_dir() and not _openclaw_processes():
        shutil.rmtree(OPENCLAW_TMP, ignore_errors=True)


def _openclaw_processes() -> list[int]:
    """PIDs of any OpenClaw node process still running (another helper's legacy may share ``/tmp/openclaw``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("openclaw") or b"openclaw.mjs" in cmdline or b"/openclaw/dist/" in cmdline:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop a detached process we started (``parity legacy stop``): SIGTERM, wait, then SIGKILL its group.

    Returns True when it exited on SIGTERM within ``timeout``. The PID must be a session leader we spawned.
    """
    graceful = True
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and not _reaped(pid):
            if time.monotonic() >= deadline:
                graceful = False
                break
            time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    wait_group_gone(pid)
    return graceful


def group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are still running (not zombies), from ``/proc/PID/stat``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):  # state, ppid, pgrp
            found.append(int(entry.name))
    return found


def wait_group_gone(pgid: int, timeout: float = 5.0) -> bool:
    """After ``killpg(SIGKILL)``: wait until no process of the group runs any more (a killed process takes a moment
    to exit, and until then it still holds its files and working directory). False if some outlived ``timeout``."""
    deadline = time.monotonic() + timeout
    while members := group_members(pgid):
        if time.monotonic() >= deadline:
            logger.warning("process group %d: %s still running %.0f s after SIGKILL", pgid, members, timeout)
            return False
        time.sleep(0.02)
    return True


def _reaped(pid: int) -> bool:
    """Reap ``pid`` if it is our exited child (a zombie still answers ``kill 0``)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def legacy_cli(run_dir: Path, install_dir: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """``(argv_prefix, env)`` to run the real ``openclaw`` CLI contained, e.g. as a client of another gateway.

    ``run_dir`` gets a fresh home/state/tmp (no config: pass ``--url`` and ``--token``/``--password``, and
    ``--timeout``). Use: ``subprocess.run([*argv, "gateway", "call", "health", "--url", url, ...], env=env)``.
    """
    installation = find_installation(install_dir)
    layout = RunLayout(Path(run_dir).resolve())
    layout.create()
    return [str(installation.node), str(installation.entry)], build_env(layout,
                                                                         node_bin_dir=installation.node_bin_dir)


def lock_files_for(run_dir: Path) -> list[Path]:
    """The ``/tmp/openclaw-state-locks-<uid>/*.<sha256(db)[:8]>.lock.sqlite`` files of the databases in ``run_dir``."""
    if not LOCK_DIR.is_dir():
        return []
    hashes = set()
    for db in Path(run_dir).rglob("*.sqlite"):
        canonical = str(db.resolve())
        hashes.add(hashlib.sha256(canonical.encode()).hexdigest()[:8])
    return sorted(p for p in LOCK_DIR.glob("*.lock.sqlite") if p.name.split(".")[-3] in hashes)
