"""``parity gate``: the cutover verdict from a parity database and a policy file.

Owns the command's options and turning the store's per-route figures (``Store.route_stats``, signature review
states) into per-group :class:`diffing.gate.GroupStats`. The verdict logic and the writers live in
:mod:`diffing.gate`. Reproducible from the database alone: the latency CI's bootstrap is seeded. I/O shell over
``diffing.store``. May import: stdlib, ``diffing``, ``wire.errors``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from diffing.gate import GatePolicy, GateResult, GroupStats, SignatureStat, Verdict, evaluate, load_policy, to_junit
from diffing.gate import to_markdown as gate_markdown
from diffing.store import RouteStats, SignatureRow, Store, database_url
from diffing.timing import ratio_ci
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

EPILOG = """\
exit status:
  0  pass          every group meets its thresholds
  1  fail          a group breaks a threshold, or has a blocking mismatch signature
  2  inconclusive  no group failed, but one has too few samples (or no paired latencies)
  (a bad policy file or database is reported as an error, exit 1)

Policy format: docs/cutover.md; example: docs/cutover.toml.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("--db", required=True, help="parity database URL (sqlite:///file.db or postgresql://...)")
    parser.add_argument("--policy", required=True, metavar="TOML", help="gate policy file (e.g. docs/cutover.toml)")
    parser.add_argument("--run", type=int, default=None, help="run id to judge (default: the latest run)")
    parser.add_argument("--junit", metavar="FILE", default=None, help="also write JUnit XML (one test case per group)")
    parser.add_argument("--markdown", metavar="FILE", default=None, help="also write a Markdown summary (PR comment)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed of the latency-ratio CI (default 0)")


def _signature_stats(route: str, stats: RouteStats, catalog: dict[tuple[str, str, str], SignatureRow]) -> list[SignatureStat]:
    out = []
    for (path, kind), count in sorted(stats.signatures.items()):
        row = catalog.get((route, path, kind))
        example = ""
        if row is not None and row.exemplars:
            ex = row.exemplars[0]
            example = f"{ex.get('legacy')} -> {ex.get('candidate')}"[:200]
        out.append(SignatureStat(route=route, path=path, kind=kind, count=count,
                                 review=row.review if row is not None else "unreviewed", example=example))
    return out


def group_stats(policy: GatePolicy, routes: Sequence[RouteStats], signatures: Sequence[SignatureRow], *,
                seed: int = 0) -> list[GroupStats]:
    """Aggregate per-route figures into the policy's groups (first matching glob wins; the rest is ``other``)."""
    catalog = {(s.route, s.path, s.kind): s for s in signatures}
    buckets: dict[str, list[RouteStats]] = {}
    for r in routes:
        buckets.setdefault(policy.group_of(r.route).name, []).append(r)
    out = []
    for name, members in buckets.items():
        latencies = [pair for r in members for pair in r.latencies]
        ci = ratio_ci(latencies, confidence=policy.confidence, seed=seed)
        out.append(GroupStats(
            group=name,
            routes=tuple(r.route for r in members),
            pairs=sum(r.pairs for r in members),
            matches=sum(r.matches for r in members),
            legacy_errors=sum(r.legacy_errors for r in members),
            candidate_errors=sum(r.candidate_errors for r in members),
            latency_ratio=ci[0] if ci else None,
            latency_ratio_ci=ci[1] if ci else None,
            signatures=tuple(s for r in members for s in _signature_stats(r.route, r, catalog)),
        ))
    return out


async def judge_database(db: str, policy: GatePolicy, *, run: int | None = None, seed: int = 0) -> GateResult:
    """Open the store, read one run (default the latest) and judge it."""
    url = database_url(db)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        # Opening would create an empty database; the gate only ever reads one.
        raise ConfigError(f"--db: no such database file {url[len('sqlite:///'):]!r}")
    store = await Store.open(db)
    try:
        run_id = run if run is not None else await store.latest_run()
        if run_id is None:
            logger.warning("no run in %s: nothing to judge", db)
            return evaluate(policy, [], database=f"{db} (no runs)")
        if run is not None and run_id not in {r.id for r in await store.runs()}:
            raise ConfigError(f"--run: run {run_id} is not in {db}")
        routes = await store.route_stats(run_id)
        signatures = await store.signatures()
    finally:
        await store.close()
    return evaluate(policy, group_stats(policy, routes, signatures, seed=seed), database=f"{db} run {run_id}")


def summary(result: GateResult) -> str:
    lines = []
    for r in result.groups:
        verdict = "skipped" if r.skipped else r.verdict.value.upper()
        lines.append(f"{r.policy.name:<16} {verdict:<13} {r.stats.pairs:>7} pairs  {r.reason}")
    lines.append(f"verdict: {result.verdict.value.upper()} (exit {result.exit_code})  [{result.database}]")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    result = asyncio.run(judge_database(args.db, policy, run=args.run, seed=args.seed))
    if args.junit:
        Path(args.junit).write_bytes(to_junit(result))
    if args.markdown:
        Path(args.markdown).write_text(gate_markdown(result), encoding="utf-8")
    sys.stdout.write(summary(result))
    if result.verdict is not Verdict.PASS:
        logger.info("gate verdict %s", result.verdict.value)
    return result.exit_code
