"""The cutover gate: policy parsing, verdict rules per group and overall, JUnit XML and Markdown writers.

Pure tests over crafted ``GroupStats``; ``tests/diffing/test_cli_gate.py`` runs ``parity gate`` over crafted
databases built through the store API.
"""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from diffing.gate import (
    GatePolicy,
    GroupStats,
    SignatureStat,
    Verdict,
    evaluate,
    exit_code,
    load_policy,
    parse_policy,
    to_junit,
    to_markdown,
)
from wire.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

POLICY = (ROOT / "tests" / "data" / "gate-policy.toml").read_text()


def policy(text: str = POLICY) -> GatePolicy:
    return parse_policy(tomllib.loads(text), source="test.toml")


def good(group: str, pairs: int = 100, **kw: object) -> GroupStats:
    base: dict[str, object] = dict(group=group, routes=(group,), pairs=pairs, matches=pairs, latency_ratio=1.02,
                                   latency_ratio_ci=(0.97, 1.08))
    base.update(kw)
    return GroupStats(**base)  # type: ignore[arg-type]


def test_exit_codes() -> None:
    assert [exit_code(v) for v in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE)] == [0, 1, 2]


def test_routes_go_to_the_first_matching_group_else_other() -> None:
    p = policy()
    assert p.group_of("chat.send").name == "chat"
    assert p.group_of("sessions.list").name == "reads"
    assert p.group_of("health").name == "reads"
    assert p.group_of("POST /hooks/wake").name == "hooks"
    assert p.group_of("models.catalog").name == "other"
    assert p.group_of("chat.send") .min_samples == 20 and p.group_of("health").min_samples == 50


def test_all_good_passes() -> None:
    result = evaluate(policy(), [good("chat"), good("reads")])
    assert result.verdict is Verdict.PASS and result.exit_code == 0
    assert [(r.policy.name, r.verdict) for r in result.groups] == [
        ("chat", Verdict.PASS), ("reads", Verdict.PASS), ("hooks", Verdict.PASS)]
    assert result.groups[2].skipped  # optional group without traffic


def test_too_few_samples_is_inconclusive() -> None:
    result = evaluate(policy(), [good("chat"), good("reads", pairs=49)])
    assert result.verdict is Verdict.INCONCLUSIVE and result.exit_code == 2
    reads = result.groups[1]
    assert reads.verdict is Verdict.INCONCLUSIVE
    assert "too few samples: 49 compared pairs < min 50" in reads.reason


def test_no_paired_latency_is_inconclusive() -> None:
    result = evaluate(policy(), [good("chat"), good("reads", latency_ratio=None, latency_ratio_ci=None)])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no paired latencies" in result.groups[1].reason


def test_missing_required_group_is_inconclusive() -> None:
    result = evaluate(policy(), [good("chat")])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "0 compared pairs" in result.groups[1].reason


@pytest.mark.parametrize(
    ("stats", "evidence"),
    [
        (dict(matches=98), "parity 0.9800 (98/100) vs min 0.99"),
        (dict(latency_ratio=1.4, latency_ratio_ci=(1.2, 1.61)), "[1.200, 1.610] upper vs max 1.5"),
        (dict(candidate_errors=3, legacy_errors=1), "candidate error rate delta 0.0200 (candidate 3, legacy 1 of 100)"),
        (dict(signatures=(SignatureStat(route="health", path="payload.ok", kind="value", count=4),)),
         "1 blocking signature(s) (reviewed as bug, or unreviewed above minor): major value at health payload.ok x4"),
    ],
    ids=["parity", "latency", "errors", "signature"],
)
def test_each_threshold_fails_the_group(stats: dict[str, object], evidence: str) -> None:
    result = evaluate(policy(), [good("chat"), good("reads", **stats)])
    assert result.verdict is Verdict.FAIL and result.exit_code == 1
    reads = result.groups[1]
    assert reads.verdict is Verdict.FAIL
    assert evidence in reads.reason


def test_edges_are_inclusive() -> None:
    edge = good("reads", pairs=100, matches=99, latency_ratio_ci=(1.0, 1.5), candidate_errors=1)
    assert evaluate(policy(), [good("chat"), edge]).verdict is Verdict.PASS


def test_reviewed_or_low_severity_signatures_do_not_block() -> None:
    sigs = (
        SignatureStat(route="health", path="payload.x", kind="value", count=2, review="expected"),
        SignatureStat(route="health", path="payload.list", kind="order", count=9),
    )
    assert evaluate(policy(), [good("chat"), good("reads", signatures=sigs)]).verdict is Verdict.PASS


def test_signature_reviewed_as_bug_blocks_whatever_its_severity() -> None:
    sig = SignatureStat(route="health", path="payload.list", kind="order", count=1, review="bug")
    result = evaluate(policy(), [good("chat"), good("reads", signatures=(sig,))])
    assert result.verdict is Verdict.FAIL
    assert "minor order at health payload.list x1 (bug)" in result.groups[1].reason


def test_blocking_signature_fails_even_with_few_samples() -> None:
    sig = SignatureStat(route="chat.send", path="", kind="close-code", count=1)
    result = evaluate(policy(), [good("chat", pairs=3, matches=1, signatures=(sig,)), good("reads")])
    assert result.groups[0].verdict is Verdict.FAIL
    assert "critical close-code at chat.send <root> x1" in result.groups[0].reason
    assert "parity" not in result.groups[0].reason  # 3 pairs: figures shown in the evidence, not judged
    assert "(not judged: too few samples)" in to_markdown(result)


def test_fail_beats_inconclusive_overall() -> None:
    result = evaluate(policy(), [good("chat", matches=10), good("reads", pairs=1)])
    assert result.verdict is Verdict.FAIL


def test_unmatched_routes_are_judged_as_other() -> None:
    result = evaluate(policy(), [good("chat"), good("reads"), good("other", pairs=60, matches=50)])
    assert result.groups[-1].policy.name == "other"
    assert result.verdict is Verdict.FAIL


def test_figures_for_unknown_group_are_an_error() -> None:
    with pytest.raises(ConfigError, match="not in the policy: nope"):
        evaluate(policy(), [good("nope")])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[defaults]\nmin_parity = 1.5\n", "defaults.min_parity: must be within [0, 1]"),
        ("[defaults]\nmin_samples = 0\n", "defaults.min_samples: must be >= 1"),
        ("[defaults]\nmin_samples = '5'\n", "defaults.min_samples: expected int, got str"),
        ("[defaults]\nmin_sampels = 5\n", "defaults.min_sampels: unknown key"),
        ("[defaults]\nmax_unreviewed_severity = 'huge'\n", "'huge' is not one of info, minor, major, critical"),
        ("[[group]]\nmatch = ['a']\n", "group[0].name: required"),
        ("[[group]]\nname = 'a'\n", "group[0].match: required"),
        ("[[group]]\nname = 'a'\nmatch = ['x']\n[[group]]\nname = 'a'\nmatch = ['y']\n", "group[1].name: 'a' is used twice"),
        ("[[group]]\nname = 'a'\nmatch = ['x']\nmin_parity = true\n", "group[0].min_parity: expected float"),
        ("[severity]\nvalue = 'loud'\n", "severity.value: 'loud' is not one of"),
        ("gropu = 1\n", "gropu: unknown top-level key"),
        ("confidence = 1.5\n", "confidence: expected a float in [0.5, 1)"),
    ],
)
def test_bad_policy_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        policy(text)
    assert message in str(info.value)
    assert str(info.value).startswith("test.toml: ")


def test_load_policy_reports_file_and_toml_syntax(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nmin_parity = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML: .*line 2"):
        load_policy(str(bad))
    with pytest.raises(ConfigError, match="missing.toml: cannot read policy"):
        load_policy(str(tmp_path / "missing.toml"))


def test_shipped_example_policy_loads() -> None:
    p = load_policy(str(ROOT / "docs" / "cutover.toml"))
    assert [g.name for g in p.groups][:3] == ["handshake", "read-rpc", "chat"]
    assert p.group_of("chat.send").name == "chat"
    assert p.group_of("connect").max_unreviewed_severity == "info"


def test_junit_parses_back_with_one_testcase_per_group() -> None:
    sig = SignatureStat(route="chat.send", path="payload.status", kind="value", count=7, example='"ok" != "started"')
    result = evaluate(policy(), [good("chat", matches=90, signatures=(sig,)), good("reads", pairs=5)],
                      database="sqlite:///x.db")
    root = ET.fromstring(to_junit(result))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "2")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"verdict": "fail", "policy": "test.toml", "database": "sqlite:///x.db"}
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == ["chat", "reads", "hooks"]
    failure = cases["chat"].find("failure")
    assert failure is not None
    assert "parity 0.9000 (90/100) vs min 0.99" in (failure.get("message") or "")
    assert "signature value chat.send payload.status x7 (unreviewed) e.g. \"ok\" != \"started\"" in (failure.text or "")
    skipped = cases["reads"].find("skipped")
    assert skipped is not None and (skipped.get("message") or "").startswith("inconclusive: too few samples")
    assert cases["hooks"].find("skipped") is not None and cases["hooks"].find("failure") is None


def test_junit_pass_has_no_failure_elements() -> None:
    root = ET.fromstring(to_junit(evaluate(policy(), [good("chat"), good("reads")])))
    assert root.find(".//failure") is None
    assert [c.get("name") for c in root.iter("testcase")] == ["chat", "reads", "hooks"]


def test_markdown_summary() -> None:
    result = evaluate(policy(), [good("chat", matches=90), good("reads", pairs=5)])
    md = to_markdown(result)
    assert md.startswith("## Parity gate: **FAIL** (exit 1)")
    assert "| chat | FAIL | 100 | 0.9000 | 1.020 (1.080) | 0.0000 | 0 |" in md
    assert "| reads | INCONCLUSIVE | 5 |" in md
    assert "| hooks | skipped (no traffic) | 0 |" in md
    assert "<details><summary>chat: fail" in md and "<details><summary>reads: inconclusive" in md


def test_markdown_escapes_pipes_in_group_names() -> None:
    p = policy('[[group]]\nname = "a|b"\nmatch = ["x"]\nmin_samples = 1\n')
    md = to_markdown(evaluate(p, [good("a|b", pairs=1)]))
    assert "| a\\|b | PASS | 1 |" in md


def test_markdown_escapes_html_in_evidence_summaries() -> None:
    sig = SignatureStat(route="<close>", path="close.code", kind="close-code", count=2)
    md = to_markdown(evaluate(policy(), [good("chat", signatures=(sig,)), good("reads")]))
    assert "critical close-code at &lt;close&gt; close.code x2" in md
    summary = next(line for line in md.splitlines() if line.startswith("<details>"))
    assert "<close>" not in summary
