"""The cutover gate: policy, per-group verdicts, and the JUnit/Markdown writers. Pure: no database, no clock.

Owns the policy file format (TOML, documented in ``docs/cutover.md`` with the example ``docs/cutover.toml``),
the verdict rules, and how a verdict is written for CI (JUnit XML, one test case per group) and for a pull-request
comment (Markdown). ``diffing.cli_gate`` loads the per-group figures from the parity database and calls
:func:`evaluate`. May import: stdlib, ``wire.errors``.

Verdict per group, in this order:

1. ``fail`` when a mismatch signature reviewed as ``bug``, or an unreviewed one above the group's allowed
   severity, was seen in the group (real evidence, whatever the sample size); ``expected`` ones never block;
2. ``inconclusive`` when fewer than ``min_samples`` compared pairs, or no paired latencies for the ratio;
3. ``fail`` when parity < ``min_parity``, the latency-ratio CI upper bound > ``max_latency_ratio``, or the
   candidate error rate exceeds the legacy's by more than ``max_error_rate_delta``;
4. ``pass`` otherwise.

Overall: any fail -> fail (exit 1); else any inconclusive -> inconclusive (exit 2); else pass (exit 0).
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wire.errors import ConfigError

__all__ = [
    "SEVERITIES",
    "Check",
    "GatePolicy",
    "GateResult",
    "GroupPolicy",
    "GroupResult",
    "GroupStats",
    "SignatureStat",
    "Verdict",
    "evaluate",
    "exit_code",
    "group_routes",
    "judge",
    "load_policy",
    "parse_policy",
    "to_junit",
    "to_markdown",
]

#: Severity levels, lowest first. A signature's severity comes from its diff kind (``GatePolicy.severity_of``).
SEVERITIES: tuple[str, ...] = ("info", "minor", "major", "critical")

#: Default severity per diff kind (the kinds ``diffing.diff`` records). Overridable under ``[severity]``.
DEFAULT_KIND_SEVERITY: Mapping[str, str] = {
    "order": "minor",
    "header": "minor",
    "value": "major",
    "type": "major",
    "missing": "major",
    "extra": "major",
    "event-missing": "major",
    "event-extra": "major",
    "frame-count": "major",
    "status": "critical",
    "close-code": "critical",
    "protocol-error": "critical",
}

UNMATCHED_GROUP = "other"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


_EXIT = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 2}


def exit_code(verdict: Verdict) -> int:
    """pass 0, fail 1, inconclusive 2."""
    return _EXIT[verdict]


# -- policy --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupPolicy:
    """Thresholds for one method/route group. ``match`` holds globs over route names (``chat.*``, ``POST /hooks/*``)."""

    name: str
    match: tuple[str, ...]
    min_samples: int = 50
    min_parity: float = 0.99
    max_latency_ratio: float = 1.5
    max_error_rate_delta: float = 0.01
    max_unreviewed_severity: str = "minor"
    optional: bool = False

    def matches(self, route: str) -> bool:
        return any(fnmatch.fnmatchcase(route, pattern) for pattern in self.match)


@dataclass(frozen=True, slots=True, kw_only=True)
class GatePolicy:
    """The whole policy: ordered groups (first match wins) plus a catch-all group for unmatched routes."""

    groups: tuple[GroupPolicy, ...]
    other: GroupPolicy
    confidence: float = 0.95
    kind_severity: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_KIND_SEVERITY))
    source: str = "<policy>"

    def group_of(self, route: str) -> GroupPolicy:
        for group in self.groups:
            if group.matches(route):
                return group
        return self.other

    def severity_of(self, kind: str) -> str:
        return self.kind_severity.get(kind, "major")

    @property
    def all_groups(self) -> tuple[GroupPolicy, ...]:
        return (*self.groups, self.other)


_THRESHOLD_KEYS: dict[str, type] = {
    "min_samples": int,
    "min_parity": float,
    "max_latency_ratio": float,
    "max_error_rate_delta": float,
    "max_unreviewed_severity": str,
    "optional": bool,
}


def _thresholds(table: Mapping[str, Any], where: str, *, allowed: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key (expected one of {', '.join(sorted(allowed))})")
        if key not in _THRESHOLD_KEYS:
            continue
        want = _THRESHOLD_KEYS[key]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if want is int and isinstance(value, bool) or not isinstance(value, want):
            raise ConfigError(f"{where}.{key}: expected {want.__name__}, got {type(value).__name__} {value!r}")
        out[key] = value
    if "min_samples" in out and out["min_samples"] < 1:
        raise ConfigError(f"{where}.min_samples: must be >= 1, got {out['min_samples']}")
    for key in ("min_parity", "max_error_rate_delta"):
        if key in out and not 0.0 <= out[key] <= 1.0:
            raise ConfigError(f"{where}.{key}: must be within [0, 1], got {out[key]}")
    if "max_latency_ratio" in out and not out["max_latency_ratio"] > 0:
        raise ConfigError(f"{where}.max_latency_ratio: must be > 0, got {out['max_latency_ratio']}")
    if "max_unreviewed_severity" in out and out["max_unreviewed_severity"] not in SEVERITIES:
        raise ConfigError(
            f"{where}.max_unreviewed_severity: {out['max_unreviewed_severity']!r} is not one of {', '.join(SEVERITIES)}"
        )
    return out


def parse_policy(data: Mapping[str, Any], *, source: str = "<policy>") -> GatePolicy:
    """Build a :class:`GatePolicy` from parsed TOML. Raises :class:`ConfigError` naming the key path."""
    known = {"defaults", "group", "severity", "confidence"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{source}: {key}: unknown top-level key (expected one of {', '.join(sorted(known))})")
    defaults_table = data.get("defaults", {})
    if not isinstance(defaults_table, Mapping):
        raise ConfigError(f"{source}: defaults: expected a table")
    defaults = _thresholds(defaults_table, f"{source}: defaults", allowed=set(_THRESHOLD_KEYS))
    confidence = data.get("confidence", 0.95)
    if not isinstance(confidence, float) or not 0.5 <= confidence < 1.0:
        raise ConfigError(f"{source}: confidence: expected a float in [0.5, 1), got {confidence!r}")
    severity = dict(DEFAULT_KIND_SEVERITY)
    sev_table = data.get("severity", {})
    if not isinstance(sev_table, Mapping):
        raise ConfigError(f"{source}: severity: expected a table of diff kind = severity")
    for kind, level in sev_table.items():
        if level not in SEVERITIES:
            raise ConfigError(f"{source}: severity.{kind}: {level!r} is not one of {', '.join(SEVERITIES)}")
        severity[kind] = level
    groups_data = data.get("group", [])
    if not isinstance(groups_data, list):
        raise ConfigError(f"{source}: group: expected an array of tables ([[group]])")
    groups: list[GroupPolicy] = []
    seen: set[str] = set()
    for index, table in enumerate(groups_data):
        where = f"{source}: group[{index}]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: expected a table")
        name = table.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: required, a non-empty string")
        if name in seen or name == UNMATCHED_GROUP:
            raise ConfigError(
                f"{where}.name: {name!r} is used twice (or is the reserved catch-all {UNMATCHED_GROUP!r})"
            )
        seen.add(name)
        match = table.get("match")
        if isinstance(match, str):
            match = [match]
        if not isinstance(match, list) or not match or not all(isinstance(m, str) and m for m in match):
            raise ConfigError(f"{where}.match: required, a glob or a non-empty list of globs over route names")
        overrides = _thresholds(
            {k: v for k, v in table.items() if k not in ("name", "match")},
            where,
            allowed=set(_THRESHOLD_KEYS),
        )
        groups.append(GroupPolicy(name=name, match=tuple(match), **{**defaults, **overrides}))
    other = GroupPolicy(name=UNMATCHED_GROUP, match=("*",), **defaults)
    return GatePolicy(groups=tuple(groups), other=other, confidence=confidence, kind_severity=severity, source=source)


def load_policy(path: str) -> GatePolicy:
    """Read a TOML policy file. Raises :class:`ConfigError` with the file (and line, for TOML syntax) named."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read policy: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return parse_policy(data, source=path)


# -- figures -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureStat:
    """One mismatch signature as the gate sees it."""

    route: str
    path: str
    kind: str
    count: int
    review: str = "unreviewed"  # unreviewed | expected | bug (the store's review states)
    example: str = ""

    @property
    def blocks_always(self) -> bool:
        """A signature reviewed as a bug blocks the cutover whatever its severity."""
        return self.review == "bug"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStats:
    """Figures for one group, computed from the database (``diffing.cli_gate``) or crafted in tests.

    ``pairs`` counts compared pairs; ``matches`` those equal after the profile and accepted noise rules.
    ``legacy_errors``/``candidate_errors`` count failed exchanges per leg out of ``pairs`` each. The latency
    ratio is candidate/legacy over paired latencies: point estimate and confidence interval (None when no pair
    had both latencies).
    """

    group: str
    routes: tuple[str, ...] = ()
    pairs: int = 0
    matches: int = 0
    legacy_errors: int = 0
    candidate_errors: int = 0
    latency_ratio: float | None = None
    latency_ratio_ci: tuple[float, float] | None = None
    signatures: tuple[SignatureStat, ...] = ()

    @property
    def parity(self) -> float | None:
        return self.matches / self.pairs if self.pairs else None

    @property
    def error_rate_delta(self) -> float | None:
        if not self.pairs:
            return None
        return (self.candidate_errors - self.legacy_errors) / self.pairs


@dataclass(frozen=True, slots=True)
class Check:
    """One criterion: ``ok`` None means it could not be judged (not enough data)."""

    name: str
    ok: bool | None
    evidence: str


@dataclass(frozen=True, slots=True)
class GroupResult:
    policy: GroupPolicy
    stats: GroupStats
    verdict: Verdict
    checks: tuple[Check, ...]
    skipped: bool = False

    @property
    def reason(self) -> str:
        bad = [c for c in self.checks if c.ok is False] or [c for c in self.checks if c.ok is None]
        return "; ".join(c.evidence for c in bad) if bad else "all checks passed"


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: Verdict
    groups: tuple[GroupResult, ...]
    policy_source: str
    database: str

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict)


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "n/a" if x is None or math.isnan(x) else format(x, spec)


def judge(policy: GroupPolicy, stats: GroupStats, gate: GatePolicy) -> GroupResult:
    """Verdict for one group (rules in the module docstring)."""
    if stats.pairs == 0 and policy.optional:
        check = Check("samples", None, "no traffic in this optional group")
        return GroupResult(policy, stats, Verdict.PASS, (check,), skipped=True)
    allowed = SEVERITIES.index(policy.max_unreviewed_severity)
    blocking = [
        s
        for s in stats.signatures
        if s.blocks_always or (s.review == "unreviewed" and SEVERITIES.index(gate.severity_of(s.kind)) > allowed)
    ]
    blocking.sort(key=lambda s: (-SEVERITIES.index(gate.severity_of(s.kind)), -s.count, s.route, s.path))
    if blocking:
        shown = ", ".join(
            f"{gate.severity_of(s.kind)} {s.kind} at {s.route} {s.path or '<root>'} x{s.count}"
            + (" (bug)" if s.blocks_always else "")
            for s in blocking[:5]
        )
        more = f" (+{len(blocking) - 5} more)" if len(blocking) > 5 else ""
        sig = Check(
            "signatures",
            False,
            f"{len(blocking)} blocking signature(s) (reviewed as bug, or unreviewed above "
            f"{policy.max_unreviewed_severity}): {shown}{more}",
        )
    else:
        sig = Check("signatures", True, f"no unreviewed signature above {policy.max_unreviewed_severity}")

    samples = Check(
        "samples",
        stats.pairs >= policy.min_samples,
        f"{stats.pairs} compared pairs (min {policy.min_samples})",
    )
    if stats.pairs < policy.min_samples:
        samples = Check("samples", None, f"too few samples: {stats.pairs} compared pairs < min {policy.min_samples}")
    parity = stats.parity
    parity_check = Check(
        "parity",
        None if parity is None else parity >= policy.min_parity,
        f"parity {_fmt(parity)} ({stats.matches}/{stats.pairs}) vs min {policy.min_parity}",
    )
    if stats.latency_ratio_ci is None:
        latency = Check(
            "latency_ratio", None, f"no paired latencies; latency ratio CI unknown (max {policy.max_latency_ratio})"
        )
    else:
        low, high = stats.latency_ratio_ci
        latency = Check(
            "latency_ratio",
            high <= policy.max_latency_ratio,
            f"latency ratio {_fmt(stats.latency_ratio, '.3f')} CI{int(gate.confidence * 100)} "
            f"[{_fmt(low, '.3f')}, {_fmt(high, '.3f')}] upper vs max {policy.max_latency_ratio}",
        )
    delta = stats.error_rate_delta
    errors = Check(
        "error_rate_delta",
        None if delta is None else delta <= policy.max_error_rate_delta,
        f"candidate error rate delta {_fmt(delta)} (candidate {stats.candidate_errors}, legacy {stats.legacy_errors}"
        f" of {stats.pairs}) vs max {policy.max_error_rate_delta}",
    )
    if samples.ok is None:
        # Figures from too few pairs are shown, not judged: only a blocking signature can fail such a group.
        parity_check, latency, errors = (
            Check(c.name, None, f"{c.evidence} (not judged: too few samples)") for c in (parity_check, latency, errors)
        )
    checks = (samples, parity_check, latency, errors, sig)
    if sig.ok is False:
        verdict = Verdict.FAIL
    elif samples.ok is None or latency.ok is None:
        verdict = Verdict.INCONCLUSIVE
    elif any(c.ok is False for c in checks):
        verdict = Verdict.FAIL
    else:
        verdict = Verdict.PASS
    return GroupResult(policy, stats, verdict, checks)


def evaluate(policy: GatePolicy, stats: Iterable[GroupStats], *, database: str = "") -> GateResult:
    """Judge every group of ``policy``; groups without figures count as empty."""
    by_name = {s.group: s for s in stats}
    unknown = set(by_name) - {g.name for g in policy.all_groups}
    if unknown:
        raise ConfigError(f"{policy.source}: figures for groups not in the policy: {', '.join(sorted(unknown))}")
    results: list[GroupResult] = []
    for group in policy.all_groups:
        figures = by_name.get(group.name, GroupStats(group=group.name))
        if group is policy.other and figures.pairs == 0:
            continue  # the catch-all only appears when something fell into it
        results.append(judge(group, figures, policy))
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        overall = Verdict.FAIL
    elif Verdict.INCONCLUSIVE in verdicts or not results:
        overall = Verdict.INCONCLUSIVE
    else:
        overall = Verdict.PASS
    return GateResult(overall, tuple(results), policy.source, database)


# -- writers ---------------------------------------------------------------------------------------------------


def _evidence(result: GroupResult) -> str:
    lines = [f"group {result.policy.name}: {result.verdict.value}"]
    if result.stats.routes:
        lines.append("routes: " + ", ".join(result.stats.routes))
    for check in result.checks:
        mark = {True: "ok", False: "FAIL", None: "??"}[check.ok]
        lines.append(f"[{mark}] {check.name}: {check.evidence}")
    for s in result.stats.signatures[:5]:
        state = s.review
        example = f" e.g. {s.example}" if s.example else ""
        lines.append(f"signature {s.kind} {s.route} {s.path or '<root>'} x{s.count} ({state}){example}")
    return "\n".join(lines)


def to_junit(result: GateResult) -> bytes:
    """JUnit XML: one ``<testcase>`` per group; fail -> ``<failure>``, inconclusive -> ``<skipped>``."""
    failures = sum(r.verdict is Verdict.FAIL for r in result.groups)
    skipped = sum(r.verdict is Verdict.INCONCLUSIVE or r.skipped for r in result.groups)
    suites = ET.Element("testsuites", name="parity gate")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name="parity-gate",
        tests=str(len(result.groups)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=result.verdict.value)
    ET.SubElement(props, "property", name="policy", value=result.policy_source)
    ET.SubElement(props, "property", name="database", value=result.database)
    for r in result.groups:
        case = ET.SubElement(suite, "testcase", classname="parity.gate", name=r.policy.name)
        evidence = _evidence(r)
        if r.verdict is Verdict.FAIL:
            node = ET.SubElement(case, "failure", message=r.reason, type="parity-fail")
            node.text = evidence
        elif r.verdict is Verdict.INCONCLUSIVE or r.skipped:
            node = ET.SubElement(case, "skipped", message=("inconclusive: " if not r.skipped else "") + r.reason)
            node.text = evidence
        ET.SubElement(case, "system-out").text = evidence
    ET.indent(suites)
    body: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


_ICON = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.INCONCLUSIVE: "INCONCLUSIVE"}


def _md_cell(text: str) -> str:
    """Safe inside a table cell or an HTML ``<summary>``: route names like ``<close>`` must not become tags."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: GateResult) -> str:
    """A pull-request comment: overall verdict, one row per group, then the evidence of non-passing groups."""
    lines = [
        f"## Parity gate: **{_ICON[result.verdict]}** (exit {result.exit_code})",
        "",
        f"Policy `{result.policy_source}`" + (f", database `{result.database}`" if result.database else "") + ".",
        "",
        "| group | verdict | pairs | parity | latency ratio (CI upper) | error delta | blocking signatures |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result.groups:
        s = r.stats
        upper = s.latency_ratio_ci[1] if s.latency_ratio_ci else None
        blocking = next((c for c in r.checks if c.name == "signatures"), None)
        n_block = blocking.evidence.split(" ", 1)[0] if blocking is not None and blocking.ok is False else "0"
        verdict = "skipped (no traffic)" if r.skipped else _ICON[r.verdict]
        lines.append(
            f"| {_md_cell(r.policy.name)} | {verdict} | {s.pairs} | {_fmt(s.parity)} | "
            f"{_fmt(s.latency_ratio, '.3f')} ({_fmt(upper, '.3f')}) | {_fmt(s.error_rate_delta)} | {n_block} |"
        )
    details = [r for r in result.groups if r.verdict is not Verdict.PASS]
    if details:
        lines += ["", "### Evidence", ""]
        for r in details:
            lines.append(
                f"<details><summary>{_md_cell(r.policy.name)}: {r.verdict.value} — {_md_cell(r.reason)}</summary>"
            )
            lines += ["", "```", _evidence(r), "```", "", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


def group_routes(policy: GatePolicy, routes: Sequence[str]) -> dict[str, list[str]]:
    """Route names bucketed by policy group (first matching group wins; the rest go to ``other``)."""
    out: dict[str, list[str]] = {g.name: [] for g in policy.all_groups}
    for route in routes:
        out[policy.group_of(route).name].append(route)
    return out
