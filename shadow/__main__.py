"""``parity shadow``: run the shadow proxy until interrupted.

Owns the command's options and the config layering: TOML file (``--config``) < ``PARITY_*`` environment
(:data:`shadow.config.ENV_KEYS`) < flags. Secrets are taken from the file or the environment only, never from
flags (they would show in ``ps``). May import: stdlib, ``shadow.*``, ``wire``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shadow.config import ENV_KEYS, ShadowConfig, set_path
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

#: flag dest -> key path
_FLAGS = {
    "listen": "listen", "admin": "admin", "legacy": "legacy.url", "candidate": "candidate.url", "mode": "mode",
    "canary_percent": "canary.percent", "trace_dir": "record.trace_dir", "db": "record.db",
    "sample_rate": "record.sample_rate", "write_ahead": "record.write_ahead", "dry_run": "dry_run",
    "device_auth": "candidate.device_auth", "mirror_process": "limits.mirror_process",
    "mirror_idle": "limits.mirror_idle", "mirror_cpus": "limits.mirror_cpus",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML config file (see shadow/config.py)")
    parser.add_argument("--listen", metavar="HOST:PORT", help="client port (default 127.0.0.1:18790)")
    parser.add_argument("--admin", metavar="HOST:PORT", help="admin port for /metrics, /healthz, /mode")
    parser.add_argument("--legacy", metavar="URL", help="legacy gateway base URL")
    parser.add_argument("--candidate", metavar="URL", help="candidate gateway base URL")
    parser.add_argument("--mode", choices=["shadow", "candidate-primary", "canary", "passthrough"])
    parser.add_argument("--canary-percent", type=float, metavar="P")
    parser.add_argument("--device-auth", choices=["token", "resign"],
                        help="signed client connects: downgrade to token auth, or re-sign with a proxy key")
    parser.add_argument("--trace-dir", metavar="DIR", help="write both legs' observations here")
    parser.add_argument("--db", metavar="URL", help="parity store for pairs and diffs")
    parser.add_argument("--sample-rate", type=float, metavar="R", help="fraction of connections recorded")
    parser.add_argument("--write-ahead", action="store_true", default=None,
                        help="fsync side-effecting requests to a log before forwarding them to the legacy")
    parser.add_argument("--mirror-process", action="store_true", default=None,
                        help="mirror, pair, diff, record and store in a child process at a lower CPU priority "
                             "(limits.mirror_nice), so mirroring competes less with the client path")
    parser.add_argument("--mirror-idle", action="store_true", default=None,
                        help="with --mirror-process: run that child under Linux SCHED_IDLE (limits.mirror_idle), "
                             "so it only gets CPU time nothing else wants; a saturated machine drops (and counts) "
                             "mirror work instead of slowing clients. Recommended for real traffic")
    parser.add_argument("--mirror-cpus", metavar="LIST",
                        help="with --mirror-process: pin that child (and its diff workers) to these CPUs, e.g. 3 or "
                             "2-3 (limits.mirror_cpus, env PARITY_MIRROR_CPUS); give it CPUs the legacy and the "
                             "proxy do not use")
    parser.add_argument("--dry-run", action="store_true", default=None,
                        help="the candidate suppresses outbound delivery: mirror side-effecting calls too")


def load_config(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> ShadowConfig:
    data: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config: {path}: {exc}") from exc
    env = os.environ if environ is None else environ
    for var, key in ENV_KEYS.items():
        if env.get(var):
            set_path(data, key, env[var])
    for dest, key in _FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            set_path(data, key, value)
    return ShadowConfig.from_mapping(data)


async def serve(config: ShadowConfig) -> None:
    from shadow.proxy import ShadowProxy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ShadowProxy(config) as proxy:
        print(f"parity shadow: listening on {proxy.url}, admin on "
              f"{proxy.admin_url if config.admin else 'off'}, mode {config.mode}", flush=True)
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    logging.getLogger("shadow").setLevel(logging.getLogger().level)
    asyncio.run(serve(config))
    return 0
