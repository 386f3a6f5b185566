"""``parity legacy install|start|stop|status|logs``: the contained legacy gateway from the command line.

Owns the argparse wiring and the detached-run descriptor ``.cache/legacy/run/current.json`` (pids, ports, paths
and the path of the 0600 secrets file; never a secret). Imports the sibling modules and ``wire.errors``.

``start`` runs the gateway (and, unless ``--model-url`` is given, a fake model server) detached, each in its own
session, so they outlive the command. Containment is the Node preload guard, plus the network namespace when the
command itself runs inside ``scripts/contained`` (then ``status``/``stop`` must run inside the same namespace).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from wire.errors import LegacyError

from . import netns
from .install import default_dir, install
from .process import LegacyGateway, LegacyOptions, cleanup_outside_files, free_port, pid_alive, stop_pid, tail

#: ``PARITY_LEGACY_RUN_DIR`` moves the detached runs and ``current.json`` (default ``.cache/legacy/run``).
RUN_DIR_ENV = "PARITY_LEGACY_RUN_DIR"


def _run_root() -> Path:
    return Path(os.environ.get(RUN_DIR_ENV) or default_dir() / "run")


def _current_path() -> Path:
    return _run_root() / "current.json"


def _say(msg: str) -> None:
    print(f"[legacy] {msg}", flush=True)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="legacy_command", metavar="<action>", required=True)
    p = sub.add_parser("install", help="install Node 24 and openclaw 2026.9.6 under .cache/legacy (idempotent)")
    p.add_argument("--force", action="store_true", help="reinstall even when the stamp matches")
    p = sub.add_parser("start", help="start a contained legacy gateway, detached")
    p.add_argument("--port", type=int, default=None, help="gateway port (default: a free one)")
    p.add_argument("--auth", choices=("token", "password"), default="token")
    p.add_argument("--model-url", default=None, help="OpenAI-compatible base URL (default: start a fake model server)")
    p.add_argument("--ready-timeout", type=float, default=None, help="seconds to wait for /readyz (default 180)")
    p.add_argument("--show-secrets", action="store_true", help="print the gateway and hook secrets")
    p = sub.add_parser("stop", help="stop the detached legacy (SIGTERM, then SIGKILL after 20 s)")
    p = sub.add_parser("status", help="is the detached legacy running and ready; which containment")
    p.add_argument("--json", action="store_true")
    p.add_argument("--show-secrets", action="store_true")
    p = sub.add_parser("logs", help="tail the gateway log of the detached legacy")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.add_argument("--guard", action="store_true", help="show the guard log instead")


def run(args: argparse.Namespace) -> int:
    action = args.legacy_command
    if action == "install":
        install(force=args.force, progress=_say)
        return 0
    if action == "start":
        return _start(args)
    if action == "stop":
        return _stop()
    if action == "status":
        return _status(args)
    if action == "logs":
        return _logs(args)
    raise LegacyError(f"unknown action {action!r}")


def _load_current() -> dict[str, Any] | None:
    try:
        data = json.loads(_current_path().read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise LegacyError(f"{_current_path()} is not valid JSON ({exc}); remove it after checking no legacy runs") from exc
    if not isinstance(data, dict):
        raise LegacyError(f"{_current_path()} does not hold a JSON object")
    return data


def _ours(pid: int, current: dict[str, Any]) -> bool:
    """True when ``pid`` is alive and still the process we started (its cwd is the run dir): PIDs get reused."""
    if not pid_alive(pid):
        return False
    try:
        return os.readlink(f"/proc/{pid}/cwd") == str(Path(current["run_dir"]).resolve())
    except OSError:
        return False


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (OSError, urllib.error.URLError):
            if time.monotonic() >= deadline:
                raise LegacyError(f"{url} did not answer within {timeout:g} s") from None
            time.sleep(0.1)


def _start(args: argparse.Namespace) -> int:
    current = _load_current()
    if current and _ours(int(current["pid"]), current):
        raise LegacyError(f"a legacy already runs (pid {current['pid']}, port {current['port']}): "
                          "'parity legacy stop' first")
    run_dir = _run_root() / (time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}")
    fake_pid = None
    model_url = args.model_url
    if model_url is None:
        port = free_port()
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "fakemodel.log").open("ab") as log:
            fake = subprocess.Popen([sys.executable, "-m", "parity.legacy.fakemodel", "--port", str(port)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=run_dir)
        fake_pid = fake.pid
        model_url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_http(f"{model_url}/models", 30)
        except LegacyError:
            stop_pid(fake_pid, 5)
            raise
        _say(f"fake model server on {model_url} (pid {fake_pid})")
    _say(f"starting the legacy gateway ({netns.describe()}); this takes 15-60 s")
    try:
        gw = LegacyGateway.start(LegacyOptions(run_dir=run_dir, model_url=model_url, auth=args.auth,
                                               port=args.port, ready_timeout=args.ready_timeout))
    except BaseException:
        if fake_pid is not None:
            stop_pid(fake_pid, 5)
        raise
    descriptor = {**gw.describe(), "fake_model_pid": fake_pid, "model_url": model_url,
                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "boot_seconds": gw.boot_seconds}
    _current_path().write_text(json.dumps(descriptor, indent=2) + "\n")
    _say(f"ready after {gw.boot_seconds:.1f} s: {gw.ws_url} (pid {gw.pid}); secrets in {gw.layout.secrets_path}")
    if args.show_secrets:
        for name, value in gw.secrets().items():
            print(f"{name}={value}")
    return 0


def _stop() -> int:
    current = _load_current()
    if current is None:
        _say("no detached legacy recorded; nothing to stop")
        return 0
    pid = int(current["pid"])
    graceful = stop_pid(pid) if _ours(pid, current) else True
    fake_pid = current.get("fake_model_pid")
    if fake_pid and _ours(int(fake_pid), current):
        stop_pid(int(fake_pid), 5)
    cleanup_outside_files(Path(current["run_dir"]), remove_openclaw_tmp=False)
    _current_path().unlink(missing_ok=True)
    _say(f"stopped pid {pid}" + ("" if graceful else " (needed SIGKILL)"))
    return 0


def _status(args: argparse.Namespace) -> int:
    current = _load_current()
    facts: dict[str, Any] = {"containment": netns.describe(), "running": False, "ready": False}
    if current is not None:
        facts.update(current)
        facts["running"] = _ours(int(current["pid"]), current)
        if facts["running"]:
            try:
                with urllib.request.urlopen(f"{current['http_url']}/readyz", timeout=3) as resp:
                    facts["ready"] = resp.status == 200
            except (OSError, urllib.error.URLError):
                facts["ready"] = False
    if args.show_secrets and current is not None:
        facts["secrets"] = json.loads(Path(current["secrets_file"]).read_text())
    if args.json:
        print(json.dumps(facts, indent=2))
    elif current is None:
        print(f"legacy: not started (containment would be: {facts['containment']})")
    else:
        state = "ready" if facts["ready"] else ("running, not ready" if facts["running"] else "not running")
        print(f"legacy: {state}; pid {current['pid']}, {current['ws_url']}, auth {current['auth']}")
        print(f"containment: {facts['containment']}")
        print(f"run dir: {current['run_dir']}\nlog: {current['log']}\nsecrets file (0600): {current['secrets_file']}")
        if "secrets" in facts:
            for key, value in facts["secrets"].items():
                if value:
                    print(f"{key}={value}")
    return 0 if facts["ready"] else 1


def _logs(args: argparse.Namespace) -> int:
    current = _load_current()
    if current is None:
        raise LegacyError("no detached legacy recorded ('parity legacy start' first)")
    path = Path(current["guard_log" if args.guard else "log"])
    print(f"# {path} ({netns.describe()})")
    if args.guard and not path.exists():
        print("(no guard log yet: nothing was blocked)")
    else:
        print(tail(path, max(1, args.lines)))
    return 0
