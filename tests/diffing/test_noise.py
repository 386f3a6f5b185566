"""diffing.noise: A/A evidence counting, proposals, Diffy thresholds, export to a rule file that reads back."""

from __future__ import annotations

from pathlib import Path

from diffing.diff import Diff, DiffKind, PairResult
from diffing.noise import NoiseCounter, export_rules, is_real_difference, matches_rule, propose
from diffing.rules import dump_rules_toml, load_rules
from diffing.store import NoiseRuleRow
from wire.model import ExchangeKind
from wire.normalize import AsSet, Drop, Mask, When
from wire.profiles.openclaw import OPENCLAW


def pr(route: str, *diffs: Diff) -> PairResult:
    return PairResult(conn="c", key="k", kind=ExchangeKind.WS, group=route, scenario=None, equal=not diffs,
                      stage="explain", diffs=diffs)


def test_counter_counts_pairs_not_diffs_and_generalizes_indices() -> None:
    c = NoiseCounter(runs=2)
    c.add(pr("health", Diff("payload.a.0.ts", DiffKind.VALUE), Diff("payload.a.1.ts", DiffKind.VALUE)))
    c.add(pr("health"))
    c.add(pr("status", Diff("payload.gone", DiffKind.MISSING)))
    assert c.compared == {"health": 2, "status": 1}
    assert c.differing == {("health", "payload.a.*.ts", "value"): 1, ("status", "payload.gone", "missing"): 1}
    rows = propose(c)
    assert [(r["route"], r["path"], r["kind"], r["action"], r["differing"], r["compared"]) for r in rows] == [
        ("health", "payload.a.*.ts", "value", "mask", 1, 2),
        ("status", "payload.gone", "extra", "drop", 1, 1),  # A/A symmetry: the mirror image is noise too
        ("status", "payload.gone", "missing", "drop", 1, 1)]
    assert "1 of 2" in rows[0]["reason"]
    assert propose(c, min_rate=0.6) == rows[1:]
    c.add(pr("x", Diff("payload.l", DiffKind.ORDER)))
    assert [r["action"] for r in propose(c) if r["route"] == "x"] == ["as_set"]
    c.add(pr("chat", Diff("event:chat", DiffKind.EVENT_EXTRA)))
    assert {r["kind"] for r in propose(c) if r["route"] == "chat"} == {"event-extra", "event-missing"}


def test_counter_sees_signatures_found_only_past_the_record_cap() -> None:
    c = NoiseCounter(runs=2)
    result = PairResult(conn="c", key="k", kind=ExchangeKind.WS, group="health", scenario=None, equal=False,
                        stage="explain", diffs=(Diff("payload.a", DiffKind.VALUE),),
                        unrecorded=(("payload.b.*.id", DiffKind.VALUE, 7),))
    c.add(result)
    assert c.differing == {("health", "payload.a", "value"): 1, ("health", "payload.b.*.id", "value"): 1}


def test_diffy_thresholds() -> None:
    assert is_real_difference(0.5, 0.0)
    assert not is_real_difference(0.5, 0.45)  # within 20 % of the noise: noise
    assert not is_real_difference(0.0002, 0.0)  # below the 0.03 % absolute floor
    assert not is_real_difference(0.0, 0.0)
    assert is_real_difference(0.01, 0.005)


def row(i: int, route: str, path: str, kind: str, action: str = "mask", status: str = "accepted") -> NoiseRuleRow:
    return NoiseRuleRow(i, route, path, kind, action, status, 3, 10, 2, "A/A")


def test_matches_rule() -> None:
    r = row(1, "health", "payload.a.*.ts", "value")
    assert matches_rule(r, "health", "payload.a.7.ts", "value")
    assert not matches_rule(r, "health", "payload.a.7.ts", "type")
    assert not matches_rule(r, "status", "payload.a.7.ts", "value")
    assert matches_rule(row(2, "POST /hooks/*", "body.x", "value"), "POST /hooks/wake", "body.x", "value")


def test_export_scopes_rules_and_round_trips(tmp_path: Path) -> None:
    rows = [row(1, "health", "#1.payload.ts", "value"), row(2, "chat", "payload.x", "missing", "drop"),
            row(3, "POST /hooks/wake", "body.l", "order", "as_set"), row(4, "health", "x", "value", status="rejected"),
            row(5, "chat", "event:chat", "event-missing")]
    rules = export_rules(rows, OPENCLAW)
    assert rules == (
        When(rules=(Mask("payload.ts", "noise rule 1: A/A"),), method="health", reason="noise rule 1: A/A"),
        When(rules=(Drop("payload.x", "noise rule 2: A/A"),), event="chat", reason="noise rule 2: A/A"),
        When(rules=(AsSet("body.l", "noise rule 3: A/A"),), route="POST /hooks/wake", reason="noise rule 3: A/A"),
    )
    assert export_rules([row(6, "health", "payload.x", "value")], OPENCLAW)[0].method == "health"  # type: ignore[union-attr]
    out = tmp_path / "rules.toml"
    out.write_text(dump_rules_toml(rules, header="test\nexport"))
    assert load_rules(out) == rules
    assert out.read_text().startswith("# test\n# export\n")
