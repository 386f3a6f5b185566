"""Noise calibration without a third deployment: legacy against legacy (A/A), Diffy-style.

Owns :class:`NoiseCounter`, :func:`propose`, :func:`is_real_difference`, :func:`matches_rule` and
:func:`export_rules`. Pure; imports ``wire`` and ``diffing`` only.

Diffy runs primary, secondary (a second copy of the primary) and candidate; a field whose candidate
difference rate is not clearly above its primary/secondary noise rate is noise. We get the "secondary" by
replaying the same traces against the legacy again (``parity noise learn --runs N``): every difference between
two legacy runs is, by definition, noise. Each one becomes a *proposed* rule with its evidence (pairs where it
differed / pairs compared on that route / runs); a human accepts or rejects it (``parity noise accept|reject``),
and accepted rules hide matching findings in the gate's parity ratio and export to the user rule file.

Thresholds (Diffy's defaults): a candidate difference is *real* only when both
``(candidate_rate - noise_rate) / candidate_rate > RELATIVE_THRESHOLD`` (20 %) and
``candidate_rate - noise_rate > ABSOLUTE_THRESHOLD`` (0.03 %). A proposal needs
``differing / compared >= ABSOLUTE_THRESHOLD``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from diffing.diff import DiffKind, PairResult
from diffing.store import NoiseRuleRow, signature_path
from wire.normalize import AsSet, Drop, Mask, Rule, When
from wire.profiles.base import Profile

__all__ = [
    "ABSOLUTE_THRESHOLD",
    "RELATIVE_THRESHOLD",
    "NoiseCounter",
    "export_rules",
    "is_real_difference",
    "matches_rule",
    "propose",
]

RELATIVE_THRESHOLD = 0.20
ABSOLUTE_THRESHOLD = 0.0003


def is_real_difference(
    candidate_rate: float,
    noise_rate: float,
    *,
    relative: float = RELATIVE_THRESHOLD,
    absolute: float = ABSOLUTE_THRESHOLD,
) -> bool:
    """Diffy's test: is a candidate difference rate clearly above the A/A noise rate for the same field?"""
    excess = candidate_rate - noise_rate
    if candidate_rate <= 0 or excess <= absolute:
        return False
    return excess / candidate_rate > relative


def matches_rule(rule: NoiseRuleRow, route: str, path: str, kind: str) -> bool:
    """Whether an accepted noise rule covers a finding (route and path are globs; kind exact)."""
    return rule.kind == kind and fnmatchcase(route, rule.route) and fnmatchcase(signature_path(path), rule.path)


@dataclass(slots=True)
class NoiseCounter:
    """Counts A/A evidence: pairs compared per route, pairs differing per (route, path, kind)."""

    compared: dict[str, int] = field(default_factory=dict)
    differing: dict[tuple[str, str, str], int] = field(default_factory=dict)
    runs: int = 0

    def add(self, result: PairResult) -> None:
        self.compared[result.group] = self.compared.get(result.group, 0) + 1
        for key in {(result.group, path, kind.value) for path, kind in result.signature_counts()}:
            self.differing[key] = self.differing.get(key, 0) + 1


def propose(counter: NoiseCounter, *, min_rate: float = ABSOLUTE_THRESHOLD) -> list[dict[str, Any]]:
    """Proposed rules (rows for :meth:`diffing.store.Store.propose_noise`), most frequent first."""
    out: list[dict[str, Any]] = []
    # A/A legs are interchangeable: a field (or event) present on one legacy run and absent on the other is
    # equally likely the other way round, so each one-sided finding also proposes its mirror image.
    differing = dict(counter.differing)
    for (route, path, kind), n in counter.differing.items():
        mirror = _MIRROR.get(kind)
        if mirror is not None:
            differing[(route, path, mirror)] = max(n, counter.differing.get((route, path, mirror), 0))
    for (route, path, kind), n in differing.items():
        compared = counter.compared.get(route, 0)
        if not compared or n / compared < min_rate:
            continue
        action = (
            "drop"
            if kind in (DiffKind.MISSING, DiffKind.EXTRA, DiffKind.TYPE)
            else ("as_set" if kind == DiffKind.ORDER else "mask")
        )
        out.append(
            {
                "route": route,
                "path": path,
                "kind": kind,
                "action": action,
                "differing": n,
                "compared": compared,
                "runs": counter.runs,
                "reason": f"A/A noise: differed in {n} of {compared} legacy/legacy pairs over {counter.runs} run(s)",
            }
        )
    out.sort(key=lambda r: (-r["differing"], r["route"], r["path"], r["kind"]))
    return out


_MIRROR = {
    DiffKind.MISSING.value: DiffKind.EXTRA.value,
    DiffKind.EXTRA.value: DiffKind.MISSING.value,
    DiffKind.EVENT_MISSING.value: DiffKind.EVENT_EXTRA.value,
    DiffKind.EVENT_EXTRA.value: DiffKind.EVENT_MISSING.value,
}

_RESPONSE_PREFIX = re.compile(r"^#\d+\.")

#: Finding kinds a normalization rule can express; the others (event-missing, frame-count, ...) only act
#: through accepted rules in the store.
_EXPORTABLE = {
    DiffKind.VALUE,
    DiffKind.TYPE,
    DiffKind.MISSING,
    DiffKind.EXTRA,
    DiffKind.ORDER,
    DiffKind.HEADER,
    DiffKind.STATUS,
}


def export_rules(rows: Iterable[NoiseRuleRow], profile: Profile) -> tuple[Rule, ...]:
    """Accepted noise rules as normalization rules, scoped by method / event / route with ``When``."""
    out: list[Rule] = []
    for row in rows:
        if row.status != "accepted" or DiffKind(row.kind) not in _EXPORTABLE:
            continue
        path = _RESPONSE_PREFIX.sub("", row.path)
        reason = f"noise rule {row.id}: {row.reason}"
        inner: Rule
        if row.action == "drop":
            inner = Drop(path, reason)
        elif row.action == "as_set":
            inner = AsSet(path, reason)
        else:
            inner = Mask(path, reason)
        if row.route in profile.methods:
            out.append(When(rules=(inner,), method=row.route, reason=reason))
        elif row.route in profile.events:
            out.append(When(rules=(inner,), event=row.route, reason=reason))
        else:
            out.append(When(rules=(inner,), route=row.route, reason=reason))
    return tuple(out)
