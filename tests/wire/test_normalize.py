"""wire.normalize: every rule kind, the path syntax, When, purity, triggers, numeric policy and rule files."""

from __future__ import annotations

from typing import Any

import pytest

from wire.normalize import (
    AsSet,
    Context,
    Drop,
    Mask,
    Monotonic,
    Normalizer,
    Regex,
    Rename,
    Round,
    SortList,
    Tolerance,
    When,
    apply,
    canonical_text,
    numeric_normal,
    parse_path,
    rule_from_mapping,
)

DOC: dict[str, Any] = {
    "type": "res",
    "payload": {
        "server": {"connId": "abc", "version": "1"},
        "presence": [{"ts": 1, "host": "a"}, {"ts": 2, "host": "b"}],
        "list": [3, 1, 2, 1],
        "objs": [{"k": "b"}, {"k": "a"}],
        "n": 1.23456,
        "deep": {"x": {"createdAtMs": 5, "updatedAtMs": 6, "keep": 1}},
    },
    "seq": 4,
}


@pytest.mark.parametrize(
    ("rule", "path", "expected"),
    [
        (Drop("payload.server.connId"), "payload.server", {"version": "1"}),
        (Mask("payload.server.connId"), "payload.server.connId", "<masked:string>"),
        (Mask("payload.n", placeholder="X"), "payload.n", "X"),
        (Mask("payload.presence.*.ts"), "payload.presence", [{"ts": "<masked:number>", "host": "a"},
                                                             {"ts": "<masked:number>", "host": "b"}]),
        (Regex("payload.server.connId", "b", "B"), "payload.server.connId", "aBc"),
        (AsSet("payload.list"), "payload.list", [1, 2, 3]),
        (SortList("payload.objs", by="k"), "payload.objs", [{"k": "a"}, {"k": "b"}]),
        (SortList("payload.list"), "payload.list", [1, 1, 2, 3]),
        (Round("payload.n", 2), "payload.n", 1.23),
        (Rename("payload.server.connId", to="id"), "payload.server", {"version": "1", "id": "abc"}),
        (Mask("**.*AtMs"), "payload.deep.x", {"createdAtMs": "<masked:number>", "updatedAtMs": "<masked:number>",
                                              "keep": 1}),
        (Drop("payload.presence.1"), "payload.presence", [{"ts": 1, "host": "a"}, "<dropped>"]),
        (Mask("payload.list.9"), "payload.list", [3, 1, 2, 1]),
        (Mask("payload.nothere.x"), "payload.server", {"connId": "abc", "version": "1"}),
        (Mask("payload.n.x"), "payload.n", 1.23456),
        (Mask("payload.list.x"), "payload.list", [3, 1, 2, 1]),
        (Mask("payload.s?rver.*"), "payload.server", {"connId": "<masked:string>", "version": "<masked:string>"}),
    ],
)
def test_rule_kinds(rule: Any, path: str, expected: Any) -> None:
    out = apply([rule], DOC)
    node: Any = out
    for seg in path.split("."):
        node = node[seg]
    assert node == expected


def test_apply_is_pure() -> None:
    before = canonical_text(DOC)
    apply([Drop("payload.server"), Mask("**.ts")], DOC)
    assert canonical_text(DOC) == before


def test_mask_keeps_presence_and_json_type() -> None:
    vals = {"s": "x", "n": 1, "b": True, "z": None, "a": [], "o": {}}
    out = apply([Mask("*")], vals)
    assert out == {"s": "<masked:string>", "n": "<masked:number>", "b": "<masked:boolean>", "z": "<masked:null>",
                   "a": "<masked:array>", "o": "<masked:object>"}


def test_deep_wildcard_matches_every_depth_including_zero() -> None:
    doc = {"ts": 1, "a": {"ts": 2, "b": [{"ts": 3}]}}
    assert apply([Drop("**.ts")], doc) == {"a": {"b": [{}]}}


def test_when_is_conditional_on_method_route_and_event() -> None:
    rules = [When(method="health", rules=(Drop("x"),)), When(event="tick", route=None, rules=(Drop("y"),)),
             When(route="POST /hooks/*", rules=(Drop("z"),))]
    doc = {"x": 1, "y": 2, "z": 3}
    assert apply(rules, doc, Context(method="health")) == {"y": 2, "z": 3}
    assert apply(rules, doc, Context(event="tick")) == {"x": 1, "z": 3}
    assert apply(rules, doc, Context(route="POST /hooks/wake")) == {"x": 1, "y": 2}
    assert apply(rules, doc) == doc


def test_tolerance_and_monotonic_are_taken_out_for_the_differ() -> None:
    norm = Normalizer([Tolerance("a", abs=0.5), Monotonic("seq")])
    result = norm.normalize({"a": 1.2, "seq": 7, "b": 1}, track=True)
    assert result.value == {"a": "<tolerance>", "b": 1}
    assert result.tolerant["a"][0] == 1.2 and result.monotonic == {"seq": 7}
    assert [p for p, _ in result.hidden] == ["a", "seq"]
    tol = Tolerance("a", abs=0.5, rel=0.1)
    assert tol.accepts(1.0, 1.4) and tol.accepts(100, 109) and not tol.accepts(1.0, 2.0)
    assert tol.accepts("x", "x") and not tol.accepts(1, True)


def test_tracking_records_which_rule_hid_which_field() -> None:
    rule = Mask("payload.server.connId", reason="ref §8")
    result = Normalizer([rule, Regex("payload.server.version", "9", "x")]).normalize(
        apply([], DOC), track=True)
    assert result.hidden == [("payload.server.connId", rule)]


def test_deep_rules_are_skipped_when_the_key_is_not_in_the_raw_text() -> None:
    norm = Normalizer([Mask("**.ts")])
    doc = {"ts": 1}
    assert norm.normalize(dict(doc), raw='{"other":1}').value == {"ts": 1}  # trigger absent: skipped
    assert norm.normalize(dict(doc), raw='{"ts":1}').value == {"ts": "<masked:number>"}
    assert Normalizer([Mask("**.*")]).normalize({"a": 1}, raw="").value == {"a": "<masked:number>"}


def test_rules_under_a_root_list_and_any_child() -> None:
    assert apply([Mask("*.a")], [{"a": 1}, {"b": 2}]) == [{"a": "<masked:number>"}, {"b": 2}]
    assert apply([Mask("0")], [1, 2]) == ["<masked:number>", 2]


@pytest.mark.parametrize("bad", ["", "a..b", "a."])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_path(bad)


def test_deep_wildcard_cannot_end_a_path() -> None:
    with pytest.raises(ValueError, match="last"):
        apply([Drop("**")], {"a": 1})


def test_numeric_policy() -> None:
    assert numeric_normal({"a": [1.0, 2.5, True, 2**80]}) == {"a": [1, 2.5, True, 2**80]}
    assert isinstance(numeric_normal(1.0), int) and numeric_normal(True) is True
    assert isinstance(numeric_normal(1e300), float)  # beyond 2**53: left alone


def test_rule_from_mapping_round_trip_and_errors() -> None:
    rule = rule_from_mapping({"kind": "when", "method": "health", "reason": "r",
                              "rules": [{"kind": "mask", "path": "payload.ts", "reason": "ts"}]})
    assert rule == When(rules=(Mask("payload.ts", "ts"),), method="health", reason="r")
    assert rule_from_mapping({"kind": "sort_list", "path": "a", "by": "k", "reason": "r"}) == SortList("a", "k", "r")
    cases = [
        ([], "rule: a rule must be a table"),
        ({"kind": "nope", "path": "a", "reason": "r"}, "rule.kind: unknown rule kind"),
        ({"kind": "mask", "path": "a"}, "rule.reason: every rule needs a reason"),
        ({"kind": "mask", "path": "a..b", "reason": "r"}, "rule.path: empty segment"),
        ({"kind": "mask", "path": "a", "reason": "r", "bogus": 1}, "rule: bad keys for kind 'mask'"),
        ({"kind": "regex", "path": "a", "pattern": "(", "replacement": "", "reason": "r"}, "rule.pattern: invalid"),
        ({"kind": "when", "rules": []}, "rule.rules: 'when' needs"),
        ({"kind": "when", "rules": [{"kind": "drop", "path": "a", "reason": "r"}], "x": 1}, "rule: unknown key"),
        ({"kind": "when", "rules": [{"kind": "drop", "path": "a"}]}, "rule.rules[0].reason"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError) as info:
            rule_from_mapping(data)  # type: ignore[arg-type]
        assert str(info.value).startswith(message), (data, str(info.value))


def test_deep_rules_that_need_paths_and_scalar_documents() -> None:
    result = Normalizer([Monotonic("**.seq"), Mask("**.ts")]).normalize({"a": [{"seq": 1, "ts": 3}, 7], "seq": 2})
    assert result.monotonic == {"a.0.seq": 1, "seq": 2}
    assert result.value == {"a": [{"ts": "<masked:number>"}, 7]}
    assert apply([Mask("**.ts")], 5) == 5
    assert apply([Mask("**.ts")], [{"ts": 1}, [{"ts": 2}]]) == [{"ts": "<masked:number>"}, [{"ts": "<masked:number>"}]]


def test_glob_deep_rules_use_the_raw_key_set() -> None:
    norm = Normalizer([Mask("**.*AtMs")])
    assert norm.normalize({"xAtMs": 1}, raw='{"xAtMs":1}').value == {"xAtMs": "<masked:number>"}
    assert norm.normalize({"xAtMs": 1}, raw='{"other":1}').value == {"xAtMs": 1}  # key absent from the text
    assert norm.normalize({"yAtMs": 1}, raw='{"yAtMs":1}').value == {"yAtMs": "<masked:number>"}  # memo reused


def test_overlapping_masks_keep_the_type_the_first_one_recorded() -> None:
    """Two Mask rules over one field (overlapping globs, a user file on the profile): a number masked twice is
    still ``<masked:number>``, so a number-vs-string change stays visible."""
    from wire.normalize import Mask, Normalizer

    norm = Normalizer((Mask("**.startedAt", "a"), Mask("**.*At", "b")))
    legacy = norm.normalize({"run": {"startedAt": 1, "endedAt": [1]}}).value
    candidate = norm.normalize({"run": {"startedAt": "x", "endedAt": {"a": 1}}}).value
    assert legacy == {"run": {"startedAt": "<masked:number>", "endedAt": "<masked:array>"}}
    assert candidate == {"run": {"startedAt": "<masked:string>", "endedAt": "<masked:object>"}}


def test_openclaw_profile_sees_a_type_change_under_its_time_masks() -> None:
    from wire.normalize import Context
    from wire.profiles.openclaw import OPENCLAW

    def norm(doc: dict[str, object]) -> object:
        return OPENCLAW.normalizer.normalize(doc, Context(method="status")).value

    for key in ("startedAt", "endedAt", "acceptedAt", "updatedAt", "generatedAt", "snapshotAt"):
        assert norm({"payload": {key: 1}}) != norm({"payload": {key: "x"}}), key
        assert norm({"payload": {key: 1}}) == norm({"payload": {key: 2}}), key

