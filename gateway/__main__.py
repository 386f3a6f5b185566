"""``pyclaw``: run the candidate gateway and talk to gateways, with the legacy CLI's flags and exit codes.

Commands: ``pyclaw gateway [run]`` (foreground server; SIGTERM/SIGINT -> graceful stop, exit 0; config-class
failures exit 78), ``pyclaw gateway call <method>``, ``pyclaw gateway health|status`` (exit 0/1, JSON shapes of
reference §6.3), ``pyclaw config validate|get``. This module parses flags and prints; the server is
``gateway.app``, the client ``gateway.client``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from wire.errors import ConfigError

__all__ = ["main"]

logger = logging.getLogger("gateway")

EXIT_CONFIG = 78
AUTH_MODES = ("none", "token", "password", "trusted-proxy")
TAILSCALE_MODES = ("off", "serve", "funnel")


def _out(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _mode_list(modes: tuple[str, ...]) -> str:
    quoted = [f'"{m}"' for m in modes]
    return ", ".join(quoted[:-1]) + f", or {quoted[-1]}"


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port")
    p.add_argument("--bind")
    p.add_argument("--auth")
    p.add_argument("--token")
    p.add_argument("--password")
    p.add_argument("--password-file")
    p.add_argument("--tailscale")
    p.add_argument("--allow-unconfigured", action="store_true")
    p.add_argument("--dev", action="store_true")
    p.add_argument("--force", action="store_true")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--ws-log", choices=("auto", "full", "compact"))
    p.add_argument("--ambient-channels", action="store_true")
    p.add_argument("--raw-stream", action="store_true")
    p.add_argument("--json-logs", action="store_true", help="JSON-lines console logs (pyclaw extension)")


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url")
    p.add_argument("--token")
    p.add_argument("--password")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=int, default=10_000)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyclaw", description="Python OpenClaw-compatible gateway (candidate).")
    sub = parser.add_subparsers(dest="cmd", required=True)
    gw = sub.add_parser("gateway", help="run or call a gateway")
    _add_run_flags(gw)
    gsub = gw.add_subparsers(dest="gcmd")
    _add_run_flags(gsub.add_parser("run", help="run the gateway in the foreground"))
    call = gsub.add_parser("call", help="call one RPC method")
    call.add_argument("method")
    call.add_argument("--params")
    call.add_argument("--expect-final", action="store_true")
    _client_flags(call)
    for name in ("health", "status"):
        _client_flags(gsub.add_parser(name))
    cfg = sub.add_parser("config", help="validate or read the config file")
    csub = cfg.add_subparsers(dest="ccmd", required=True)
    csub.add_parser("validate").add_argument("--json", action="store_true")
    get = csub.add_parser("get")
    get.add_argument("path")
    get.add_argument("--json", action="store_true")
    return parser


# ---------------------------------------------------------------------------------------------------- gateway run
def _cmd_run(args: argparse.Namespace) -> int:
    from gateway.bind import BIND_MODES, bind_refusal, default_bind_mode, resolve_bind_host, resolve_listen_hosts
    from gateway.config import CliOverrides, ConfigInvalidError, load_config, resolve_gateway_config

    env = os.environ
    try:
        loaded = load_config(None, env)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    if loaded.issues:
        _err(str(ConfigInvalidError(loaded.path, list(loaded.issues))))
        return EXIT_CONFIG
    port: int | None = None
    if args.port is not None:
        try:
            port = int(args.port)
            if not 0 <= port <= 65535:
                raise ValueError
        except ValueError:
            _err("Invalid --port. Use a number from 1 to 65535, for example 18789.")
            return 1
    bind_raw = args.bind or (loaded.data.get("gateway") or {}).get("bind")
    if bind_raw is not None and bind_raw not in BIND_MODES:
        _err('Invalid --bind. Use "loopback", "lan", "tailnet", "auto", or "custom".')
        return 1
    if args.auth and args.auth not in AUTH_MODES:
        _err(f"Invalid --auth. Use {_mode_list(AUTH_MODES)}.")
        return 1
    if args.tailscale and args.tailscale not in TAILSCALE_MODES:
        _err(f"Invalid --tailscale. Use {_mode_list(TAILSCALE_MODES)}.")
        return 1
    password = args.password
    if args.password_file:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            _err(f"Failed to read --password-file {args.password_file}: {exc.strerror or exc}")
            return 1
    mode = (loaded.data.get("gateway") or {}).get("mode")
    if not (args.allow_unconfigured or mode == "local" or (not loaded.exists and args.dev)):
        if not loaded.exists:
            _err("Missing config. Run `openclaw setup` or set gateway.mode=local (or pass --allow-unconfigured).")
        elif mode is None:
            _err("Gateway start blocked: existing config is missing gateway.mode. Treat this as suspicious or clobbered "
                 "config. Re-run `openclaw onboard --mode local` or `openclaw setup`, set gateway.mode=local manually, "
                 "or pass --allow-unconfigured.")
        else:
            _err(f"Gateway start blocked: set gateway.mode=local (current: {mode}) or pass --allow-unconfigured.")
        return EXIT_CONFIG
    tailscale = args.tailscale or ((loaded.data.get("gateway") or {}).get("tailscale") or {}).get("mode") or "off"
    overrides = CliOverrides(port=port, bind=bind_raw or default_bind_mode(tailscale), auth=args.auth,
                             token=args.token, password=password, tailscale=args.tailscale, dev=args.dev)
    try:
        config = resolve_gateway_config(loaded, overrides, env)
    except ConfigError as exc:
        _err(str(exc))
        return EXIT_CONFIG
    from gateway.logs import setup_logging

    setup_logging(config, verbose=args.verbose, json_console=True if args.json_logs else None)
    a = config.auth
    if a.mode == "password" and not a.password:
        _err("Gateway auth is set to password, but no password is configured.\n"
             "Set gateway.auth.password (or OPENCLAW_GATEWAY_PASSWORD), or pass --password.")
        return EXIT_CONFIG
    if a.mode == "token" and not a.token and not a.allow_tailscale:
        _err("Gateway failed to start: gateway auth mode is token, but no token was configured (set gateway.auth.token "
             "or OPENCLAW_GATEWAY_TOKEN). Legacy CLAWDBOT_* and MOLTBOT_* environment variables are ignored; use "
             "OPENCLAW_* names.")
        return EXIT_CONFIG
    if a.mode == "trusted-proxy" and not (a.trusted_proxy or {}).get("userHeader"):
        _err("Gateway failed to start: gateway auth mode is trusted-proxy, but no trustedProxy config was provided "
             "(set gateway.auth.trustedProxy)")
        return EXIT_CONFIG
    if a.mode == "none":
        logger.warning("Gateway auth mode=none explicitly configured; all gateway connections are unauthenticated.")
    bind_host = resolve_bind_host(config.bind, config.custom_bind_host)
    has_secret = (a.mode == "token" and bool(a.token)) or (a.mode == "password" and bool(a.password))
    refusal = bind_refusal(config.bind, bind_host, a.mode, has_secret)
    if refusal:
        _err(refusal)
        return EXIT_CONFIG
    if args.force:
        logger.warning("--force is not implemented by pyclaw; the port must already be free")
    return asyncio.run(_serve(config, resolve_listen_hosts(bind_host)))


async def _serve(config: Any, hosts: list[str]) -> int:
    from aiohttp import web

    from gateway.app import make_app

    app = make_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=3.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for host in hosts:
            await web.TCPSite(runner, host, config.port, reuse_address=True).start()
    except OSError as exc:
        _err(f"Gateway failed to start: {exc}")
        await runner.cleanup()
        return 1
    logger.info("[gateway] listening on ws://%s:%d (%s)", hosts[0], config.port, ", ".join(hosts))
    logger.info("[gateway] ready")
    await stop.wait()
    logger.info("received signal; shutting down")
    await runner.cleanup()
    logger.info("[shutdown] completed cleanly")
    return 0


# ---------------------------------------------------------------------------------------------------- clients
def _local_target(args: argparse.Namespace) -> tuple[str, str | None, str | None, str]:
    from gateway.config import CliOverrides, load_config, resolve_gateway_config

    if args.url:
        return args.url, args.token, args.password, "cli --url"
    try:
        config = resolve_gateway_config(load_config(None, dict(os.environ), apply_env=True), CliOverrides(), os.environ)
        port, token, password = config.port, config.auth.token, config.auth.password
    except ConfigError:
        port, token, password = int(os.environ.get("OPENCLAW_GATEWAY_PORT") or 18789), None, None
    token = args.token or os.environ.get("OPENCLAW_GATEWAY_TOKEN") or token
    password = args.password or os.environ.get("OPENCLAW_GATEWAY_PASSWORD") or password
    return f"ws://127.0.0.1:{port}", token, password, "local loopback"


def _cmd_call(args: argparse.Namespace, method: str, params: Any) -> int:
    from gateway.client import call

    url, token, password, source = _local_target(args)
    code, out, err = asyncio.run(call(url, method, params, token=token, password=password, timeout_ms=args.timeout,
                                      expect_final=getattr(args, "expect_final", False), url_source=source))
    if code != 0:
        if err:
            _err(err)
        if args.json:
            _out(out)
        return code
    if not args.json:
        print(f"Gateway call: {method}")
    _out(out)
    return 0


# ---------------------------------------------------------------------------------------------------- config
def _cmd_config(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.methods.config import redact_config

    try:
        loaded = load_config(None, dict(os.environ))
    except ConfigError as exc:
        if args.json:
            _out({"ok": False, "error": str(exc), "valid": False})
        else:
            _err(f"Config validation error: {exc}")
        return 1
    if not loaded.exists:
        if args.json:
            _out({"ok": False, "error": "file not found", "valid": False, "path": str(loaded.path)})
        else:
            _err(f"Config file not found: {loaded.path}")
        return 1
    if args.ccmd == "validate":
        issues = [{"path": i.path, "message": i.message} for i in loaded.issues]
        not_impl = list(loaded.not_implemented)
        if args.json:
            _out({"valid": not issues, "path": str(loaded.path), "issues": issues, "warnings": list(loaded.warnings),
                  "notImplemented": not_impl})
        elif issues:
            _err(f"OpenClaw config is invalid: {loaded.path}")
            for i in loaded.issues:
                _err(f"  × {i.render()}")
        else:
            print(f"Config valid: {loaded.path}")
            for w in loaded.warnings:
                print(f"  ! {w}")
            if not_impl:
                print(f"{len(not_impl)} key(s) accepted but not implemented by pyclaw:")
                for p in not_impl:
                    print(f"  - {p}")
        return 1 if issues else 0
    node: Any = redact_config(loaded.data)
    for part in args.path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            _err(f"Config path not found: {args.path}")
            return 1
    if args.json or not isinstance(node, str):
        _out(node)
    else:
        print(node)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "config" or args.gcmd not in (None, "run"):
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.cmd == "config":
        return _cmd_config(args)
    if args.gcmd in (None, "run"):
        return _cmd_run(args)
    if args.gcmd == "call":
        params = None
        if args.params:
            try:
                params = json.loads(args.params)
            except ValueError as exc:
                _err(f"--params must be JSON: {exc}")
                return 1
        return _cmd_call(args, args.method, params)
    return _cmd_call(args, args.gcmd, {})


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
