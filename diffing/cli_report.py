"""``parity report``: parity, mismatch signatures and latency from a parity database.

Owns the command's options; the figures come from :mod:`diffing.report`. I/O shell: opens the store, prints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from diffing.report import build_report, to_json, to_markdown, to_terminal
from diffing.store import Store
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

FORMATS = {"terminal": to_terminal, "markdown": to_markdown, "json": to_json}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="parity database URL (sqlite:///file.db or postgresql://...)")
    parser.add_argument("--run", type=int, default=None, help="run id (default: the latest run)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="terminal")
    parser.add_argument("--top", type=int, default=10, help="how many mismatch signatures to show")
    parser.add_argument("--out", default=None, help="write the report to this file instead of stdout")


async def _report(args: argparse.Namespace) -> str:
    store = await Store.open(args.db)
    try:
        report = await build_report(store, args.run, top=args.top)
    except LookupError as exc:
        raise ConfigError(f"--run: {exc.args[0]}") from exc
    finally:
        await store.close()
    return str(FORMATS[args.format](report))


def run(args: argparse.Namespace) -> int:
    text = asyncio.run(_report(args))
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
