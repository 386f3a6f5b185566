"""``parity record``: run scenarios against a gateway (or a contained legacy booted for the purpose) and write
one trace per scenario.

Owns the command's options, the legacy boot for ``--legacy`` and the progress/summary output. Scenario
execution is ``recorder.runner``. May import everything ``recorder`` may, plus rich and (lazily, only with
``--legacy``) ``parity.legacy``.

Scenarios with ``requires: {auth: password}`` need a password-mode gateway: with ``--legacy`` a second,
password-mode legacy is booted for them; with ``--target`` they run against ``--password-target URL`` (with
``--password``), or are skipped (reported, exit 1) when none is given.

Exit codes: 0 every scenario recorded completely; 1 a scenario failed or was skipped, or the target is down
(partial traces are kept, marked incomplete); 2 bad usage or a malformed scenario file (nothing is run).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from recorder.runner import ScenarioResult, run_scenario
from recorder.scenario import Scenario, load_scenarios
from recorder.target import Target
from wire.errors import ParityError, ScenarioError

logger = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="URL", help="gateway base URL (http://127.0.0.1:18789 or ws://...)")
    where.add_argument("--legacy", action="store_true",
                       help="boot a contained legacy (and a password-mode one if needed) and record from it")
    parser.add_argument("--scenarios", metavar="FILE_OR_DIR", type=Path, nargs="+", required=True)
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="one <scenario-id>.jsonl per scenario")
    parser.add_argument("--token", help="gateway token of --target")
    parser.add_argument("--password", help="gateway password (of --password-target)")
    parser.add_argument("--hook-token", help="hooks token of the target(s)")
    parser.add_argument("--password-target", metavar="URL", help="password-mode gateway for requires: {auth: password}")
    parser.add_argument("--only", metavar="ID", action="append", default=[],
                        help="record only these scenario ids (repeatable)")
    parser.add_argument("--run-dir", type=Path, help="with --legacy: where the legacy run dirs go (default: a temp dir)")


@dataclass(slots=True)
class Targets:
    """Where token-mode and password-mode scenarios go, plus extra secrets to redact (other legacies')."""

    token: Target | None
    password: Target | None
    secrets: dict[str, str]


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        scenarios = load_scenarios(args.scenarios)
    except ScenarioError as exc:
        print(f"parity record: malformed scenario file: {exc}", file=sys.stderr)
        return 2
    if args.only:
        unknown = sorted(set(args.only) - {s.id for s in scenarios})
        if unknown:
            print(f"parity record: unknown scenario id(s): {', '.join(unknown)}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.id in set(args.only)]
    args.out.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if args.legacy:
            targets = stack.enter_context(boot_legacies(scenarios, args.run_dir, console))
        else:
            token_t = Target(url=args.target, token=args.token, hook_token=args.hook_token, name="target")
            pw_t = None
            if args.password_target:
                pw_t = Target(url=args.password_target, password=args.password, hook_token=args.hook_token,
                              name="password-target", auth_mode="password")
            elif args.password:
                pw_t = Target(url=args.target, password=args.password, hook_token=args.hook_token, name="target",
                              auth_mode="password")
                token_t = pw_t if not args.token else token_t
            targets = Targets(token_t, pw_t, {})
        results = asyncio.run(record_all(scenarios, targets, args.out, console))
    return _summary(results, args.out, console)


async def record_all(scenarios: list[Scenario], targets: Targets, out: Path,
                     console: Console | None = None) -> list[tuple[Scenario, ScenarioResult | None]]:
    """Record every scenario in order into ``out``; ``None`` result = skipped (no suitable target)."""
    results: list[tuple[Scenario, ScenarioResult | None]] = []
    columns = (TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console or Console(stderr=True), transient=False) as progress:
        task = progress.add_task("recording", total=len(scenarios))
        for sc in scenarios:
            progress.update(task, description=f"recording {sc.id}")
            target = targets.password if sc.auth_mode == "password" else targets.token
            if target is None:
                results.append((sc, None))
                progress.advance(task)
                continue
            recorded_at = datetime.now(UTC).isoformat(timespec="seconds")
            path = out / f"{sc.id}.jsonl"
            with path.open("w", encoding="utf-8") as stream:
                result = await run_scenario(sc, target, stream=stream, recorded_at=recorded_at,
                                            extra_secrets=targets.secrets)
            results.append((sc, result))
            if not result.ok:
                progress.console.print(f"[yellow]{sc.id}: {result.error}[/]", highlight=False, markup=True,
                                       soft_wrap=True)
            progress.advance(task)
    return results


def _summary(results: list[tuple[Scenario, ScenarioResult | None]], out: Path, console: Console) -> int:
    ok = sum(1 for _, r in results if r is not None and r.ok)
    failed = [(s, r) for s, r in results if r is not None and not r.ok]
    skipped = [s for s, r in results if r is None]
    for s in skipped:
        print(f"skipped {s.id}: requires auth={s.auth_mode}; pass --password-target/--password or use --legacy",
              file=sys.stderr)
    if failed and all(r.upstream_down for _, r in failed) and ok == 0:
        print(f"parity record: target down: no scenario could reach it ({failed[0][1].error}). "
              f"Partial traces kept, marked incomplete, in {out}", file=sys.stderr)
        return 1
    print(f"recorded {ok}/{len(results)} scenarios into {out}"
          + (f"; {len(failed)} failed (kept as incomplete traces)" if failed else "")
          + (f"; {len(skipped)} skipped" if skipped else ""))
    return 0 if not failed and not skipped else 1


@contextmanager
def boot_legacies(scenarios: list[Scenario], run_dir: Path | None, console: Console) -> Iterator[Targets]:
    """Boot the fake model and a contained legacy per auth mode the scenarios need; stop them on exit."""
    from parity.legacy import FakeModelServer, LegacyGateway, LegacyOptions, find_installation

    need_pw = any(s.auth_mode == "password" for s in scenarios)
    need_token = any(s.auth_mode == "token" for s in scenarios)
    base = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="parity-record-"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    with ExitStack() as stack:
        fm = FakeModelServer().start()
        stack.callback(fm.stop)
        gws: dict[str, Any] = {}
        for mode, needed in (("token", need_token), ("password", need_pw)):
            if not needed:
                continue
            console.print(f"booting a contained {mode}-mode legacy (15-60 s)...")
            try:
                gw = LegacyGateway.start(LegacyOptions(run_dir=base / f"legacy-{mode}-{stamp}", model_url=fm.url,
                                                       auth=mode))
            except ParityError:
                raise
            stack.callback(gw.stop)
            gws[mode] = gw
        secrets: dict[str, str] = {}
        targets: dict[str, Target] = {}
        for mode, gw in gws.items():
            for k, v in gw.secrets().items():
                secrets[f"{k}" if k not in secrets else f"{k}_{mode.upper()}"] = v
            targets[mode] = Target(url=gw.http_url, token=gw.token, password=gw.password, hook_token=gw.hook_token,
                                   name=f"legacy-{mode}", auth_mode=mode)
        # Not a secret, but machine-specific: the legacy reports its own install path (hooks.status,
        # skills.status). A stable placeholder keeps golden traces free of this machine's paths.
        secrets["LEGACY_APP"] = str(find_installation().app_dir)
        yield Targets(targets.get("token"), targets.get("password"), secrets)


