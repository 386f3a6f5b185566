"""The contained legacy harness: install, configure, start and stop the pinned OpenClaw gateway offline.

Owns the ``parity.legacy`` package; re-exports its public API. Modules: ``install`` (npm ci from committed
locks), ``config`` (offline ``openclaw.json`` and env), ``guard.cjs`` (Node preload network guard), ``netns``
(which containment is active), ``process`` (start/readiness/stop), ``fakemodel`` (fake OpenAI-compatible model
server), ``cli`` (``parity legacy ...``).

    from parity.legacy import FakeModelServer, LegacyGateway, LegacyOptions
    fm = FakeModelServer().start()
    gw = LegacyGateway.start(LegacyOptions(run_dir=tmp, model_url=fm.url))
    ...  # gw.ws_url, gw.http_url, gw.token, gw.secrets(), gw.guard_lines()
    gw.stop(); fm.stop()
"""

from __future__ import annotations

from .config import EXPECTED_GUARD_LINE, GUARD_PATH, RunLayout, build_config, build_env, deep_merge, new_secret
from .fakemodel import FakeModelServer
from .install import NODE_VERSION, OPENCLAW_VERSION, Installation, find_installation, install
from .netns import isolation
from .process import LegacyGateway, LegacyOptions, free_port, legacy_cli, port_is_free

__all__ = [
    "EXPECTED_GUARD_LINE",
    "GUARD_PATH",
    "NODE_VERSION",
    "OPENCLAW_VERSION",
    "FakeModelServer",
    "Installation",
    "LegacyGateway",
    "LegacyOptions",
    "RunLayout",
    "build_config",
    "build_env",
    "deep_merge",
    "find_installation",
    "free_port",
    "install",
    "legacy_cli",
    "isolation",
    "new_secret",
    "port_is_free",
]
