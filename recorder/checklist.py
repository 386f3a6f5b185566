"""The compatibility checklist: load ``docs/compatibility.yaml``, check it against the scenarios, render
``docs/compatibility.md``.

Owns :class:`Checklist` (items, statuses, gaps), :func:`load_checklist`, :func:`check` (cited scenario ids must
exist) and :func:`render`. ``python -m recorder.checklist [--check]`` rewrites (or verifies) the Markdown.
Imports the stdlib, PyYAML and ``recorder.scenario``.

Statuses: ``covered`` (the item lists scenarios), ``partial`` (scenarios plus a ``why`` saying what is not
covered), ``not-coverable`` (no scenarios; ``why`` required).

A gap may list ``sigs``: the mismatch signatures it explains, each ``"<group> <signature path glob>"`` (the
group is the method, event or route template; ``*`` in the glob spans dots), e.g.
``"connect payload.features.methods.*"``; its ``scenarios`` (optional) limit them to those scenarios. The golden
replay against pyclaw (tests/gateway/test_gw_golden.py) fails on any difference no gap explains, and on a gap
that is not timing-dependent (status ``environment``) but no longer shows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from recorder.scenario import load_scenarios
from wire.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["Checklist", "Gap", "Item", "check", "load_checklist", "render"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_YAML = ROOT / "docs" / "compatibility.yaml"
DEFAULT_MD = ROOT / "docs" / "compatibility.md"
DEFAULT_SCENARIOS = ROOT / "tests" / "scenarios"
STATUSES = ("covered", "partial", "not-coverable")
GAPS_HEADING = "## Known differences (legacy vs pyclaw)"


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    item: str
    section: str
    ref: str = ""
    scenarios: tuple[str, ...] = ()
    status: str = "covered"
    why: str = ""


@dataclass(frozen=True, slots=True)
class Gap:
    item: str
    field: str
    legacy: str
    pyclaw: str
    status: str = "open"
    why: str = ""
    sigs: tuple[tuple[str, str], ...] = ()  # (group, signature path glob)
    scenarios: tuple[str, ...] = ()  # when set, the sigs explain differences in these scenarios only

    def explains(self, group: str, path: str, scenario: str | None = None) -> bool:
        """Whether this gap names the mismatch signature ``(group, path)`` (seen in ``scenario``)."""
        if self.scenarios and scenario not in self.scenarios:
            return False
        return any(group == g and fnmatchcase(path, glob) for g, glob in self.sigs)


@dataclass(frozen=True, slots=True)
class Checklist:
    sections: tuple[tuple[str, str], ...]  # (id, title)
    items: tuple[Item, ...]
    gaps: tuple[Gap, ...] = ()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for it in self.items:
            out[it.status] += 1
        return out


def _str(d: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    v = d.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str | int | float) or isinstance(v, bool) or (required and str(v) == ""):
        raise ConfigError(f"{where}.{key}: expected a non-empty string, got {v!r}")
    return str(v)


def _scenario_ids(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
        raise ConfigError(f"{where}: expected a list of scenario ids")
    return tuple(raw)


def _sigs(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise ConfigError(f"{where}: expected a list of \"<group> <signature path glob>\" strings")
    out = []
    for k, sig in enumerate(raw):
        group, sep, glob = sig.strip().rpartition(" ")
        if not sep or not group or not glob:
            raise ConfigError(f"{where}[{k}]: expected \"<group> <signature path glob>\", got {sig!r}")
        out.append((group, glob))
    return tuple(out)


def load_checklist(path: Path = DEFAULT_YAML) -> Checklist:
    """Parse the checklist; raises :class:`ConfigError` naming the key path of what is wrong."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("sections"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'sections' list")
    sections: list[tuple[str, str]] = []
    items: list[Item] = []
    seen: set[str] = set()
    for i, sec in enumerate(doc["sections"]):
        where = f"sections[{i}]"
        if not isinstance(sec, dict) or not isinstance(sec.get("items"), list):
            raise ConfigError(f"{where}: expected {{id, title, items: [...]}}")
        sid, title = _str(sec, "id", where), _str(sec, "title", where)
        sections.append((sid, title))
        for j, raw in enumerate(sec["items"]):
            w = f"{where}.items[{j}]"
            if not isinstance(raw, dict):
                raise ConfigError(f"{w}: expected a mapping")
            unknown = set(raw) - {"id", "item", "ref", "scenarios", "status", "why"}
            if unknown:
                raise ConfigError(f"{w}: unknown keys {sorted(unknown)}")
            iid = _str(raw, "id", w)
            if iid in seen:
                raise ConfigError(f"{w}.id: duplicate item id {iid!r}")
            seen.add(iid)
            scen = raw.get("scenarios") or []
            if not isinstance(scen, list) or not all(isinstance(s, str) for s in scen):
                raise ConfigError(f"{w}.scenarios: expected a list of scenario ids")
            status = raw.get("status") or ("covered" if scen else "")
            if status not in STATUSES:
                raise ConfigError(f"{w}.status: expected one of {', '.join(STATUSES)} (an item without scenarios "
                                  f"must say not-coverable), got {status!r}")
            why = _str(raw, "why", w, required=status != "covered")
            if status == "not-coverable" and scen:
                raise ConfigError(f"{w}: not-coverable but cites scenarios")
            if status in ("covered", "partial") and not scen:
                raise ConfigError(f"{w}: status {status} needs scenarios")
            items.append(Item(id=iid, item=_str(raw, "item", w), section=sid, ref=_str(raw, "ref", w, required=False),
                              scenarios=tuple(scen), status=status, why=why))
    gaps: list[Gap] = []
    for k, raw in enumerate(doc.get("gaps") or []):
        w = f"gaps[{k}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{w}: expected a mapping")
        unknown = set(raw) - {"item", "field", "legacy", "pyclaw", "status", "why", "sigs", "scenarios"}
        if unknown:
            raise ConfigError(f"{w}: unknown keys {sorted(unknown)}")
        gaps.append(Gap(item=_str(raw, "item", w), field=_str(raw, "field", w), legacy=_str(raw, "legacy", w),
                        pyclaw=_str(raw, "pyclaw", w), status=_str(raw, "status", w, required=False) or "open",
                        why=_str(raw, "why", w, required=False), sigs=_sigs(raw.get("sigs"), f"{w}.sigs"),
                        scenarios=_scenario_ids(raw.get("scenarios"), f"{w}.scenarios")))
    return Checklist(sections=tuple(sections), items=tuple(items), gaps=tuple(gaps))


def check(checklist: Checklist, scenario_ids: Iterable[str]) -> list[str]:
    """Problems: items or gaps citing scenario ids that do not exist, gaps naming unknown items."""
    known = set(scenario_ids)
    item_ids = {it.id for it in checklist.items}
    problems = [f"item {it.id}: unknown scenario {s!r}" for it in checklist.items for s in it.scenarios
                if s not in known]
    problems += [f"gap {g.field}: unknown checklist item {g.item!r}" for g in checklist.gaps if g.item not in item_ids]
    problems += [f"gap {g.field}: unknown scenario {s!r}" for g in checklist.gaps for s in g.scenarios if s not in known]
    return problems


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(checklist: Checklist) -> str:
    """The Markdown page (deterministic: same YAML, same bytes)."""
    c = checklist.counts()
    lines = [
        "# Compatibility checklist (legacy openclaw 2026.9.6, WS protocol 4)",
        "",
        "<!-- Generated by `python -m recorder.checklist` from docs/compatibility.yaml. Do not edit by hand. -->",
        "",
        f"**{len(checklist.items)} items: {c['covered']} covered, {c['partial']} partial, "
        f"{c['not-coverable']} not coverable yet.** Covered items cite golden scenarios (`tests/scenarios`, traces "
        "in `tests/golden`); `ref` is the section of the gateway reference.",
        "",
    ]
    for sid, title in checklist.sections:
        lines += [f"## {title}", "", "| id | item | ref | status | scenarios / why |", "|---|---|---|---|---|"]
        for it in (i for i in checklist.items if i.section == sid):
            evidence = ", ".join(f"`{s}`" for s in it.scenarios)
            if it.why:
                evidence = f"{evidence} — {it.why}" if evidence else it.why
            lines.append(f"| `{it.id}` | {_cell(it.item)} | {_cell(it.ref)} | {it.status} | {_cell(evidence)} |")
        lines.append("")
    lines += [GAPS_HEADING, "", "<!-- Generated from the `gaps:` list of docs/compatibility.yaml. -->", "",
              "Each gap lists the mismatch signatures it explains (`sigs` in docs/compatibility.yaml). "
              "`tests/gateway/test_gw_golden.py` replays every golden trace against the legacy and pyclaw (same "
              "config file) and fails on any difference no gap explains; it prints scenario and field parity.", ""]
    if checklist.gaps:
        lines += ["| item | field | legacy | pyclaw | status | why |", "|---|---|---|---|---|---|"]
        lines += [f"| `{g.item}` | `{_cell(g.field)}` | {_cell(g.legacy)} | {_cell(g.pyclaw)} | {g.status} | "
                  f"{_cell(g.why)} |" for g in checklist.gaps]
    else:
        lines.append("None recorded yet.")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorder.checklist", description=__doc__.splitlines()[0])
    parser.add_argument("--yaml", type=Path, default=DEFAULT_YAML)
    parser.add_argument("--md", type=Path, default=DEFAULT_MD)
    parser.add_argument("--scenarios", type=Path, default=DEFAULT_SCENARIOS)
    parser.add_argument("--check", action="store_true", help="exit 1 if the .md is stale or an id is unknown")
    args = parser.parse_args(argv)
    checklist = load_checklist(args.yaml)
    ids = [s.id for s in load_scenarios([args.scenarios])]
    slow = args.scenarios / "slow"
    if slow.is_dir():
        ids += [s.id for s in load_scenarios([slow])]
    problems = check(checklist, ids)
    for p in problems:
        print(f"{args.yaml}: {p}", file=sys.stderr)
    text = render(checklist)
    if args.check:
        current = args.md.read_text(encoding="utf-8") if args.md.exists() else ""
        if current != text:
            print(f"{args.md} is stale: run python -m recorder.checklist", file=sys.stderr)
            return 1
        return 1 if problems else 0
    args.md.write_text(text, encoding="utf-8")
    c = checklist.counts()
    print(f"wrote {args.md}: {len(checklist.items)} items, {c['covered']} covered, {c['partial']} partial, "
          f"{c['not-coverable']} not coverable")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
