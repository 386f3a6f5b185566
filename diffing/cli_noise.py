"""``parity noise``: learn noise rules from legacy-vs-legacy (A/A) replays and review them.

Subcommands::

    parity noise learn TRACE... --legacy URL --db URL [--runs 2]   replay each trace N times against the legacy,
                                                                  compare run 1 with every other run, propose rules
    parity noise list --db URL [--status proposed|accepted|rejected]
    parity noise accept ID... --db URL
    parity noise reject ID... --db URL
    parity noise export --db URL --out rules.toml                 accepted rules as a user rule file

See :mod:`diffing.noise` for the evidence and thresholds. I/O shell.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from diffing._cli_common import Loaded, add_common_options, add_target_options, load_traces, profile_from, target
from diffing.api import diff_observations
from diffing.noise import ABSOLUTE_THRESHOLD, NoiseCounter, export_rules, propose
from diffing.rules import dump_rules_toml
from diffing.store import NoiseRuleRow, Store
from wire.errors import ConfigError
from wire.model import Leg
from wire.profiles.openclaw import get_profile

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="noise_command", metavar="<subcommand>", required=True)
    learn = sub.add_parser("learn", help="replay traces against the legacy N times and propose noise rules")
    add_common_options(learn)
    add_target_options(learn, "legacy")
    learn.add_argument("--runs", type=int, default=2, help="legacy replays per trace (>= 2; default 2)")
    learn.add_argument(
        "--min-rate",
        type=float,
        default=ABSOLUTE_THRESHOLD,
        help=f"propose only paths differing in at least this share of pairs (default {ABSOLUTE_THRESHOLD})",
    )
    lst = sub.add_parser("list", help="list noise rules")
    lst.add_argument("--db", required=True)
    lst.add_argument("--status", choices=("proposed", "accepted", "rejected"))
    for name in ("accept", "reject"):
        p = sub.add_parser(name, help=f"{name} proposed noise rules by id")
        p.add_argument("ids", nargs="+", type=int, metavar="ID")
        p.add_argument("--db", required=True)
    exp = sub.add_parser("export", help="write accepted rules as a user rule file (TOML)")
    exp.add_argument("--db", required=True)
    exp.add_argument("--out", required=True, help="output .toml file")
    exp.add_argument("--profile", default="openclaw")


def _table(rows: list[NoiseRuleRow]) -> str:
    lines = [f"{'id':>4}  {'status':9} {'kind':14} {'evidence':>12}  route  path"]
    for r in rows:
        lines.append(f"{r.id:>4}  {r.status:9} {r.kind:14} {r.differing:>5}/{r.compared:<6}  {r.route}  {r.path}")
    return "\n".join(lines) + "\n"


async def _learn(args: argparse.Namespace) -> int:
    from recorder.replay import replay_trace

    if args.runs < 2:
        raise ConfigError("--runs: A/A needs at least 2 runs")
    profile = profile_from(args)
    traces, _skipped = load_traces(args.traces, strict=args.strict)
    legacy = target(args, "legacy")
    counter = NoiseCounter(runs=args.runs)
    store = await Store.open(args.db)
    try:
        run_id = await store.start_run(
            name=f"noise learn x{args.runs}",
            source="noise",
            profile=profile.name,
            legacy_url=legacy.http_base,
            candidate_url=legacy.http_base,
            meta={"traces": [t.path for t in traces], "runs": args.runs},
        )
        sem = asyncio.Semaphore(max(1, args.concurrency))

        async def one(item: Loaded) -> None:
            async with sem:
                legs = [
                    await replay_trace(item.trace, legacy, leg=Leg.LEGACY, timeout=args.timeout)
                    for _ in range(args.runs)
                ]
            for other in legs[1:]:
                for pair, result in diff_observations(
                    legs[0].observations, other.observations, profile, scenario=item.scenario
                ):
                    counter.add(result)
                    store.add_pair(run_id, result, legacy=pair.legacy, candidate=pair.candidate)

        await asyncio.gather(*(one(t) for t in traces))
        await store.finish_run(run_id)
        proposals = propose(counter, min_rate=args.min_rate)
        ids = await store.propose_noise(proposals)
        rows = [r for r in await store.noise_rules() if r.id in set(ids)]
    finally:
        await store.close()
    sys.stdout.write(
        f"A/A run {run_id}: {sum(counter.compared.values())} pairs compared, {len(rows)} noise rule(s) proposed\n"
    )
    sys.stdout.write(_table(rows))
    return 0


async def _review(args: argparse.Namespace) -> int:
    store = await Store.open(args.db)
    try:
        if args.noise_command == "list":
            sys.stdout.write(_table(await store.noise_rules(status=args.status)))
        elif args.noise_command in ("accept", "reject"):
            for rid in args.ids:
                await store.set_noise_status(rid, "accepted" if args.noise_command == "accept" else "rejected")
            sys.stdout.write(f"{len(args.ids)} rule(s) {args.noise_command}ed\n")
        else:  # export
            try:
                profile = get_profile(args.profile)
            except ValueError as exc:
                raise ConfigError(f"--profile: {exc}") from exc
            accepted = await store.noise_rules(status="accepted")
            rules = export_rules(accepted, profile)
            Path(args.out).write_text(
                dump_rules_toml(rules, header="Accepted A/A noise rules (parity noise export)"), encoding="utf-8"
            )
            sys.stdout.write(f"{len(rules)} rule(s) written to {args.out}\n")
    finally:
        await store.close()
    return 0


def run(args: argparse.Namespace) -> int:
    if args.noise_command == "learn":
        return asyncio.run(_learn(args))
    return asyncio.run(_review(args))
