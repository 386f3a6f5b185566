"""``parity replay``: replay traces against legacy and candidate, pair and diff the answers, store a run.

Traces are replayed concurrently (``--concurrency``), each connection's order kept by the replayer
(``recorder.replay``); both legs of a trace run at the same time. Prints the run's report at the end.
Exit 0 when the run completed (the verdict is ``parity gate``'s job), 1 on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from rich.progress import Progress

from diffing._cli_common import (
    Loaded,
    add_common_options,
    add_target_options,
    load_traces,
    profile_from,
    replay_and_diff,
    target,
)
from diffing.api import record
from diffing.report import build_report, to_json, to_markdown, to_terminal
from diffing.store import Store

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    add_target_options(parser, "legacy")
    add_target_options(parser, "candidate")
    parser.add_argument("--name", default="", help="run name (default: replay of N traces)")
    parser.add_argument("--format", choices=("terminal", "markdown", "json"), default="terminal")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--sequential", action="store_true",
                        help="replay the legacy leg, then the candidate leg (use with --concurrency 1 when both "
                             "URLs reach the same gateway: OpenClaw broadcasts chat/agent events to every connection)")


async def _replay(args: argparse.Namespace) -> int:
    profile = profile_from(args)
    traces, skipped = load_traces(args.traces, strict=args.strict)
    legacy, candidate = target(args, "legacy"), target(args, "candidate")
    store = await Store.open(args.db)
    try:
        run_id = await store.start_run(
            name=args.name or f"replay of {len(traces)} trace(s)",
            source="replay",
            profile=profile.name,
            legacy_url=legacy.http_base,
            candidate_url=candidate.http_base,
            meta={"traces": [t.path for t in traces], "skipped_lines": skipped},
        )
        sem = asyncio.Semaphore(max(1, args.concurrency))
        failures: list[str] = []
        with Progress(disable=args.no_progress or not sys.stderr.isatty(), transient=True) as progress:
            task = progress.add_task("replaying", total=len(traces))

            async def one(item: Loaded) -> None:
                async with sem:
                    try:
                        items = await replay_and_diff(item, legacy, candidate, profile, timeout=args.timeout,
                                                    sequential=args.sequential)
                        record(store, run_id, items)
                    except Exception as exc:  # one trace failing must not lose the others
                        logger.error("%s: replay failed: %s", item.path, exc)
                        failures.append(f"{item.path}: {exc}")
                    progress.advance(task)

            await asyncio.gather(*(one(t) for t in traces))
        await store.finish_run(
            run_id,
            status="failed" if failures else "done",
            meta={"traces": [t.path for t in traces], "skipped_lines": skipped, "failures": failures},
        )
        report = await build_report(store, run_id)
    finally:
        await store.close()
    render = {"terminal": to_terminal, "markdown": to_markdown, "json": to_json}[args.format]
    sys.stdout.write(render(report))
    if skipped:
        print(f"{skipped} corrupt trace line(s) skipped", file=sys.stderr)
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_replay(args))
