"""``parity demo``: boot the contained legacy, record the golden contract from it into a run dir, and print the
compatibility checklist status.

Owns the demo's flow, as a list of small stages a later version extends (shadow proxy, candidate, Prometheus,
locust, gate verdict) without touching the earlier ones. Installing what is missing is ``make demo``'s job
(``scripts/setup.sh``); this command assumes the legacy is installed and says so clearly when it is not.
May import ``recorder``, ``parity.legacy`` and rich.

Layout of a run dir (``runs/demo-<UTC timestamp>/`` by default)::

    traces/<scenario-id>.jsonl   one trace per scenario, recorded from the legacy (secrets redacted); in the full
                                 demo recorded through the shadow proxy, which answers with the legacy's answers
    legacy/legacy-*-<ts>/        the legacy run dirs (config, state, logs, guard log) (``--legacy-only``)
    legacy/, candidate-*/        the full demo's legacy and candidate run dirs
    parity.db, report.md         the parity database (``parity replay`` of traces/ to both legs) and its report
    gate.md, gate.xml            the gate verdict (docs/cutover.toml) as Markdown and JUnit
    locust_*.csv, shadow-traces/ the locust burst's stats; both legs as the proxy saw them
    prometheus/                  config, rules and TSDB (data/) of the Prometheus that scraped the proxy
    logs/                        shadow, record, locust and replay logs
    summary.json                 counts and paths, for scripts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from recorder.checklist import DEFAULT_YAML, load_checklist
from recorder.cli import boot_legacies, record_all
from recorder.runner import ScenarioResult
from recorder.scenario import Scenario, load_scenarios

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help="where everything goes (default: runs/demo-<timestamp>)")
    parser.add_argument("--scenarios", type=Path, default=ROOT / "tests" / "scenarios",
                        help="scenario file or directory (default: the golden contract)")
    parser.add_argument("--only", action="append", default=[], metavar="ID", help="record only these scenarios")
    parser.add_argument("--candidate", choices=("auto", "pyclaw", "legacy"), default="auto",
                        help="the candidate leg: pyclaw, a second legacy (A/A), or auto (pyclaw, else legacy)")
    parser.add_argument("--legacy-only", action="store_true",
                        help="only record the contract from the legacy (no candidate, proxy, Prometheus or gate)")


@dataclass(slots=True)
class DemoRun:
    """State shared by the demo stages; later stages add their own fields."""

    run_dir: Path
    console: Console
    scenarios: list[Scenario] = field(default_factory=list)
    results: list[tuple[Scenario, ScenarioResult | None]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def traces_dir(self) -> Path:
        return self.run_dir / "traces"


def run(args: argparse.Namespace) -> int:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    demo = DemoRun(run_dir=(args.run_dir or ROOT / "runs" / f"demo-{stamp}").resolve(), console=Console(stderr=True))
    demo.run_dir.mkdir(parents=True, exist_ok=True)
    demo.scenarios = load_scenarios([args.scenarios])
    if args.only:
        demo.scenarios = [s for s in demo.scenarios if s.id in set(args.only)]
    if args.legacy_only:
        record_contract(demo)
    else:
        cutover(demo, args)
    checklist_status(demo)
    write_summary(demo)
    failed = [s.id for s, r in demo.results if r is None or not r.ok]
    return 1 if failed else 0


def cutover(demo: DemoRun, args: argparse.Namespace) -> None:
    """Stage 1 (full demo): legacy and candidate behind the shadow proxy with Prometheus; the scenarios (recorded
    into ``traces/`` through the proxy, so they hold the legacy's answers) and a locust burst; then the parity
    database, the report and the gate verdict (``parity.cutover_demo``). The verdict is printed and kept in
    ``summary.json``; it does not change the exit status (a demo that ran is a success)."""
    from parity.cutover_demo import default_scenarios, run_cutover_demo

    demo.summary["cutover"] = run_cutover_demo(demo.run_dir, traces_dir=demo.traces_dir,
                                               scenarios=default_scenarios(args.scenarios), only=args.only,
                                               candidate_kind=args.candidate)


def record_contract(demo: DemoRun) -> None:
    """Stage 1: boot fake model + contained legacy (token mode, and password mode if needed) and record."""
    demo.traces_dir.mkdir(parents=True, exist_ok=True)
    demo.console.print(f"[bold]parity demo[/]: recording {len(demo.scenarios)} scenarios from the legacy "
                       f"into {demo.traces_dir}")
    with boot_legacies(demo.scenarios, demo.run_dir / "legacy", demo.console) as targets:
        demo.results = asyncio.run(record_all(demo.scenarios, targets, demo.traces_dir, demo.console))
    ok = sum(1 for _, r in demo.results if r is not None and r.ok)
    failed = [s.id for s, r in demo.results if r is None or not r.ok]
    demo.summary["recorded"] = {"ok": ok, "total": len(demo.results), "failed": failed,
                                "traces": str(demo.traces_dir)}
    print(f"recorded {ok}/{len(demo.results)} scenarios from the legacy" + (f"; failed: {', '.join(failed)}"
                                                                              if failed else ""))


def checklist_status(demo: DemoRun) -> None:
    """Stage 2: the compatibility checklist's coverage (docs/compatibility.md)."""
    checklist = load_checklist(DEFAULT_YAML)
    counts = checklist.counts()
    demo.summary["checklist"] = {"items": len(checklist.items), **counts, "gaps": len(checklist.gaps)}
    print(f"compatibility checklist: {len(checklist.items)} items — {counts['covered']} covered, "
          f"{counts['partial']} partial, {counts['not-coverable']} not coverable yet "
          f"(docs/compatibility.md); known legacy/pyclaw differences listed: {len(checklist.gaps)}")


def write_summary(demo: DemoRun) -> None:
    path = demo.run_dir / "summary.json"
    path.write_text(json.dumps(demo.summary, indent=2) + "\n", encoding="utf-8")
    print(f"run dir: {demo.run_dir}\n  traces:  {demo.traces_dir}\n  legacy:  {demo.run_dir / 'legacy'}\n"
          f"  summary: {path}")
