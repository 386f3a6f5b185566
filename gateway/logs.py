"""Logging for ``pyclaw``: human or JSON-lines output, levels, per-connection context, secrets redacted.

Owns ``setup_logging(config, verbose=…)``: a console handler (``logging.consoleStyle`` pretty|json) and, when
``logging.file`` is set, a JSON-lines file handler; levels from ``logging.level`` (the legacy's names: silent,
fatal, error, warn, info, debug, trace). Every handler carries ``RedactingFilter``, which runs the formatted
message and args through ``wire.redact.Redactor`` with the config's secrets (gateway token/password, hook token,
provider keys), so a secret never reaches a log line. Connection context (``conn``, ``peer``) comes from
``gateway.ws.ConnLogger`` as record attributes and is emitted as JSON fields.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from wire.redact import Redactor

__all__ = ["JsonFormatter", "RedactingFilter", "setup_logging"]

LEVELS = {"silent": logging.CRITICAL + 10, "fatal": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING,
          "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}
_CONTEXT = ("conn", "peer")
_HANDLER_TAG = "_pyclaw_handler"


class RedactingFilter(logging.Filter):
    """Rewrites ``record.msg`` to the redacted, fully formatted message (args folded in)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor.payload(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, subsystem, message, plus connection context when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower().replace("warning", "warn"),
            "subsystem": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_text:
            out["error"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def _redactor(config: GatewayConfig) -> Redactor:
    named = {"GW_TOKEN": config.auth.token, "GW_PASSWORD": config.auth.password, "HOOK_TOKEN": config.get("hooks.token")}
    secrets = {k: v for k, v in named.items() if isinstance(v, str) and v}
    for i, s in enumerate(config.secrets()):
        if s not in secrets.values():
            secrets[f"SECRET_{i}"] = s
    return Redactor(secrets)


def setup_logging(config: GatewayConfig, *, verbose: bool = False, json_console: bool | None = None) -> list[logging.Handler]:
    """Install pyclaw's handlers on the root logger (replacing ones a previous call installed)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_TAG, False):
            root.removeHandler(h)
            h.close()
    level = logging.DEBUG if verbose else LEVELS.get(config.log_level, logging.INFO)
    redact = RedactingFilter(_redactor(config))
    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    use_json = config.console_style == "json" if json_console is None else json_console
    console.setFormatter(JsonFormatter() if use_json else logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
    handlers.append(console)
    if config.log_file:
        path = Path(config.log_file).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setFormatter(JsonFormatter())
        handlers.append(fh)
    for h in handlers:
        h.addFilter(redact)
        h.setLevel(level)
        setattr(h, _HANDLER_TAG, True)
        root.addHandler(h)
    root.setLevel(min(level, root.level) if root.level != logging.NOTSET else level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return handlers
