"""The parity report: per method/route parity, top mismatch signatures with exemplars, latency; three renderings.

Owns :class:`Report`, :func:`build_report` and the renderers :func:`to_json`, :func:`to_markdown`,
:func:`to_terminal`. Reads the store through its query API only.

Two headline figures (the Python gateway's acceptance numbers):

* **scenario parity**: share of scenarios (traces) whose every pair is equal after the profile and accepted
  noise rules;
* **field parity**: share of compared leaf fields that were equal (legacy-side leaf count). A value missing or
  changed on the candidate makes all its legacy leaves unequal; an extra value or an order finding counts one.
  So does a whole frame: a legacy frame or exchange the candidate never sent counts all its leaves, an extra
  candidate frame one. Every finding counts, including those past the per-pair record cap
  (``diffing.diff.MAX_DIFFS_PER_PAIR``).
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from diffing.noise import matches_rule
from diffing.store import Store
from diffing.timing import latency_stats

__all__ = ["Report", "RouteRow", "SignatureLine", "build_report", "to_json", "to_markdown", "to_terminal"]


@dataclass(frozen=True, slots=True)
class RouteRow:
    route: str
    pairs: int
    matches: int
    raw_matches: int
    unmatched: int
    legacy_errors: int
    candidate_errors: int
    parity: float | None
    field_parity: float | None
    legacy_ms: tuple[float | None, float | None, float | None]
    candidate_ms: tuple[float | None, float | None, float | None]
    ratio: float | None
    ratio_ci: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class SignatureLine:
    id: int
    route: str
    path: str
    kind: str
    count_in_run: int
    count_total: int
    review: str
    exemplars: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Report:
    run_id: int
    run_name: str
    pairs: int
    matches: int
    scenarios: int
    scenarios_equal: int
    fields_total: int
    fields_equal: int
    routes: tuple[RouteRow, ...]
    signatures: tuple[SignatureLine, ...]

    @property
    def parity(self) -> float | None:
        return self.matches / self.pairs if self.pairs else None

    @property
    def scenario_parity(self) -> float | None:
        return self.scenarios_equal / self.scenarios if self.scenarios else None

    @property
    def field_parity(self) -> float | None:
        return self.fields_equal / self.fields_total if self.fields_total else None


def _ms(t: tuple[float | None, float | None, float | None]) -> tuple[float | None, float | None, float | None]:
    return tuple(None if v is None else round(v * 1000, 3) for v in t)  # type: ignore[return-value]


async def build_report(store: Store, run_id: int | None = None, *, top: int = 10) -> Report:
    """Build the report for ``run_id`` (default: the latest run). Raises ``LookupError`` when there is none."""
    runs = await store.runs()
    if not runs:
        raise LookupError("the parity database holds no runs")
    run = runs[-1] if run_id is None else next((r for r in runs if r.id == run_id), None)
    if run is None:
        raise LookupError(f"no run with id {run_id} (runs: {', '.join(str(r.id) for r in runs)})")
    stats = await store.route_stats(run.id)
    rows = []
    for s in stats:
        lat = latency_stats(s.legacy_latencies, s.candidate_latencies, s.latencies)
        rows.append(
            RouteRow(
                route=s.route,
                pairs=s.pairs,
                matches=s.matches,
                raw_matches=s.raw_matches,
                unmatched=s.unmatched,
                legacy_errors=s.legacy_errors,
                candidate_errors=s.candidate_errors,
                parity=s.matches / s.pairs if s.pairs else None,
                field_parity=s.fields_equal / s.fields_total if s.fields_total else None,
                legacy_ms=_ms(lat.legacy),
                candidate_ms=_ms(lat.candidate),
                ratio=lat.ratio,
                ratio_ci=lat.ratio_ci,
            )
        )
    # Scenario parity: a scenario is equal when all its pairs match after noise.
    pairs = await store.pair_rows(run.id)
    diffs = await store.diff_rows(run.id)
    accepted = await store.noise_rules(status="accepted")
    bad = {
        d["pair_no"]
        for d in diffs
        if not any(matches_rule(r, d["route"], d["signature_path"], d["kind"]) for r in accepted)
    }
    scen: dict[str, bool] = {}
    for p in pairs:
        name = p["scenario"] or "<none>"
        ok = p["equal"] or p["pair_no"] not in bad
        scen[name] = scen.get(name, True) and ok
    in_run: dict[tuple[str, str, str], int] = {}
    for s in stats:
        for (path, kind), n in s.signatures.items():
            in_run[(s.route, path, kind)] = n
    sig_lines = []
    for sig in await store.signatures():
        in_this = in_run.get((sig.route, sig.path, sig.kind))
        if in_this:
            run_ex = [e for e in sig.exemplars if e.get("run") == run.id] or sig.exemplars
            sig_lines.append(
                SignatureLine(sig.id, sig.route, sig.path, sig.kind, in_this, sig.count, sig.review, run_ex)
            )
    sig_lines.sort(key=lambda s: (-s.count_in_run, s.route, s.path))
    return Report(
        run_id=run.id,
        run_name=run.name,
        pairs=sum(s.pairs for s in stats),
        matches=sum(s.matches for s in stats),
        scenarios=len(scen),
        scenarios_equal=sum(1 for v in scen.values() if v),
        fields_total=sum(s.fields_total for s in stats),
        fields_equal=sum(s.fields_equal for s in stats),
        routes=tuple(rows),
        signatures=tuple(sig_lines[:top]),
    )


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.2f} %"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _ci(r: RouteRow) -> str:
    if r.ratio is None or r.ratio_ci is None:
        return "n/a"
    return f"{r.ratio:.2f} [{r.ratio_ci[0]:.2f}, {r.ratio_ci[1]:.2f}]"


def to_json(report: Report) -> str:
    d = asdict(report)
    d.update(parity=report.parity, scenario_parity=report.scenario_parity, field_parity=report.field_parity)
    return json.dumps(d, indent=2, sort_keys=True, default=str)


def _headline(report: Report) -> list[str]:
    return [
        f"run {report.run_id} {report.run_name!r}: {report.pairs} pairs",
        f"pair parity {_pct(report.parity)}; scenario parity {_pct(report.scenario_parity)} "
        f"({report.scenarios_equal}/{report.scenarios}); field parity {_pct(report.field_parity)} "
        f"({report.fields_equal}/{report.fields_total})",
    ]


_COLS = (
    "route",
    "pairs",
    "parity",
    "raw parity",
    "unmatched",
    "errors L/C",
    "legacy p50/p95/p99 ms",
    "candidate p50/p95/p99 ms",
    "ratio [95% CI]",
)


def _cells(r: RouteRow) -> list[str]:
    return [
        r.route,
        str(r.pairs),
        _pct(r.parity),
        _pct(r.raw_matches / r.pairs if r.pairs else None),
        str(r.unmatched),
        f"{r.legacy_errors}/{r.candidate_errors}",
        "/".join(_num(v) for v in r.legacy_ms),
        "/".join(_num(v) for v in r.candidate_ms),
        _ci(r),
    ]


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    out = [f"# Parity report — {line}" if i == 0 else line for i, line in enumerate(_headline(report))]
    out += ["", "## Per method / route", "", "| " + " | ".join(_COLS) + " |", "|" + "---|" * len(_COLS)]
    out += ["| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in report.routes]
    out += ["", "## Top mismatch signatures", ""]
    if not report.signatures:
        out.append("None.")
    for s in report.signatures:
        out.append(
            f"- **{_md_escape(s.route)}** `{s.path}` {s.kind}: {s.count_in_run} in this run "
            f"({s.count_total} total, {s.review})"
        )
        for e in s.exemplars[:3]:
            out.append(
                f"  - `{e.get('conn')}/{e.get('key')}` legacy `{_md_escape(str(e.get('legacy')))}` "
                f"candidate `{_md_escape(str(e.get('candidate')))}`"
            )
    return "\n".join(out) + "\n"


def to_terminal(report: Report, *, width: int = 160) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    for line in _headline(report):
        console.print(line, markup=False, highlight=False)
    table = Table(title="per method / route")
    for c in _COLS:
        table.add_column(c)
    for r in report.routes:
        table.add_row(*(Text(c) for c in _cells(r)))
    console.print(table)
    sig = Table(title="top mismatch signatures")
    for c in ("id", "route", "path", "kind", "in run", "total", "review", "exemplar (legacy -> candidate)"):
        sig.add_column(c)
    for s in report.signatures:
        e = s.exemplars[0] if s.exemplars else {}
        cells = (
            str(s.id),
            s.route,
            s.path,
            s.kind,
            str(s.count_in_run),
            str(s.count_total),
            s.review,
            f"{e.get('legacy')} -> {e.get('candidate')}",
        )
        sig.add_row(*(Text(c) for c in cells))
    console.print(sig)
    return buf.getvalue()
