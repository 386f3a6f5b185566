"""The compatibility checklist: every cited scenario exists, the rendered Markdown is current, bad YAML is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.checklist import DEFAULT_MD, DEFAULT_YAML, GAPS_HEADING, Gap, check, load_checklist, main, render
from recorder.scenario import load_scenarios
from wire.errors import ConfigError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _ids() -> list[str]:
    return [s.id for s in load_scenarios([SCENARIOS])] + [s.id for s in load_scenarios([SCENARIOS / "slow"])]


def test_every_cited_scenario_exists() -> None:
    assert check(load_checklist(DEFAULT_YAML), _ids()) == []


def test_rendered_markdown_is_up_to_date() -> None:
    assert DEFAULT_MD.read_text(encoding="utf-8") == render(load_checklist(DEFAULT_YAML)), (
        "docs/compatibility.md is stale: run .venv/bin/python -m recorder.checklist")
    assert main(["--check"]) == 0


def test_checklist_covers_each_contract_area_and_explains_the_rest() -> None:
    cl = load_checklist(DEFAULT_YAML)
    sections = {sid for sid, _ in cl.sections}
    assert {"handshake", "frames", "rpc", "http", "close-codes", "config", "env", "cli"} <= sections
    counts = cl.counts()
    assert counts["covered"] >= 60 and counts["not-coverable"] >= 1
    assert all(it.why for it in cl.items if it.status != "covered")
    assert GAPS_HEADING in render(cl)


def test_an_unknown_scenario_id_is_reported(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("sections:\n  - id: s\n    title: S\n    items:\n      - {id: a, item: x, scenarios: [no-such-scenario]}\n"
                 "gaps:\n  - {item: nope, field: f, legacy: a, pyclaw: b}\n")
    problems = check(load_checklist(y), _ids())
    assert problems == ["item a: unknown scenario 'no-such-scenario'", "gap f: unknown checklist item 'nope'"]
    md = tmp_path / "c.md"
    assert main(["--yaml", str(y), "--md", str(md), "--scenarios", str(SCENARIOS)]) == 1


def test_stale_markdown_fails_the_check(tmp_path: Path) -> None:
    md = tmp_path / "c.md"
    md.write_text("old\n")
    assert main(["--md", str(md), "--check"]) == 1


@pytest.mark.parametrize(("body", "message"), [
    ("items: []\n", "expected a mapping with a 'sections' list"),
    ("sections:\n  - {id: s, title: S, items: [{id: a, item: x}]}\n", "sections[0].items[0].status"),
    ("sections:\n  - {id: s, title: S, items: [{id: a, item: x, status: not-coverable}]}\n",
     "sections[0].items[0].why"),
    ("sections:\n  - {id: s, title: S, items: [{id: a, item: x, scenarios: [b]}, {id: a, item: y, scenarios: [b]}]}\n",
     "sections[0].items[1].id: duplicate item id"),
    ("sections:\n  - {id: s, title: S, items: [{id: a, item: x, scenarios: [b], colour: red}]}\n", "unknown keys"),
    ("sections: []\ngaps:\n  - {item: a, field: f, legacy: x, pyclaw: y, sigs: [nospace]}\n", "gaps[0].sigs[0]"),
    ("sections: []\ngaps:\n  - {item: a, field: f, legacy: x, pyclaw: y, sigs: status}\n", "gaps[0].sigs: expected a list"),
    ("sections: []\ngaps:\n  - {item: a, field: f, legacy: x, pyclaw: y, scenarios: [1]}\n", "gaps[0].scenarios"),
    ("sections: []\ngaps:\n  - {item: a, field: f, legacy: x, pyclaw: y, colour: red}\n", "gaps[0]: unknown keys"),
])
def test_malformed_checklist_names_the_key_path(tmp_path: Path, body: str, message: str) -> None:
    y = tmp_path / "c.yaml"
    y.write_text(body)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_checklist(y)


def test_gap_sigs_explain_signatures_by_group_and_glob_within_their_scenarios(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("sections: []\ngaps:\n"
                 "  - {item: a, field: f, legacy: x, pyclaw: y, sigs: ['connect payload.features.*', 'GET /<spa> body']}\n"
                 "  - {item: b, field: g, legacy: x, pyclaw: y, sigs: ['<close> close.reason'], scenarios: [s1]}\n")
    cl = load_checklist(y)

    def gap_for(group: str, path: str, scenario: str | None = None) -> Gap | None:
        return next((g for g in cl.gaps if g.explains(group, path, scenario)), None)

    assert gap_for("connect", "payload.features.methods.*") is cl.gaps[0]
    assert gap_for("GET /<spa>", "body") is cl.gaps[0]  # a route template with a space is one group
    assert gap_for("health", "payload.features.methods.*") is None  # another group
    assert gap_for("connect", "payload.auth.role") is None  # outside the glob
    assert gap_for("<close>", "close.reason", "s1") is cl.gaps[1]
    assert gap_for("<close>", "close.reason", "s2") is None  # the gap is scoped to s1
    assert check(cl, ["s2"])[-1:] == ["gap g: unknown scenario 's1'"]


def test_every_gap_of_the_project_checklist_names_its_signatures() -> None:
    """The golden replay against pyclaw matches its differences to these; a gap without sigs could not be."""
    cl = load_checklist(DEFAULT_YAML)
    assert cl.gaps and all(g.sigs for g in cl.gaps), [g.field for g in cl.gaps if not g.sigs]
