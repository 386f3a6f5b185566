"""Shared pieces of the ``replay`` and ``noise`` commands: trace loading, targets, replay-and-diff.

Internal. I/O shell over ``recorder.replay`` (H2's replayer), ``wire`` and ``diffing``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from diffing.api import diff_observations
from diffing.diff import PairResult
from diffing.rules import load_rules
from recorder.format import Trace, read_trace
from recorder.target import Target
from wire.errors import ConfigError, TraceFormatError
from wire.model import Leg, Pair
from wire.profiles.base import Profile
from wire.profiles.openclaw import get_profile

logger = logging.getLogger(__name__)


def add_target_options(parser: argparse.ArgumentParser, leg: str, *, required: bool = True) -> None:
    env = f"PARITY_{leg.upper()}"
    parser.add_argument(f"--{leg}", required=required, metavar="URL", help=f"{leg} gateway base URL")
    parser.add_argument(
        f"--{leg}-token", default=os.environ.get(f"{env}_TOKEN"), help=f"{leg} gateway token (default: ${env}_TOKEN)"
    )
    parser.add_argument(
        f"--{leg}-password",
        default=os.environ.get(f"{env}_PASSWORD"),
        help=f"{leg} gateway password (default: ${env}_PASSWORD)",
    )
    parser.add_argument(
        f"--{leg}-hook-token",
        default=os.environ.get(f"{env}_HOOK_TOKEN"),
        help=f"{leg} hooks token (default: ${env}_HOOK_TOKEN)",
    )


def target(args: argparse.Namespace, leg: str) -> Target:
    key = leg.replace("-", "_")
    password = getattr(args, f"{key}_password")
    return Target(
        url=getattr(args, key),
        token=getattr(args, f"{key}_token"),
        password=password,
        hook_token=getattr(args, f"{key}_hook_token"),
        name=leg,
        auth_mode="password" if password and not getattr(args, f"{key}_token") else "token",
    )


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("traces", nargs="+", metavar="TRACE", help="trace files (JSONL, format v1)")
    parser.add_argument("--db", required=True, help="parity database URL (sqlite:///file.db or postgresql://...)")
    parser.add_argument("--strict", action="store_true", help="stop at the first corrupt trace line")
    parser.add_argument("--profile", default="openclaw", help="normalization profile (default: openclaw)")
    parser.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="user rule file (TOML/YAML) layered on the profile; repeatable",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="traces replayed at once (default 4)")
    parser.add_argument("--timeout", type=float, default=30.0, help="upper bound for any single wait, seconds")


def profile_from(args: argparse.Namespace) -> Profile:
    try:
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise ConfigError(f"--profile: {exc}") from exc
    for path in args.rules:
        profile = profile.with_rules(load_rules(path))
    return profile


@dataclass(frozen=True, slots=True)
class Loaded:
    path: str
    trace: Trace

    @property
    def scenario(self) -> str:
        return self.trace.header.scenario or Path(self.path).stem


def load_traces(paths: Sequence[str], *, strict: bool) -> tuple[list[Loaded], int]:
    """Read every trace. Strict: the first bad line raises ``TraceFormatError`` (file:line). Otherwise bad
    lines are skipped, each reported on stderr as ``file:line: message``, and counted."""
    out, skipped = [], 0
    for p in paths:
        try:
            with open(p, encoding="utf-8") as fh:
                trace = read_trace(fh, path=p, strict=strict)
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read trace: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise TraceFormatError(f"not UTF-8 text: {exc.reason}", path=p) from exc
        for line, msg in trace.skipped_lines:
            print(f"{p}:{line}: skipped: {msg}", file=sys.stderr)
        skipped += len(trace.skipped_lines)
        if not trace.complete:
            logger.warning("%s: incomplete trace (%s); replaying what it holds", p, trace.error or "no end line")
        out.append(Loaded(p, trace))
    return out, skipped


async def replay_and_diff(
    item: Loaded, legacy: Target, candidate: Target, profile: Profile, *, timeout: float, sequential: bool = False
) -> list[tuple[Pair, PairResult]]:
    """Replay one trace to both targets (at once, or legacy first with ``sequential``), then correlate, pair
    and compare. Use ``sequential`` when both targets are the same gateway: OpenClaw broadcasts events such as
    ``chat``/``agent`` to every operator connection, so overlapping legs would see each other's events."""
    from recorder.replay import replay_trace  # the replayer pulls aiohttp/websockets; import when used

    if sequential:
        lt = await replay_trace(item.trace, legacy, leg=Leg.LEGACY, timeout=timeout)
        ct = await replay_trace(item.trace, candidate, leg=Leg.CANDIDATE, timeout=timeout)
    else:
        lt, ct = await asyncio.gather(
            replay_trace(item.trace, legacy, leg=Leg.LEGACY, timeout=timeout),
            replay_trace(item.trace, candidate, leg=Leg.CANDIDATE, timeout=timeout),
        )
    for t, leg in ((lt, "legacy"), (ct, "candidate")):
        if not t.complete:
            logger.warning("%s: %s replay incomplete: %s", item.path, leg, t.error)
    return diff_observations(lt.observations, ct.observations, profile, scenario=item.scenario)
